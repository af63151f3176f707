"""The dev case set: schema and vocabulary of the gold labels, and the evaluation through the graph."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from evaluation.cases_eval import METRIC_KEYS, TUMOR_FIELDS, DevCase, load_cases
from oncoboard.domain import Site
from tools.icd10 import is_valid_who
from tools.safety.rules import safety_knowledge
from tools.tnm import stage_group

SITES = set(typing.get_args(Site))
# A fixed subset: colon with planted DPD deficiency, clean colon, German HCC with a recent variceal
# bleed, German stomach with DPD deficiency, a multiple-primary case and a non-oncology case.
SUBSET = ("colon_en_01", "colon_en_02", "hcc_de_01", "magen_de_01", "multi_en_01", "nononc_en_01")


@pytest.fixture(scope="module")
def cases() -> list[DevCase]:
    """Every case of knowledge/cases."""
    return load_cases()


def test_case_set_size_and_mix(cases: list[DevCase]) -> None:
    """At least 60 cases, a third German, enough drug, contraindicated and clean cases."""
    assert len(cases) >= 60
    assert sum(c.lang == "de" for c in cases) * 3 >= len(cases)
    assert sum(bool(c.gold.acceptable_first_drugs) for c in cases) >= 40
    assert sum(c.gold.planted_contraindication is not None for c in cases) >= 20
    assert sum(c.gold.planted_contraindication is None for c in cases) >= 20
    assert sum(not c.gold.oncology for c in cases) >= 4
    assert {t.site for c in cases for t in c.gold.tumors} >= SITES - {"other"}


def test_gold_vocabulary(cases: list[DevCase]) -> None:
    """Sites, ICD-10 codes, drugs and contraindication classes come from the project's vocabularies."""
    classes = safety_knowledge().classes
    known_drugs = classes["systemic_anticancer"]
    for case in cases:
        gold = case.gold
        assert all(t.site in SITES for t in gold.tumors), case.id
        if gold.oncology:
            assert gold.tumors and gold.icd10.primary is not None, case.id
        else:
            assert not gold.tumors and gold.icd10.primary is None and not gold.icd10.secondary, case.id
        for code in [gold.icd10.primary, *gold.icd10.secondary]:
            assert code is None or is_valid_who(code), f"{case.id}: {code}"
        unknown = {d for d in gold.acceptable_first_drugs if d.lower() not in known_drugs}
        assert not unknown, f"{case.id}: {unknown}"
        planted = gold.planted_contraindication
        if planted is not None:
            name = planted.drug_class_or_drug.lower()
            assert name in classes or name in known_drugs, f"{case.id}: {name}"


def test_gold_stage_groups_follow_the_tables(cases: list[DevCase]) -> None:
    """Every gold stage group (except prostate, oesophagus and thyroid, which need PSA/grade/histology/age) is the
    AJCC 8th group of its gold T, N and M."""
    checked = 0
    for case in cases:
        for tumor in case.gold.tumors:
            if tumor.stage_group is None or tumor.site in {"prostate", "esophagus", "thyroid"}:
                continue
            n = None if tumor.n == "NX" else tumor.n
            result = stage_group(tumor.site, tumor.t, n, tumor.m, prefix=tumor.prefix)
            assert result.group == tumor.stage_group, case.id
            checked += 1
    assert checked >= 40


def test_ids_unique_and_folder_header(tmp_path: Path) -> None:
    """A case file without its source header is refused."""
    (tmp_path / "bad.yaml").write_text("cases: []\n", encoding="utf-8")
    from oncoboard.knowledge import KnowledgeError

    with pytest.raises(KnowledgeError):
        load_cases(tmp_path)


def test_evaluation_on_subset(database: object, tmp_path: Path) -> None:
    """The subset through the real graph: the metrics dict has its keys and the measured scores."""
    from evaluation.cases_eval import evaluate_cases
    from graphs.service import ConsultService
    from oncoboard.crypto import Keyring
    from oncoboard.llm import NoModel

    service = ConsultService(db=database, keyring=Keyring.from_settings(None, tmp_path), llm=NoModel())  # type: ignore[arg-type]
    result = evaluate_cases(service=service, ids=SUBSET)
    assert set(METRIC_KEYS) <= set(result)
    assert result["cases"] == len(SUBSET)
    assert set(TUMOR_FIELDS) <= set(result["fields"])
    assert {r["id"] for r in result["per_case"]} == set(SUBSET)
    assert result["fields"] == EXPECTED_FIELDS
    assert result["icd10"] == EXPECTED_ICD10
    assert result["treatment"] == EXPECTED_TREATMENT
    assert result["safety"] == EXPECTED_SAFETY
    assert result["compliance"]["scored"] == 4 and result["compliance"]["mean"] == 100
    assert result["iterations"] == {"mean": 1, "distribution": {"1": 4}}


# Measured on the subset above (no language model, no literature store, no knowledge graph).
EXPECTED_FIELDS: dict[str, float | int | None] = {
    "oncology": 1.0,
    "site": 1.0,
    "histology": 1.0,
    "t": 1.0,
    "n": 1.0,
    "m": 1.0,
    "prefix": 1.0,
    "stage_group": 1.0,
    "tumors_scored": 6,
}
EXPECTED_ICD10: dict[str, float | None] = {
    "primary_accuracy": 1.0,
    "secondary_exact_set": 1.0,
    "secondary_precision": 1.0,
    "secondary_recall": 1.0,
    "secondary_f1": 1.0,
}
EXPECTED_TREATMENT: dict[str, float | int | None] = {
    "cases_with_acceptable_drugs": 4,
    "concordance": 1.0,
    "no_drug_proposed": 0,
}
EXPECTED_SAFETY: dict[str, float | int | None] = {
    "planted": 3,
    "caught": 3,
    "catch_rate": 1.0,
    "planted_drug_proposed": 3,
    "caught_when_proposed": 1.0,
    "clean": 3,
    "false_alarms": 0,
    "false_alarm_rate": 0.0,
}
