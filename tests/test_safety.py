"""Safety rule engine: each severity, tiered rules, interactions, dose limits and the replan loop."""

from __future__ import annotations

import pytest

from oncoboard.domain import TNM, Biomarker, Findings, Scheme, Treatment, Tumor
from oncoboard.knowledge import load_table
from tools.guidelines import draft_schemes
from tools.safety import assess_drugs, critical_drugs, review_safety, safety_knowledge


def _scheme(drug: str, dose: str | None = None, kind: str = "evidence_priority") -> Scheme:
    return Scheme(
        kind=kind,  # type: ignore[arg-type]
        title=drug,
        treatments=[Treatment(name=drug, drugs=[drug], dose=dose)],
        rationale="hand-built for the test",
    )


def _only(findings: Findings, drug: str, dose: str | None = None) -> list[tuple[str, str | None, str | None]]:
    safety = review_safety(findings, [_scheme(drug, dose)])
    return [(f.severity, f.drug, f.rule_id) for f in safety.findings]


def test_tables_load_with_header_and_cover_every_severity() -> None:
    for name in ("safety/rules.yaml", "safety/drug_classes.yaml", "safety/max_doses.yaml"):
        table = load_table(name)
        assert table["source"] and table["edition"]
    know = safety_knowledge()
    assert {r.severity for r in know.rules.rules} == {"info", "warning", "critical"}
    assert len({r.id for r in know.rules.rules}) == len(know.rules.rules)
    assert all(r.source and r.reason and know.rule_drugs(r) for r in know.rules.rules)
    assert {"cisplatin", "pembrolizumab", "capecitabine", "osimertinib"} <= know.classes["systemic_anticancer"]


@pytest.mark.parametrize(
    ("findings", "drug", "expected", "basis"),
    [
        (
            Findings(oncology=True, labs={"creatinine_clearance_ml_min": 35}),
            "cisplatin",
            [("warning", "cisplatin", "SAF-CISPLATIN-CRCL-60")],
            "creatinine clearance 35 ml/min",
        ),
        (
            Findings(oncology=True, labs={"creatinine_clearance_ml_min": 25}),
            "cisplatin",
            [("critical", "cisplatin", "SAF-CISPLATIN-CRCL-30")],
            "creatinine clearance 25 ml/min",
        ),
        (
            Findings(oncology=True, labs={"egfr_ml_min": 50}),
            "cisplatin",
            [("warning", "cisplatin", "SAF-CISPLATIN-CRCL-60")],
            "eGFR 50 ml/min",
        ),
        (
            Findings(oncology=True, conditions=("hearing_loss",)),
            "cisplatin",
            [("warning", "cisplatin", "SAF-CISPLATIN-HEARING")],
            "hearing loss",
        ),
        (
            Findings(oncology=True, labs={"lvef_percent": 45}),
            "trastuzumab",
            [("critical", "trastuzumab", "SAF-LVEF-50-HER2-ANTHRA")],
            "LVEF 45 %",
        ),
        (
            Findings(oncology=True, labs={"lvef_percent": 40}),
            "doxorubicin",
            [("critical", "doxorubicin", "SAF-LVEF-50-HER2-ANTHRA")],
            "LVEF 40 %",
        ),
        (
            Findings(oncology=True, conditions=("child_pugh_c",)),
            "sorafenib",
            [("critical", "sorafenib", "SAF-CHILDPUGH-C")],
            "child pugh c",
        ),
        (
            Findings(oncology=True, labs={"child_pugh_score": 8}),
            "lenvatinib",
            [("warning", "lenvatinib", "SAF-CHILDPUGH-B")],
            "Child-Pugh score 8 points",
        ),
        (
            Findings(oncology=True, pregnant=True),
            "pembrolizumab",
            [("critical", "pembrolizumab", "SAF-PREGNANCY")],
            "pregnancy",
        ),
        (
            Findings(oncology=True, conditions=("pregnancy",)),
            "letrozole",
            [("critical", "letrozole", "SAF-PREGNANCY")],
            "pregnancy",
        ),
        (
            Findings(oncology=True, conditions=("organ_transplant",)),
            "nivolumab",
            [("critical", "nivolumab", "SAF-ICI-TRANSPLANT")],
            "organ transplant",
        ),
        (
            Findings(oncology=True, conditions=("active_autoimmune_disease",)),
            "atezolizumab",
            [("warning", "atezolizumab", "SAF-ICI-ACTIVE-AUTOIMMUNE")],
            "active autoimmune disease",
        ),
        (
            Findings(oncology=True, conditions=("varices",)),
            "bevacizumab",
            [("critical", "bevacizumab", "SAF-ANTIVEGF-BLEEDING")],
            "varices",
        ),
        (
            Findings(oncology=True, conditions=("recent_major_surgery",)),
            "ramucirumab",
            [("critical", "ramucirumab", "SAF-ANTIVEGF-BLEEDING")],
            "recent major surgery",
        ),
        (
            Findings(
                oncology=True,
                biomarkers=(
                    Biomarker(name="DPYD", result="homozygous c.1905+1G>A, complete deficiency", status="positive"),
                ),
            ),
            "capecitabine",
            [("critical", "capecitabine", "SAF-DPYD-COMPLETE")],
            "DPYD homozygous c.1905+1G>A, complete deficiency",
        ),
        (
            Findings(
                oncology=True,
                biomarkers=(
                    Biomarker(name="DPYD", result="heterozygous c.2846A>T, activity score 1.5", status="positive"),
                ),
            ),
            "fluorouracil",
            [("warning", "fluorouracil", "SAF-DPYD-PARTIAL")],
            "DPYD heterozygous c.2846A>T, activity score 1.5",
        ),
        (
            Findings(oncology=True, medications=("Marcumar",)),
            "capecitabine",
            [("warning", "capecitabine", "SAF-VKA-CAPECITABINE")],
            "Marcumar (current medication)",
        ),
        (
            Findings(oncology=True, medications=("warfarin 5 mg",)),
            "capecitabine",
            [("warning", "capecitabine", "SAF-VKA-CAPECITABINE")],
            "warfarin 5 mg (current medication)",
        ),
        (
            Findings(oncology=True, medications=("rifampicin",)),
            "osimertinib",
            [("warning", "osimertinib", "SAF-TKI-CYP3A4-INDUCER")],
            "rifampicin (current medication)",
        ),
        (
            Findings(oncology=True, medications=("carbamazepine",)),
            "lorlatinib",
            [("critical", "lorlatinib", "SAF-LORLATINIB-INDUCER")],
            "carbamazepine (current medication)",
        ),
        (
            Findings(oncology=True, medications=("citalopram",)),
            "ribociclib",
            [("warning", "ribociclib", "SAF-QT-INTERACTION")],
            "citalopram (current medication)",
        ),
    ],
)
def test_rules(findings: Findings, drug: str, expected: list[tuple[str, str, str]], basis: str) -> None:
    safety = review_safety(findings, [_scheme(drug)])
    assert [(f.severity, f.drug, f.rule_id) for f in safety.findings] == expected
    assert safety.findings[0].basis == basis
    assert safety.findings[0].reason
    severity = expected[0][0]
    assert safety.status == {"critical": "emergency_stop", "warning": "warning", "info": "ok"}[severity]


def test_info_only_is_ok_and_unrelated_drugs_are_silent() -> None:
    history = Findings(oncology=True, conditions=("autoimmune_disease",))
    safety = review_safety(history, [_scheme("durvalumab")])
    assert [(f.severity, f.rule_id) for f in safety.findings] == [("info", "SAF-ICI-AUTOIMMUNE-HISTORY")]
    assert safety.status == "ok"
    assert _only(Findings(oncology=True, conditions=("organ_transplant",)), "letrozole") == []
    assert _only(Findings(oncology=True, labs={"creatinine_clearance_ml_min": 90}), "cisplatin") == []
    assert review_safety(Findings(oncology=True, pregnant=True), []).status == "ok"


def test_dose_above_maximum_is_critical() -> None:
    findings = Findings(oncology=True)
    safety = review_safety(findings, [_scheme("osimertinib", "160 mg")])
    assert [(f.severity, f.drug, f.rule_id) for f in safety.findings] == [
        ("critical", "osimertinib", "SAF-MAXDOSE-OSIMERTINIB")
    ]
    assert "160 mg" in safety.findings[0].basis and safety.status == "emergency_stop"
    assert review_safety(findings, [_scheme("osimertinib", "80 mg")]).status == "ok"
    combo = Scheme(
        kind="evidence_priority",
        title="combo",
        treatments=[
            Treatment(
                name="atezo-bev",
                drugs=["atezolizumab", "bevacizumab"],
                dose="atezolizumab 1200 mg + bevacizumab 20 mg/kg",
            )
        ],
        rationale="hand-built",
    )
    assert critical_drugs(review_safety(findings, [combo])) == {"bevacizumab"}


def test_assess_drugs_reports_each_drug_once() -> None:
    findings = Findings(oncology=True, pregnant=True, labs={"creatinine_clearance_ml_min": 20})
    found = assess_drugs(findings, ["cisplatin", "Cisplatin", "pemetrexed"])
    assert sorted((f.drug, f.rule_id) for f in found) == [
        ("cisplatin", "SAF-CISPLATIN-CRCL-30"),
        ("cisplatin", "SAF-PREGNANCY"),
        ("pemetrexed", "SAF-PEMETREXED-CRCL-45"),
        ("pemetrexed", "SAF-PREGNANCY"),
    ]


def test_safety_loop_with_planner() -> None:
    """A critical finding excludes the drug; the next plan replaces it and passes the review."""
    findings = Findings(oncology=True, ecog=1, conditions=("child_pugh_a", "varices"))
    tumors = [Tumor(site="liver", histology="hepatocellular carcinoma", tnm=TNM(), other_staging={"bclc": "C"})]
    first = draft_schemes(findings, tumors, [])
    safety = review_safety(findings, first)
    assert safety.status == "emergency_stop"
    flagged = critical_drugs(safety)
    assert flagged == {"bevacizumab"}
    named = {f.drug for f in safety.findings}
    assert all(d in named for s in first for t in s.treatments for d in t.drugs if d in flagged)
    second = draft_schemes(findings, tumors, [], excluded_drugs=flagged, iteration=2)
    assert "bevacizumab" not in {d for s in second for t in s.treatments for d in t.drugs}
    assert review_safety(findings, second).status == "ok"


def test_withheld_standard_is_named_without_a_stop() -> None:
    """Renal failure withholds cisplatin chemoradiotherapy: the plan avoids cisplatin and the review
    names the withheld standard as a warning, not an emergency stop."""
    findings = Findings(oncology=True, ecog=1, setting_hint="unresectable", labs={"creatinine_clearance_ml_min": 25.0})
    tumors = [
        Tumor(
            site="lung",
            histology="squamous cell carcinoma",
            tnm=TNM(prefix="c", t="T2b", n="N2", m="M0", stage_group="IIIA"),
        )
    ]
    schemes = draft_schemes(findings, tumors, [])
    safety = review_safety(findings, schemes, tumors)
    withheld = [f for f in safety.findings if f.rule_id == "SAF-CISPLATIN-CRCL-30-WITHHELD"]
    assert [(f.severity, f.drug) for f in withheld] == [("warning", "cisplatin")]
    assert "lung.stage3.crt_durvalumab" in withheld[0].reason
    assert withheld[0].basis == "creatinine clearance 25 ml/min"
    assert safety.status == "warning"
    # without the staging the review judges only what the schemes hold
    assert not any(f.drug == "cisplatin" for f in review_safety(findings, schemes).findings)
    # normal renal function: nothing is withheld, nothing is said about cisplatin
    fit = findings.model_copy(update={"labs": {"creatinine_clearance_ml_min": 90.0}})
    assert not any(f.drug == "cisplatin" for f in review_safety(fit, draft_schemes(fit, tumors, []), tumors).findings)


def test_withheld_regimen_without_a_safety_rule_stays_silent() -> None:
    """ECOG 2 withholds chemo-immunotherapy, but no drug rule forbids it: no warning is invented."""
    findings = Findings(
        oncology=True, ecog=2, biomarkers=(Biomarker(name="PD-L1", result="TPS 10%", status="positive"),)
    )
    tumors = [Tumor(site="lung", histology="adenocarcinoma", tnm=TNM(prefix="c", m="M1c", stage_group="IVB"))]
    schemes = draft_schemes(findings, tumors, [])
    safety = review_safety(findings, schemes, tumors)
    assert not any(f.rule_id and f.rule_id.endswith("-WITHHELD") for f in safety.findings)


def test_ribociclib_with_a_long_qtc_is_stopped() -> None:
    """QTc 510 ms (congenital long QT): ribociclib is started only below 450 ms, so it is a critical finding."""
    from tools.extraction import extract_findings

    findings = extract_findings(
        "Invasive lobular carcinoma of the left breast, ER 95%, HER2 negative, multiple bone metastases. "
        "Baseline ECG: QTc 510 ms (congenital long QT).",
        "en",
    )
    assert findings.labs["qtc_ms"] == 510.0 and "long_qt_syndrome" in findings.conditions
    stopped = review_safety(findings, [_scheme("ribociclib")])
    assert stopped.status == "emergency_stop"
    assert any(f.rule_id == "SAF-RIBOCICLIB-QT" for f in stopped.findings)
    # another QT-prolonging drug gets a warning, and a drug without the effect nothing
    assert review_safety(findings, [_scheme("osimertinib", "80 mg")]).status == "warning"
    assert review_safety(findings, [_scheme("letrozole", "2.5 mg")]).status == "ok"
    unremarkable = findings.model_copy(update={"labs": {"qtc_ms": 420.0}, "conditions": ("metastatic",)})
    assert review_safety(unremarkable, [_scheme("ribociclib")]).status == "ok"
