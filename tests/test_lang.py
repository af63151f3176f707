"""Language identification of case texts."""

from __future__ import annotations

import pytest

from oncoboard.lang import detect_language, language_scores


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Die Patientin stellt sich mit einem Mammakarzinom links vor.", "de"),
        ("Der Patient wurde nach neoadjuvanter Radiochemotherapie operiert.", "de"),
        ("Lebermetastasen", "de"),
        ("The patient presented with a mass in the right upper lobe.", "en"),
        ("Adenocarcinoma of the lung with liver metastases.", "en"),
        ("", "en"),
        ("ECOG 1", "en"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_umlauts_count_as_german_evidence() -> None:
    scores = language_scores("Ösophagus Größe")
    assert scores["de"] > scores["en"] == 0


def test_deterministic() -> None:
    text = "Patient mit Adenokarzinom of the lung"
    assert len({detect_language(text) for _ in range(5)}) == 1
