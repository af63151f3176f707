"""Kidney and thyroid guideline tables: what the planner proposes from the case text, what the
safety rules stop, and one whole consult of metastatic clear cell renal cell carcinoma."""

from __future__ import annotations

from pathlib import Path

import pytest

from oncoboard.domain import CaseInput, Findings, Scheme, Tumor
from tools.extraction import extract_findings
from tools.guidelines import check_compliance, draft_schemes, rules_for_case
from tools.safety import review_safety
from tools.tnm import stage_tumor

CHECKPOINT_INHIBITORS = {"pembrolizumab", "nivolumab", "ipilimumab"}

MET_CCRCC = (
    "62-year-old man, ECOG 0. Clear cell renal cell carcinoma of the left kidney, 9 cm, with multiple lung "
    "metastases (cT2a cN0 cM1). IMDC intermediate risk. Creatinine clearance 70 ml/min."
)


def _case(text: str, lang: str = "en") -> tuple[Findings, list[Tumor]]:
    """Findings and staged tumours as the extractor and the stager hand them to the planner."""
    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    tumors = []
    for finding in findings.tumors:
        result = stage_tumor(finding, findings)
        tumors.append(
            Tumor(
                primary=finding.primary,
                site=finding.site,
                subsite=finding.subsite,
                laterality=finding.laterality,
                histology=finding.histology,
                icdo3_morphology=finding.icdo3_morphology,
                tnm=result.tnm,
                other_staging=dict(result.other_staging),
            )
        )
    tumors.sort(key=lambda t: not t.primary)
    return findings, tumors


def _schemes(text: str, lang: str = "en") -> tuple[Findings, list[Tumor], dict[str, Scheme]]:
    findings, tumors = _case(text, lang)
    assert rules_for_case(findings, tumors).limited_reason is None
    schemes = draft_schemes(findings, tumors, [])
    assert check_compliance(findings, tumors, schemes).score == 100
    return findings, tumors, {s.kind: s for s in schemes}


def _drugs(scheme: Scheme) -> set[str]:
    return {d for t in scheme.treatments for d in t.drugs}


def _names(scheme: Scheme) -> str:
    return " | ".join(t.name for t in scheme.treatments)


# --------------------------------------------------------------------------- kidney


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        (MET_CCRCC, "en"),
        (
            "67-jähriger Patient, ECOG 1. Klarzelliges Nierenzellkarzinom der linken Niere, 9 cm, mit multiplen "
            "Lungenmetastasen (cT2a cN0 cM1). Kreatinin-Clearance 70 ml/min.",
            "de",
        ),
    ],
)
def test_metastatic_clear_cell_rcc_gets_an_immunotherapy_combination_first(text: str, lang: str) -> None:
    _, _, schemes = _schemes(text, lang)
    ep = schemes["evidence_priority"]
    assert ep.guideline_ref == "kidney.met.cc.pembrolizumab_axitinib"
    assert _drugs(ep) == {"pembrolizumab", "axitinib"}
    assert [t.dose for t in ep.treatments] == ["pembrolizumab 200 mg + axitinib 5 mg"]
    # the kinase inhibitor alone is the lower-intensity option, without a checkpoint inhibitor
    assert schemes["lowest_risk"].guideline_ref in {"kidney.met.cc.pazopanib", "kidney.met.cc.sunitinib"}
    assert not _drugs(schemes["lowest_risk"]) & CHECKPOINT_INHIBITORS
    assert schemes["innovative"].guideline_ref == "kidney.met.cc.lenvatinib_pembrolizumab"


def test_kidney_transplant_stops_the_checkpoint_inhibitor() -> None:
    text = MET_CCRCC + " Past history: kidney transplant 2015, on tacrolimus."
    findings, tumors, schemes = _schemes(text)
    assert "organ_transplant" in findings.conditions
    safety = review_safety(findings, list(schemes.values()), tumors, text)
    assert safety.status == "emergency_stop"
    critical = {(f.drug, f.rule_id) for f in safety.findings if f.severity == "critical"}
    assert ("pembrolizumab", "SAF-ICI-TRANSPLANT") in critical
    # the lowest-risk scheme is the option the transplant leaves open
    assert not _drugs(schemes["lowest_risk"]) & CHECKPOINT_INHIBITORS
    # once the review excludes the checkpoint inhibitors, no scheme offers one
    redrawn = draft_schemes(findings, tumors, [], excluded_drugs=CHECKPOINT_INHIBITORS)
    assert redrawn[0].guideline_ref in {"kidney.met.cc.pazopanib", "kidney.met.cc.sunitinib"}
    assert not {d for s in redrawn for d in _drugs(s)} & CHECKPOINT_INHIBITORS


def test_active_autoimmune_disease_flags_the_checkpoint_inhibitor() -> None:
    text = MET_CCRCC + " Active autoimmune disease: ulcerative colitis flare on mesalazine."
    findings, tumors, schemes = _schemes(text)
    safety = review_safety(findings, list(schemes.values()), tumors, text)
    flagged = {(f.drug, f.rule_id) for f in safety.findings if f.severity in {"critical", "warning"}}
    assert ("pembrolizumab", "SAF-ICI-ACTIVE-AUTOIMMUNE") in flagged


def test_localised_t1a_kidney_gets_partial_nephrectomy() -> None:
    _, tumors, schemes = _schemes(
        "55-year-old woman, ECOG 0. Clear cell renal cell carcinoma of the left kidney, 3 cm, cT1a cN0 cM0 on CT."
    )
    assert (tumors[0].tnm.t, tumors[0].tnm.stage_group) == ("T1a", "I")
    assert schemes["evidence_priority"].guideline_ref == "kidney.t1.partial_nephrectomy"
    assert "partial nephrectomy" in _names(schemes["evidence_priority"])
    assert schemes["lowest_risk"].guideline_ref == "kidney.t1a.thermal_ablation"
    assert not {d for s in schemes.values() for d in _drugs(s)}


def test_frail_patient_with_small_renal_mass_gets_active_surveillance() -> None:
    _, _, schemes = _schemes(
        "84-year-old woman, ECOG 3. Clear cell renal cell carcinoma of the right kidney, 2.5 cm, cT1a cN0 cM0."
    )
    assert schemes["evidence_priority"].guideline_ref == "kidney.t1a.active_surveillance"


def test_locally_advanced_kidney_gets_radical_nephrectomy() -> None:
    _, _, schemes = _schemes(
        "58-year-old man, ECOG 1. Clear cell renal cell carcinoma of the right kidney, 11 cm, cT2b cN0 cM0."
    )
    assert schemes["evidence_priority"].guideline_ref == "kidney.localised.radical_nephrectomy"


@pytest.mark.parametrize(
    ("pathology", "expected"),
    [
        ("8 cm, invading perirenal fat, pT3a pN0 cM0, ISUP grade 3", "kidney.adjuvant.pembrolizumab_pt3_4"),
        ("5 cm, pT1b pN1 cM0, ISUP grade 3", "kidney.adjuvant.pembrolizumab_n1"),
        ("3 cm, pT1a pN0 cM0, ISUP grade 2", "kidney.adjuvant.surveillance"),
    ],
)
def test_after_nephrectomy_high_risk_clear_cell_gets_adjuvant_pembrolizumab(pathology: str, expected: str) -> None:
    _, _, schemes = _schemes(
        f"60-year-old man, ECOG 0. Left radical nephrectomy: clear cell renal cell carcinoma, {pathology}."
    )
    ep = schemes["evidence_priority"]
    assert ep.guideline_ref == expected
    if expected.startswith("kidney.adjuvant.pembrolizumab"):
        assert [(t.dose, t.schedule) for t in ep.treatments] == [
            ("200 mg", "every 3 weeks for up to 1 year (17 cycles)")
        ]
        assert schemes["lowest_risk"].guideline_ref == "kidney.adjuvant.surveillance"


def test_metastatic_papillary_rcc_gets_cabozantinib() -> None:
    _, _, schemes = _schemes(
        "59-year-old man, ECOG 1. Papillary renal cell carcinoma of the right kidney, 8 cm, with liver "
        "metastases (cT2a cN0 cM1)."
    )
    ep = schemes["evidence_priority"]
    assert ep.guideline_ref == "kidney.met.ncc.cabozantinib"
    assert not {d for s in schemes.values() for d in _drugs(s)} & CHECKPOINT_INHIBITORS


# --------------------------------------------------------------------------- thyroid


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("45-year-old woman, ECOG 0. Papillary thyroid carcinoma of the right lobe, 3 cm, cT2 cN0 cM0.", "en"),
        ("45-jährige Patientin, ECOG 0. Papilläres Schilddrüsenkarzinom rechts, 3 cm, cT2 cN0 cM0.", "de"),
    ],
)
def test_papillary_thyroid_t2_n0_gets_thyroidectomy(text: str, lang: str) -> None:
    _, tumors, schemes = _schemes(text, lang)
    assert (tumors[0].site, tumors[0].tnm.t, tumors[0].tnm.n) == ("thyroid", "T2", "N0")
    assert schemes["evidence_priority"].guideline_ref == "thyroid.dtc.total_thyroidectomy"
    assert "total thyroidectomy" in _names(schemes["evidence_priority"])
    assert schemes["lowest_risk"].guideline_ref == "thyroid.dtc.lobectomy"


def test_after_thyroidectomy_node_positive_gets_radioactive_iodine_and_tsh_suppression() -> None:
    _, _, schemes = _schemes(
        "39-year-old woman, ECOG 0. Total thyroidectomy: papillary thyroid carcinoma, 2.5 cm, pT2 pN1a cM0."
    )
    ep = schemes["evidence_priority"]
    assert ep.guideline_ref == "thyroid.dtc.adjuvant.rai_n1"
    assert "radioactive iodine" in _names(ep) and "levothyroxine" in _names(ep)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        (
            "66-year-old man, ECOG 1. Papillary thyroid carcinoma, pT3 pN1 M1 with lung metastases, progressive "
            "and refractory to radioactive iodine.",
            "en",
        ),
        (
            "66-jähriger Patient, ECOG 1. Papilläres Schilddrüsenkarzinom pT3 pN1 M1 mit Lungenmetastasen, "
            "progredient unter Radiojodtherapie.",
            "de",
        ),
    ],
)
def test_radioiodine_refractory_metastatic_dtc_gets_lenvatinib(text: str, lang: str) -> None:
    _, _, schemes = _schemes(text, lang)
    ep = schemes["evidence_priority"]
    assert ep.guideline_ref == "thyroid.dtc.rair.lenvatinib"
    assert [(t.drugs, t.dose) for t in ep.treatments] == [(["lenvatinib"], "24 mg")]
    assert schemes["lowest_risk"].guideline_ref == "thyroid.dtc.rair.sorafenib"


def test_metastatic_dtc_without_stated_refractoriness_gets_radioactive_iodine_first() -> None:
    _, _, schemes = _schemes(
        "58-year-old man, ECOG 0. Follicular thyroid carcinoma, 5 cm, cT3a cN0 with lung metastases (cM1)."
    )
    assert schemes["evidence_priority"].guideline_ref == "thyroid.dtc.met.radioiodine"
    assert schemes["innovative"].guideline_ref == "thyroid.dtc.met.lenvatinib_once_refractory"


def test_anaplastic_thyroid_with_braf_v600e_gets_dabrafenib_trametinib() -> None:
    _, _, schemes = _schemes(
        "71-year-old woman, ECOG 1. Anaplastic thyroid carcinoma, 5 cm, cT3a cN1 cM0. BRAF V600E mutation detected."
    )
    ep = schemes["evidence_priority"]
    assert ep.guideline_ref == "thyroid.atc.dabrafenib_trametinib"
    assert [t.dose for t in ep.treatments] == ["dabrafenib 150 mg + trametinib 2 mg"]


def test_anaplastic_thyroid_without_braf_goes_to_the_board_with_limited_evidence() -> None:
    findings, tumors = _case("71-year-old woman, ECOG 1. Anaplastic thyroid carcinoma, 5 cm, cT3a cN1 cM0.")
    assert rules_for_case(findings, tumors).limited_reason is not None
    schemes = draft_schemes(findings, tumors, [])
    assert all(s.limited_evidence for s in schemes)
    assert not {d for s in schemes for d in _drugs(s)}


def test_ret_mutant_medullary_thyroid_cancer_gets_selpercatinib() -> None:
    _, _, schemes = _schemes(
        "52-year-old man, ECOG 0. Medullary thyroid carcinoma with liver metastases, cT2 cN1b cM1. "
        "RET M918T mutation detected."
    )
    assert schemes["evidence_priority"].guideline_ref == "thyroid.mtc.advanced.selpercatinib"


def test_localised_medullary_thyroid_cancer_gets_thyroidectomy_with_neck_dissection() -> None:
    _, _, schemes = _schemes("48-year-old woman, ECOG 0. Medullary thyroid carcinoma, 2.5 cm, cT2 cN0 cM0.")
    assert schemes["evidence_priority"].guideline_ref == "thyroid.mtc.total_thyroidectomy"


# --------------------------------------------------------------------------- the whole consult


def test_metastatic_clear_cell_rcc_consult(database: object, tmp_path: Path) -> None:
    from graphs.service import ConsultService
    from oncoboard.config import RunContext
    from oncoboard.crypto import Keyring
    from oncoboard.llm import NoModel

    service = ConsultService(db=database, keyring=Keyring.from_settings(None, tmp_path), llm=NoModel())  # type: ignore[arg-type]
    report = service.consult(CaseInput(text=MET_CCRCC), RunContext(use_llm=False))
    assert report.limited_evidence is False
    ep = report.schemes[0]
    assert ep.kind == "evidence_priority" and ep.guideline_ref == "kidney.met.cc.pembrolizumab_axitinib"
    assert {d for t in ep.treatments for d in t.drugs} == {"pembrolizumab", "axitinib"}
    assert report.safety.status != "emergency_stop"
    assert report.compliance.score == 100
