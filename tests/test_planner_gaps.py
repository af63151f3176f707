"""Planner and safety gaps: ESCC checkpoint options, treated varices, yp rectal follow-up, no repeated
breast surgery after resection, and a lowest-risk scheme that a critical safety rule cannot stop."""

from __future__ import annotations

import re

import pytest

from agents.safety_reviewer import make_safety_reviewer
from graphs.state import Intake, Plan, Staging
from oncoboard.domain import LIMITED_EVIDENCE_TEXT, TNM, Biomarker, Findings, Scheme, Treatment, Tumor
from tools.extraction import extract_findings
from tools.guidelines import check_compliance, draft_schemes, rules_for_case, site_guidelines
from tools.safety import review_safety
from tools.safety.qualifiers import resolved_conditions


def _bm(name: str, result: str, status: str = "positive") -> Biomarker:
    return Biomarker(name=name, result=result, status=status)  # type: ignore[arg-type]


def _tumor(site: str, stage: str | None, t: str, n: str, m: str, *, prefix: str = "c", **kw: str) -> Tumor:
    tnm = TNM(prefix=prefix, t=t, n=n, m=m, stage_group=stage)  # type: ignore[arg-type]
    return Tumor(site=site, tnm=tnm, **kw)  # type: ignore[arg-type]


def _by_kind(schemes: list[Scheme]) -> dict[str, Scheme]:
    return {s.kind: s for s in schemes}


def _drugs(scheme: Scheme) -> set[str]:
    return {d for t in scheme.treatments for d in t.drugs}


# ------------------------------------------------------------------ 1. oesophageal SCC, PD-L1


def _escc(*markers: Biomarker, conditions: tuple[str, ...] = ()) -> tuple[Findings, list[Tumor]]:
    findings = Findings(oncology=True, biomarkers=markers, ecog=1, conditions=("metastatic", *conditions))
    tumor = _tumor("esophagus", "IVB", "T3", "N2", "M1", histology="squamous cell carcinoma")
    return findings, [tumor]


def test_escc_cps_10_or_more_gets_pembrolizumab_with_chemotherapy() -> None:
    findings, tumors = _escc(_bm("PD-L1", "CPS 15"))
    schemes = _by_kind(draft_schemes(findings, tumors, []))
    ep = schemes["evidence_priority"]
    assert ep.guideline_ref == "esophagus.met.scc.pembrolizumab_chemo"
    assert _drugs(ep) == {"pembrolizumab", "cisplatin", "fluorouracil"}
    assert [t.dose for t in ep.treatments] == [
        "pembrolizumab 200 mg + cisplatin 80 mg/m2 + fluorouracil 800 mg/m2 per day, days 1-5"
    ]
    assert "PD-L1 CPS 15" in ep.bases.patient_data
    # the lowest-risk scheme stays the chemotherapy doublet
    assert _drugs(schemes["lowest_risk"]) == {"cisplatin", "fluorouracil"}
    assert check_compliance(findings, tumors, list(schemes.values())).score == 100


def test_escc_cps_below_10_gets_no_pembrolizumab() -> None:
    findings, tumors = _escc(_bm("PD-L1", "CPS 5"))
    drugs = {d for s in draft_schemes(findings, tumors, []) for d in _drugs(s)}
    assert "pembrolizumab" not in drugs
    assert {"cisplatin", "fluorouracil"} <= drugs


def test_escc_tps_1_percent_keeps_nivolumab_first() -> None:
    findings, tumors = _escc(_bm("PD-L1", "TPS 12%"))
    ep = draft_schemes(findings, tumors, [])[0]
    assert ep.guideline_ref == "esophagus.met.scc.nivolumab_chemo"
    assert "nivolumab" in _drugs(ep)


def test_escc_kidney_transplant_stops_the_checkpoint_inhibitor() -> None:
    findings, tumors = _escc(_bm("PD-L1", "CPS 15"), conditions=("organ_transplant",))
    schemes = draft_schemes(findings, tumors, [])
    safety = review_safety(findings, schemes, tumors)
    assert safety.status == "emergency_stop"
    critical = {f.drug for f in safety.findings if f.severity == "critical"}
    assert critical == {"pembrolizumab"}
    assert any(f.rule_id == "SAF-ICI-TRANSPLANT" for f in safety.findings)
    # every scheme carrying the drug has a finding that names it (the contract's promise)
    for scheme in schemes:
        assert _drugs(scheme) & {"pembrolizumab"} <= critical


def test_escc_transplant_from_the_extracted_text() -> None:
    text = (
        "Squamous cell carcinoma of the mid-thoracic oesophagus, cT3 cN2 cM1 with liver metastases. "
        "PD-L1 CPS 15. ECOG 1. Past history: kidney transplant 2019, on tacrolimus."
    )
    findings = extract_findings(text, "en")
    assert "organ_transplant" in findings.conditions
    tumors = [_tumor("esophagus", "IVB", "T3", "N2", "M1", histology="squamous cell carcinoma")]
    safety = review_safety(findings, draft_schemes(findings, tumors, []), tumors, text)
    assert any(f.severity == "critical" and f.drug == "pembrolizumab" for f in safety.findings)


# ------------------------------------------------------------------ 2. varices: treated or not


def _hcc_text(endoscopy: str) -> str:
    return (
        "Hepatocellular carcinoma, BCLC C, with portal vein tumour thrombus. Cirrhosis Child-Pugh A. ECOG 1. "
        f"{endoscopy} Creatinine clearance 75 ml/min."
    )


def _atezo_bev() -> Scheme:
    return Scheme(
        kind="evidence_priority",
        title="Atezolizumab with bevacizumab",
        treatments=[Treatment(name="atezolizumab with bevacizumab", drugs=["atezolizumab", "bevacizumab"])],
        rationale="first-line advanced HCC",
    )


def _bev_review(text: str, lang: str = "en", *, with_text: bool = True) -> list[tuple[str, str | None, str | None]]:
    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    assert "varices" in findings.conditions
    safety = review_safety(findings, [_atezo_bev()], None, text if with_text else None)
    return [(f.severity, f.drug, f.rule_id) for f in safety.findings]


@pytest.mark.parametrize(
    ("endoscopy", "lang"),
    [
        ("Upper endoscopy: small oesophageal varices, banded last month.", "en"),
        ("Oesophageal varices after band ligation.", "en"),
        ("Gastroscopy: oesophageal varices, ligated in March.", "en"),
        ("ÖGD: Ösophagusvarizen Grad II, nach Ligatur behandelt.", "de"),
    ],
)
def test_treated_varices_do_not_stop_bevacizumab(endoscopy: str, lang: str) -> None:
    found = _bev_review(_hcc_text(endoscopy), lang)
    assert ("critical", "bevacizumab", "SAF-ANTIVEGF-BLEEDING") not in found
    # the audit still sees why the rule stayed quiet
    assert ("info", "bevacizumab", "SAF-ANTIVEGF-BLEEDING-SET-ASIDE") in found


@pytest.mark.parametrize(
    "endoscopy",
    [
        "Upper endoscopy: large oesophageal varices with red wale signs.",
        "Upper endoscopy: oesophageal varices, band ligation planned.",
        "Upper endoscopy: oesophageal varices, untreated.",
        "Oesophageal varices, banded last month. New gastric varices on the latest endoscopy.",
    ],
)
def test_untreated_or_high_risk_varices_stop_bevacizumab(endoscopy: str) -> None:
    found = _bev_review(_hcc_text(endoscopy))
    assert ("critical", "bevacizumab", "SAF-ANTIVEGF-BLEEDING") in found


def test_varices_without_the_text_fail_closed() -> None:
    found = _bev_review(_hcc_text("Upper endoscopy: small oesophageal varices, banded last month."), with_text=False)
    assert ("critical", "bevacizumab", "SAF-ANTIVEGF-BLEEDING") in found


def test_resolved_conditions_needs_a_located_mention() -> None:
    structured_only = Findings(oncology=True, conditions=("varices",))
    assert resolved_conditions(structured_only, "Varices banded last month.") == {}


def test_safety_reviewer_node_reads_the_intake_text() -> None:
    text = _hcc_text("Upper endoscopy: small oesophageal varices, banded last month.")
    findings = extract_findings(text, "en")
    tumors = (_tumor("liver", None, "T4", "N0", "M0", histology="hepatocellular carcinoma", other_staging={}),)
    scheme = _atezo_bev()
    state = {
        "intake": Intake(case_id="c1", language="en", text=text, accepted=True),
        "findings": findings,
        "staging": Staging(tumors=tumors),
        "plan": Plan(schemes=(scheme,), iteration=1),
    }
    command = make_safety_reviewer(None)(state, None)  # type: ignore[arg-type]
    assert command.goto == "report"
    assert command.update["safety"].status != "emergency_stop"


# ------------------------------------------------------------------ 3. rectum after neoadjuvant therapy


@pytest.mark.parametrize(
    ("t", "n", "stage", "expected"),
    [
        ("T2", "N0", "I", "rectum.post_neoadjuvant.follow_up"),
        ("T1", "N0", "I", "rectum.post_neoadjuvant.follow_up"),
        ("T0", "N0", None, "rectum.post_neoadjuvant.follow_up"),
        ("T3", "N1", "IIIB", "rectum.post_neoadjuvant.adjuvant_review"),
    ],
)
def test_rectum_after_neoadjuvant_therapy_gets_a_plan(t: str, n: str, stage: str | None, expected: str) -> None:
    findings = Findings(oncology=True, ecog=0, conditions=("post_neoadjuvant",))
    tumors = [_tumor("colorectal", stage, t, n, "M0", prefix="yp", subsite="rectum", histology="adenocarcinoma")]
    assert rules_for_case(findings, tumors).limited_reason is None
    schemes = draft_schemes(findings, tumors, [])
    ep = schemes[0]
    assert ep.guideline_ref == expected
    assert not ep.limited_evidence
    assert LIMITED_EVIDENCE_TEXT not in ep.rationale
    assert not _drugs(ep)


def test_rectum_post_neoadjuvant_from_german_text() -> None:
    text = (
        "Rektumkarzinom 6 cm ab ano, Ausgangsbefund cT3 cN1 cM0. Nach neoadjuvanter Radiochemotherapie und TME: "
        "Adenokarzinom, ypT2 ypN0 (0/14) cM0, R0. ECOG 0."
    )
    findings = extract_findings(text, "de")
    tumors = [_tumor("colorectal", "I", "T2", "N0", "M0", prefix="yp", subsite="rectum", histology="adenocarcinoma")]
    ep = draft_schemes(findings, tumors, [])[0]
    assert ep.guideline_ref == "rectum.post_neoadjuvant.follow_up"
    assert "follow-up" in ep.treatments[0].name


# ------------------------------------------------------------------ 4. breast after surgery

_SURGERY = re.compile(r"surgery|mastectomy|resection|excision|ectomy|lobectomy", re.IGNORECASE)
_AFTER_SURGERY = re.compile(r"^(adjuvant|after|post)", re.IGNORECASE)


def test_no_option_after_resection_proposes_the_operation_again() -> None:
    for site, table in site_guidelines().items():
        for rec in table.recommendations:
            settings = set(rec.conditions.settings or [])
            if not settings & {"adjuvant", "post_neoadjuvant"}:
                continue
            for step in rec.treatments:
                if step.drugs or _AFTER_SURGERY.match(step.name):
                    continue
                assert not _SURGERY.search(step.name), f"{site} {rec.id}: '{step.name}' after a resection"


def _breast(prefix: str, setting: tuple[str, ...]) -> tuple[Findings, list[Tumor]]:
    findings = Findings(
        oncology=True,
        age=49,
        biomarkers=(_bm("ER", "80%"), _bm("PR", "10%"), _bm("HER2", "IHC 3+")),
        labs={"lvef_percent": 61},
        conditions=setting,
    )
    return findings, [_tumor("breast", "IA", "T1c", "N0", "M0", prefix=prefix, histology="invasive ductal carcinoma")]


def test_breast_after_conserving_surgery_is_adjuvant_without_surgery() -> None:
    findings, tumors = _breast("p", ("resected",))
    schemes = draft_schemes(findings, tumors, [])
    for scheme in schemes:
        assert not any(_SURGERY.search(t.name) and not t.name.startswith("adjuvant") for t in scheme.treatments)
    ep = schemes[0]
    assert ep.guideline_ref == "breast.adjuvant.her2pos.stage1_apt"
    assert {"paclitaxel", "trastuzumab"} <= _drugs(ep)
    assert any(t.name.startswith("adjuvant radiotherapy") for t in ep.treatments)
    assert check_compliance(findings, tumors, schemes).score == 100


def test_breast_before_surgery_still_starts_with_the_operation() -> None:
    findings, tumors = _breast("c", ())
    ep = draft_schemes(findings, tumors, [])[0]
    assert ep.guideline_ref == "breast.early.her2pos.stage1_apt"
    assert ep.treatments[0].name.startswith("breast-conserving surgery")


def test_hr_positive_adjuvant_endocrine_names_radiotherapy() -> None:
    findings = Findings(
        oncology=True, age=62, biomarkers=(_bm("ER", "90%"), _bm("PR", "40%"), _bm("HER2", "IHC 0", "negative"))
    )
    tumors = [_tumor("breast", "IA", "T1c", "N0", "M0", prefix="p", histology="invasive ductal carcinoma")]
    ep = draft_schemes(findings, tumors, [])[0]
    assert _drugs(ep) == {"letrozole"}
    assert [t.name.split(":")[0] for t in ep.treatments] == ["adjuvant radiotherapy", "letrozole"]


# ------------------------------------------------------------------ 5. complete DPD deficiency


def _colon_stage3(*markers: Biomarker) -> tuple[Findings, list[Tumor]]:
    findings = Findings(oncology=True, ecog=0, age=63, biomarkers=markers, conditions=("resected",))
    tumor = _tumor("colorectal", "IIIB", "T3", "N1b", "M0", prefix="p", subsite="sigmoid colon")
    return findings, [tumor.model_copy(update={"histology": "adenocarcinoma"})]


def test_complete_dpd_deficiency_lowest_risk_defers_to_the_board() -> None:
    findings, tumors = _colon_stage3(_bm("DPYD", "homozygous *2A, complete DPD deficiency"))
    schemes = _by_kind(draft_schemes(findings, tumors, []))
    lr = schemes["lowest_risk"]
    assert lr.limited_evidence
    assert not _drugs(lr)
    assert LIMITED_EVIDENCE_TEXT in lr.rationale
    assert "capecitabine" in lr.rationale and "critical safety rule" in lr.rationale
    # the evidence-priority option is still drafted, and the safety review stops it
    safety = review_safety(findings, list(schemes.values()), tumors)
    assert safety.status == "emergency_stop"
    assert not any(f.severity == "critical" and f.drug in _drugs(lr) for f in safety.findings)
    compliance = check_compliance(findings, tumors, list(schemes.values()))
    assert compliance.scheme_scores["lowest_risk"] == 100
    assert not any(n.startswith("lowest_risk") for n in compliance.findings)


def test_without_dpd_deficiency_lowest_risk_keeps_a_regimen() -> None:
    findings, tumors = _colon_stage3(_bm("MMR", "pMMR", "negative"))
    lr = _by_kind(draft_schemes(findings, tumors, []))["lowest_risk"]
    assert not lr.limited_evidence
    assert _drugs(lr) & {"capecitabine", "fluorouracil"}


def test_partial_dpd_deficiency_is_a_warning_not_a_withdrawal() -> None:
    findings, tumors = _colon_stage3(_bm("DPYD", "heterozygous c.1905+1G>A"))
    lr = _by_kind(draft_schemes(findings, tumors, []))["lowest_risk"]
    assert not lr.limited_evidence
