"""Biomarker, organ-function and treatment-history extraction (EN/DE), with exact expected values.

The texts are the phrasings that kept the planner from its guideline treatment: Child-Pugh class
with glued points, HER2 scores written without "IHC", germline BRCA, Ki-67 next to a negated
phrase, Claudin 18.2 and completed resections written as German abbreviations.
"""

from __future__ import annotations

import logging

import pytest

from oncoboard.domain import Biomarker
from tools.extraction import extract_findings
from tools.extraction.biomarkers import find_biomarkers
from tools.extraction.negation import TextContext
from tools.extraction.patient import PatientFacts, extract_patient


def _patient(text: str, lang: str = "en") -> PatientFacts:
    return extract_patient(text, TextContext(text), lang)


def _markers(text: str) -> dict[str, Biomarker]:
    markers, _ = find_biomarkers(text, TextContext(text), [])
    return {m.name: m for m in markers}


# --------------------------------------------------------------------------- Child-Pugh


@pytest.mark.parametrize(
    ("text", "condition", "points"),
    [
        ("HBV-assoziierte Leberzirrhose, Child-Pugh A5, keine Aszites.", "child_pugh_a", 5.0),
        ("NASH cirrhosis, Child-Pugh A6, ECOG 1.", "child_pugh_a", 6.0),
        ("Leberzirrhose im Child-Pugh-Stadium B7.", "child_pugh_b", 7.0),
        ("Alcoholic cirrhosis, CP-B8.", "child_pugh_b", 8.0),
        ("Cirrhosis, Child A, no ascites.", "child_pugh_a", None),
        ("Child-Pugh C (score 11).", "child_pugh_c", 11.0),
        ("Child-Pugh class A.", "child_pugh_a", None),
        ("Leberzirrhose Child-Pugh B (8 Punkte).", "child_pugh_b", 8.0),
        ("Child-Pugh-Klasse C, dekompensiert.", "child_pugh_c", None),
    ],
)
def test_child_pugh_class_and_points(text: str, condition: str, points: float | None) -> None:
    facts = _patient(text, "de" if "Leber" in text else "en")
    classes = [c for c in facts.conditions if c.startswith("child_pugh_")]
    assert classes == [condition]
    assert facts.labs.get("child_pugh_score") == points


@pytest.mark.parametrize(
    "text", ["CPA 50 mg twice daily.", "PD-L1 CPS 8.", "She cared for a child a year ago.", "cp-b8"]
)
def test_child_pugh_short_cues_need_capitals_and_a_separator(text: str) -> None:
    facts = _patient(text)
    assert not [c for c in facts.conditions if c.startswith("child_pugh_")]
    assert "child_pugh_score" not in facts.labs


def test_child_pugh_class_and_points_that_disagree_are_not_trusted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tools.extraction.patient"):
        facts = _patient("Cirrhosis, Child-Pugh A9, ECOG 1.")
    assert not [c for c in facts.conditions if c.startswith("child_pugh_")]
    assert "child_pugh_score" not in facts.labs
    flagged = [e for e in facts.entities if e.label == "CONDITION_UNCERTAIN"]
    assert [(e.text, e.code) for e in flagged] == [("Child-Pugh A9", "child_pugh_a")]
    assert "inconsistent" in caplog.text


def test_negated_child_pugh_class_is_not_a_fact() -> None:
    facts = _patient("Keine Zirrhose, kein Child-Pugh C.", "de")
    assert "child_pugh_c" not in facts.conditions


def test_child_pugh_a5_reaches_the_findings_of_a_liver_case() -> None:
    text = (
        "Befund MRT Leber. HBV-assoziierte Leberzirrhose, Child-Pugh A5, keine Aszites. Solitärer Herd "
        "Segment IVa, 28 mm, LI-RADS 5 – HCC. ECOG 0."
    )
    findings = extract_findings(text, "de")
    assert "child_pugh_a" in findings.conditions
    assert findings.labs["child_pugh_score"] == 5.0


# --------------------------------------------------------------------------- HER2


@pytest.mark.parametrize(
    ("text", "result", "status"),
    [
        ("ER 95% strong, PR 40%, HER2 IHC 0.", "IHC 0", "negative"),
        ("HER2: 0.", "IHC 0", "negative"),
        ("HER2 score 0.", "IHC 0", "negative"),
        ("HER2-Score 0.", "IHC 0", "negative"),
        ("HER2 1+ (IHC).", "IHC 1+ (HER2-low)", "negative"),
        ("HER2 1+.", "IHC 1+ (HER2-low)", "negative"),
        ("HER2 2+, ISH negative.", "IHC 2+, ISH not amplified (HER2-low)", "negative"),
        ("HER2 2+, ISH not amplified.", "IHC 2+, ISH not amplified (HER2-low)", "negative"),
        ("HER2 2+, nicht amplifiziert.", "IHC 2+, ISH not amplified (HER2-low)", "negative"),
        ("HER2 IHC 3+.", "IHC 3+", "positive"),
        ("HER2 2+, ISH amplified.", "IHC 2+, ISH amplified", "positive"),
        ("HER2 2+ ISH positive.", "IHC 2+, ISH amplified", "positive"),
        ("HER2 2+.", "IHC 2+, equivocal", "unknown"),
    ],
)
def test_her2_scores(text: str, result: str, status: str) -> None:
    her2 = _markers(text)["HER2"]
    assert (her2.result, her2.status) == (result, status)


def test_her2_score_is_not_read_from_a_decimal() -> None:
    assert "HER2" not in _markers("HER2 IHC 0.5")


# --------------------------------------------------------------------------- germline BRCA


@pytest.mark.parametrize(
    ("text", "name", "result"),
    [
        ("Germline testing: pathogenic BRCA2 variant.", "BRCA2", "germline pathogenic variant"),
        ("gBRCA1 mutation.", "BRCA1", "germline mutation"),
        ("Keimbahnmutation BRCA2.", "BRCA2", "germline mutation"),
        ("BRCA2-Mutation (Keimbahn).", "BRCA2", "germline mutation"),
        ("Keimbahn: BRCA1-Mutation nachgewiesen.", "BRCA1", "germline mutation"),
    ],
)
def test_germline_brca(text: str, name: str, result: str) -> None:
    marker = _markers(text)[name]
    assert (marker.result, marker.status) == (result, "positive")


def test_somatic_brca_is_not_called_germline() -> None:
    marker = _markers("Somatic BRCA2 mutation in tumour tissue.")["BRCA2"]
    assert (marker.result, marker.status) == ("mutation", "positive")


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("No pathogenic BRCA1/2 variant.", "negative"),
        ("Keimbahn-BRCA1/2 negativ.", "negative"),
        ("Germline BRCA1/2: no pathogenic variant.", "negative"),
        ("BRCA2 variant of uncertain significance.", "unknown"),
    ],
)
def test_brca_without_a_pathogenic_variant(text: str, status: str) -> None:
    markers = _markers(text)
    assert markers["BRCA2"].status == status


# --------------------------------------------------------------------------- Ki-67 and negation scope


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("ER 0%, PR 0%, HER2 negativ (Score 1+, ISH nicht amplifiziert), Ki-67 70%. Axilla re. suspekt.", "70%"),
        ("HER2 nicht amplifiziert, Ki-67 70 %.", "70%"),
        ("HER2 not amplified, Ki-67 25%.", "25%"),
        ("ER 0%, PR 0%, HER2 negative, Ki-67 70%.", "70%"),
        ("Ki67: 15%.", "15%"),
        ("MIB-1 30 %.", "30%"),
    ],
)
def test_ki67_is_a_value_not_a_status(text: str, value: str) -> None:
    ki67 = _markers(text)["Ki-67"]
    assert ki67.result == value
    assert ki67.status != "negative"


def test_adverbial_negation_stops_at_a_comma_but_list_negation_does_not() -> None:
    text = "ISH nicht amplifiziert, Lebermetastasen. Keine EGFR-, ALK- oder ROS1-Alteration."
    ctx = TextContext(text)
    liver = text.index("Lebermetastasen")
    assert ctx.assertion(liver, liver + len("Lebermetastasen")) == "affirmed"
    ros1 = text.index("ROS1")
    assert ctx.assertion(ros1, ros1 + 4) == "negated"


def test_negation_inside_a_closed_bracket_does_not_reach_past_it() -> None:
    text = "Lymph nodes (none enlarged) and liver metastases."
    ctx = TextContext(text)
    liver = text.index("liver metastases")
    assert ctx.assertion(liver, liver + len("liver metastases")) == "affirmed"
    nodes = text.index("Lymph nodes")
    assert ctx.assertion(nodes, nodes + len("Lymph nodes")) == "negated"


# --------------------------------------------------------------------------- Claudin 18.2


@pytest.mark.parametrize(
    ("text", "result", "status"),
    [
        ("CLDN18.2 positive, 80% of tumour cells 2+/3+.", "positive (80%)", "positive"),
        ("Claudin 18.2 positiv.", "positive", "positive"),
        ("Claudin 18.2 negativ.", "negative", "negative"),
        ("CLDN18.2 60% (2+/3+).", "60%", "negative"),
        ("CLDN18.2 85% (2+/3+).", "85%", "positive"),
    ],
)
def test_claudin_18_2(text: str, result: str, status: str) -> None:
    marker = _markers(text)["CLDN18.2"]
    assert (marker.result, marker.status) == (result, status)


def test_claudin_in_a_gastric_marker_list() -> None:
    markers = _markers("HER2 negative, PD-L1 CPS 8, MSS, claudin 18.2 positive (80%).")
    assert markers["CLDN18.2"].status == "positive"
    assert markers["PD-L1"].result == "CPS 8"
    assert markers["HER2"].status == "negative"


# --------------------------------------------------------------------------- completed resections


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Pankreaskopfkarzinom, Z.n. pyloruserhaltender partieller Duodenopankreatektomie (PPPD) am 03.11.2026.", "de"),
        ("Z.n. Whipple.", "de"),
        ("Z.n. Whipple-OP.", "de"),
        ("Z.n. Hemikolektomie rechts.", "de"),
        ("Z.n. TME.", "de"),
        ("Z.n. Gastrektomie.", "de"),
        ("Z.n. BET.", "de"),
        ("Z.n. brusterhaltender Operation.", "de"),
        ("Z.n. Mastektomie.", "de"),
        ("Z.n. Ablatio mammae links.", "de"),
        ("Z.n. radikaler Prostatektomie.", "de"),
        ("Z.n. Oberlappenresektion rechts.", "de"),
        ("s/p Whipple.", "en"),
        ("status post right hemicolectomy.", "en"),
        ("after breast-conserving surgery.", "en"),
        ("s/p pylorus-preserving pancreatoduodenectomy.", "en"),
    ],
)
def test_completed_resection(text: str, lang: str) -> None:
    assert "resected" in _patient(text, lang).conditions


@pytest.mark.parametrize(("text", "lang"), [("Whipple geplant.", "de"), ("Candidate for Whipple procedure.", "en")])
def test_planned_resection_is_not_done(text: str, lang: str) -> None:
    assert "resected" not in _patient(text, lang).conditions


# --------------------------------------------------------------------------- conditions named together


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Ösophagusvarizenblutung vor zwei Wochen, endoskopisch ligiert.", "de"),
        ("Variceal bleeding last month, banded.", "en"),
    ],
)
def test_variceal_bleeding_is_varices_and_a_bleeding(text: str, lang: str) -> None:
    facts = _patient(text, lang)
    assert {"varices", "recent_bleeding"} <= set(facts.conditions)
    codes = sorted(e.code or "" for e in facts.entities if e.label == "CONDITION")
    assert codes == ["recent_bleeding", "varices"]


# --------------------------------------------------------------------------- treatment setting


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("Z.n. PPPD, pT2 pN1 R0. Präoperativ CA 19-9 180 U/ml.", None),
        ("Präoperatives CT ohne Fernmetastasen.", None),
        ("Perioperativer Verlauf komplikationslos.", None),
        ("preoperative CT: no metastases.", None),
        ("Empfehlung: perioperative Chemotherapie nach FLOT.", "neoadjuvant"),
        ("perioperative chemotherapy with FLOT.", "neoadjuvant"),
        ("nach präoperativer Radiochemotherapie", "post_neoadjuvant"),
    ],
)
def test_setting_needs_a_treatment_not_a_timing_word(text: str, setting: str | None) -> None:
    assert _patient(text, "de").setting_hint == setting


def test_resected_pancreas_case_after_pppd() -> None:
    text = (
        "Entlassungsbrief Chirurgie. Diagnose: Pankreaskopfkarzinom, Z.n. pyloruserhaltender partieller "
        "Duodenopankreatektomie (PPPD) am 03.11.2026. Histologie: duktales Adenokarzinom, 24 mm, G2, pT2 pN1 "
        "(2/19 LK), L1 V0 Pn1, R0. Präoperativ CA 19-9 180 U/ml, CT ohne Fernmetastasen. Keimbahn-BRCA1/2 negativ."
    )
    findings = extract_findings(text, "de")
    assert "resected" in findings.conditions
    assert findings.setting_hint is None
    assert {b.name: b.status for b in findings.biomarkers} == {"BRCA1": "negative", "BRCA2": "negative"}
