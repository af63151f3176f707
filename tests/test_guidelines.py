"""Guideline tables, scheme drafting and compliance scoring on hand-built cases across sites."""

from __future__ import annotations

import pytest

from oncoboard.domain import (
    LIMITED_EVIDENCE_TEXT,
    SCHEME_KINDS,
    TNM,
    Biomarker,
    EvidenceHit,
    Findings,
    Scheme,
    Treatment,
    Tumor,
    TumorFinding,
)
from oncoboard.knowledge import KnowledgeError, load_table
from tools.guidelines import (
    build_profile,
    check_compliance,
    common_table,
    compliance_score,
    draft_schemes,
    rules_for_case,
    site_guidelines,
)
from tools.guidelines.doses import deviation, parse_dose_text
from tools.guidelines.table import DoseSpec, site_table_names

SITES = {
    "lung", "breast", "colorectal", "liver", "esophagus", "stomach", "pancreas", "prostate", "kidney", "thyroid",
    "unknown_primary",
}  # fmt: skip


def _bm(name: str, result: str, status: str = "positive") -> Biomarker:
    return Biomarker(name=name, result=result, status=status)  # type: ignore[arg-type]


def _tumor(
    site: str,
    stage: str | None = None,
    *,
    t: str | None = None,
    n: str | None = None,
    m: str | None = None,
    prefix: str | None = "c",
    histology: str | None = None,
    subsite: str | None = None,
    bclc: str | None = None,
) -> Tumor:
    return Tumor(
        site=site,  # type: ignore[arg-type]
        histology=histology,
        subsite=subsite,
        tnm=TNM(prefix=prefix, t=t, n=n, m=m, stage_group=stage),  # type: ignore[arg-type]
        other_staging={"bclc": bclc} if bclc else {},
    )


def _egfr_case() -> tuple[Findings, list[Tumor]]:
    findings = Findings(oncology=True, biomarkers=(_bm("EGFR", "exon 19 deletion"),), ecog=1)
    return findings, [_tumor("lung", "IVA", t="T2a", n="N2", m="M1b", histology="adenocarcinoma")]


def _ref(schemes: list[Scheme]) -> list[str | None]:
    return [s.guideline_ref for s in schemes]


# ------------------------------------------------------------------------------------ tables


def test_every_table_loads_with_header() -> None:
    names = site_table_names()
    assert {n.split("/")[-1].removesuffix(".yaml") for n in names} == SITES
    for name in [*names, "guidelines/common.yaml"]:
        table = load_table(name)
        assert table["source"] and table["edition"]
    tables = site_guidelines()
    assert set(tables) == SITES
    for table in tables.values():
        assert table.recommendations
        for rec in table.recommendations:
            assert rec.sources and rec.evidence_level in common_table().evidence_levels
            assert rec.kinds


def test_table_without_header_is_refused() -> None:
    with pytest.raises(KnowledgeError):
        load_table("guidelines/does_not_exist.yaml")


def test_labelled_doses_in_tables() -> None:
    tables = site_guidelines()
    recs = {r.id: r for t in tables.values() for r in t.recommendations}
    assert recs["lung.met.egfr.osimertinib"].dose_specs("osimertinib")[0].display() == "80 mg"
    assert recs["lung.met.alk.alectinib"].dose_specs("alectinib")[0].value == 600
    assert recs["lung.met.kras_g12c.sotorasib"].dose_specs("sotorasib")[0].value == 960
    atezo = recs["liver.bclcc.atezolizumab_bevacizumab"]
    assert atezo.dose_specs("atezolizumab")[0].value == 1200
    assert atezo.dose_specs("bevacizumab")[0].display() == "15 mg/kg"
    assert recs["liver.bclcc.sorafenib"].dose_specs("sorafenib")[0].value == 400
    assert [d.value for d in recs["breast.met.her2pos.cleopatra"].dose_specs("trastuzumab")] == [8, 6]
    assert recs["breast.adjuvant.hrpos.letrozole"].dose_specs("letrozole")[0].value == 2.5
    assert recs["breast.adjuvant.hrpos.tamoxifen"].dose_specs("tamoxifen")[0].value == 20
    assert recs["prostate.mhspc.enzalutamide"].dose_specs("enzalutamide")[0].value == 160
    assert recs["colon.adjuvant.stage3_capox_3m"].dose_specs("capecitabine")[0].value == 1000


# ------------------------------------------------------------------------------------ doses


def test_parse_and_deviation() -> None:
    amounts = parse_dose_text("oxaliplatin 130 mg/m2 + capecitabine 1000 mg/m2", ["oxaliplatin", "capecitabine"])
    assert [(a.drug, a.low, a.unit) for a in amounts] == [
        ("oxaliplatin", 130, "mg/m2"),
        ("capecitabine", 1000, "mg/m2"),
    ]
    assert [(a.low, a.unit) for a in parse_dose_text("AUC 5", ["carboplatin"])] == [(5, "AUC")]
    spec = DoseSpec(drug="capecitabine", unit="mg/m2", min=1000, max=1250)
    inside = parse_dose_text("1100 mg/m2", ["capecitabine"])[0]
    above = parse_dose_text("1375 mg/m2", ["capecitabine"])[0]
    wrong_unit = parse_dose_text("1100 mg", ["capecitabine"])[0]
    assert deviation(inside, [spec]) == 0.0
    assert deviation(above, [spec]) == pytest.approx(0.10)
    assert deviation(wrong_unit, [spec]) is None


# ------------------------------------------------------------------------------------ planner


def test_lung_egfr_three_schemes_in_order() -> None:
    findings, tumors = _egfr_case()
    evidence = [
        EvidenceHit(id="card-flaura", title="FLAURA: osimertinib in untreated EGFR-mutated advanced NSCLC", score=0.9),
        EvidenceHit(id="card-keynote189", title="KEYNOTE-189: pembrolizumab plus chemotherapy", score=0.5),
    ]
    schemes = draft_schemes(findings, tumors, evidence)
    assert [s.kind for s in schemes] == list(SCHEME_KINDS)
    ep = schemes[0]
    assert ep.guideline_ref == "lung.met.egfr.osimertinib"
    assert ep.treatments[0].drugs == ["osimertinib"]
    assert ep.treatments[0].dose == "80 mg" and ep.treatments[0].schedule.startswith("once daily")
    assert {"EGFR exon 19 deletion", "stage IVA", "ECOG 1"} <= set(ep.bases.patient_data)
    assert ep.bases.literature == ["card-flaura"]
    assert ep.bases.model_reasoning is None
    assert schemes[2].title.startswith("Innovative")
    assert "Newer or trial-based evidence" in schemes[2].rationale
    assert not any(s.limited_evidence for s in schemes)
    assert "pembrolizumab" not in {d for s in schemes for t in s.treatments for d in t.drugs}


@pytest.mark.parametrize(
    ("findings", "tumors", "expected"),
    [
        (  # PD-L1 high, no driver
            Findings(
                oncology=True,
                ecog=1,
                biomarkers=(_bm("PD-L1", "TPS 80%"), _bm("EGFR", "wild type", "negative")),
            ),
            [_tumor("lung", "IVB", m="M1c", histology="adenocarcinoma")],
            [
                "lung.met.pdl1_high.pembrolizumab",
                "lung.met.pdl1_high.pembrolizumab",
                "lung.met.nonsq.nivolumab_ipilimumab_chemo",
            ],
        ),
        (  # PD-L1 low non-squamous
            Findings(oncology=True, ecog=1, biomarkers=(_bm("PD-L1", "TPS 10%"),)),
            [_tumor("lung", "IVA", m="M1a", histology="adenocarcinoma")],
            [
                "lung.met.nonsq.pembrolizumab_carboplatin_pemetrexed",
                "lung.met.carboplatin_doublet_frail",
                "lung.met.nonsq.nivolumab_ipilimumab_chemo",
            ],
        ),
        (  # ALK
            Findings(oncology=True, ecog=0, biomarkers=(_bm("ALK", "EML4-ALK fusion"),)),
            [_tumor("lung", "IVB", m="M1c", histology="adenocarcinoma")],
            ["lung.met.alk.alectinib", "lung.met.alk.alectinib", "lung.met.alk.lorlatinib"],
        ),
        (  # unresectable stage III
            Findings(oncology=True, ecog=1, setting_hint="unresectable"),
            [_tumor("lung", "IIIB", t="T3", n="N2", m="M0", histology="squamous cell carcinoma")],
            ["lung.stage3.crt_durvalumab", "lung.stage3.sequential", None],
        ),
        (  # resected EGFR stage II: adjuvant osimertinib
            Findings(oncology=True, ecog=0, biomarkers=(_bm("EGFR", "L858R"),)),
            [_tumor("lung", "IIB", t="T3", n="N0", m="M0", prefix="p", histology="adenocarcinoma")],
            ["lung.adjuvant.osimertinib", "lung.adjuvant.osimertinib", "lung.adjuvant.alectinib"][:2] + [None],
        ),
        (  # triple-negative early breast: KEYNOTE-522
            Findings(
                oncology=True,
                ecog=0,
                biomarkers=(
                    _bm("ER", "0%", "negative"),
                    _bm("PR", "0%", "negative"),
                    _bm("HER2", "0", "negative"),
                ),
            ),
            [_tumor("breast", "IIB", t="T2", n="N1", m="M0")],
            ["breast.early.tnbc.keynote522", "breast.early.tnbc.neoadjuvant_chemo", None],
        ),
        (  # HER2-positive metastatic breast
            Findings(oncology=True, ecog=0, biomarkers=(_bm("HER2", "3+"), _bm("ER", "negative", "negative"))),
            [_tumor("breast", "IV", m="M1")],
            ["breast.met.her2pos.cleopatra", "breast.met.her2pos.paclitaxel_hp", None],
        ),
        (  # colon stage III after resection, low risk
            Findings(oncology=True, ecog=0),
            [_tumor("colorectal", "IIIB", t="T3", n="N1a", m="M0", prefix="p", subsite="sigmoid colon")],
            ["colon.adjuvant.stage3_capox_3m", "colon.adjuvant.capecitabine", None],
        ),
        (  # metastatic MSI-high colorectal
            Findings(oncology=True, ecog=1, biomarkers=(_bm("MMR", "deficient (loss of MLH1/PMS2)"),)),
            [_tumor("colorectal", "IVA", m="M1a", subsite="caecum")],
            ["crc.met.msi.pembrolizumab", "crc.met.msi.pembrolizumab", "crc.met.msi.nivolumab_ipilimumab"],
        ),
        (  # RAS wild-type left-sided metastatic colorectal
            Findings(
                oncology=True,
                ecog=0,
                biomarkers=(_bm("KRAS", "wild type", "negative"), _bm("NRAS", "wild type", "negative")),
            ),
            [_tumor("colorectal", "IVA", m="M1a", subsite="descending colon")],
            ["crc.met.left_raswt.folfox_panitumumab", "crc.met.capecitabine_bevacizumab", None],
        ),
        (  # BRAF V600E second line colorectal
            Findings(oncology=True, ecog=1, setting_hint="second line", biomarkers=(_bm("BRAF", "V600E"),)),
            [_tumor("colorectal", "IVB", m="M1b", subsite="ascending colon")],
            ["crc.met.braf.encorafenib_cetuximab", "crc.met.braf.encorafenib_cetuximab", None],
        ),
        (  # rectal cancer stage III: total neoadjuvant therapy
            Findings(oncology=True, ecog=0),
            [_tumor("colorectal", "IIIB", t="T3", n="N1", m="M0", subsite="rectum")],
            ["rectum.primary.tnt_rapido", "rectum.primary.long_course_crt", "rectum.primary.watch_and_wait"],
        ),
        (  # HCC BCLC B
            Findings(oncology=True, ecog=0, conditions=("child_pugh_a",)),
            [_tumor("liver", bclc="B", histology="hepatocellular carcinoma")],
            ["liver.bclcb.tace", "liver.bclcb.tace", "liver.bclcb.tace_durvalumab_bevacizumab"],
        ),
        (  # HCC BCLC A
            Findings(oncology=True, ecog=0, conditions=("child_pugh_a",)),
            [_tumor("liver", bclc="A", histology="hepatocellular carcinoma")],
            ["liver.bclc0a.resection", "liver.bclc0a.ablation", "liver.bclc0a.transplant"],
        ),
        (  # HCC BCLC D
            Findings(oncology=True, ecog=3, conditions=("child_pugh_c",)),
            [_tumor("liver", bclc="D")],
            ["liver.bclcd.bsc", "liver.bclcd.bsc", None],
        ),
        (  # oesophageal adenocarcinoma, locally advanced
            Findings(oncology=True, ecog=0),
            [_tumor("esophagus", "III", t="T3", n="N1", m="M0", histology="adenocarcinoma")],
            ["esophagus.adeno.flot", "esophagus.cross", None],
        ),
        (  # gastric cancer resectable cT3
            Findings(oncology=True, ecog=1),
            [_tumor("stomach", "IIB", t="T3", n="N1", m="M0", histology="adenocarcinoma")],
            [
                "stomach.perioperative.flot",
                "stomach.perioperative.capox",
                "stomach.perioperative.flot_durvalumab",
            ],
        ),
        (  # gastric cancer metastatic, HER2-negative, CPS 10
            Findings(oncology=True, ecog=1, biomarkers=(_bm("HER2", "1+", "negative"), _bm("PD-L1", "CPS 10"))),
            [_tumor("stomach", "IVB", m="M1", histology="adenocarcinoma")],
            ["stomach.met.nivolumab_capox", "stomach.met.capox", None],
        ),
        (  # pancreas metastatic, germline BRCA
            Findings(oncology=True, ecog=1, biomarkers=(_bm("BRCA2", "germline pathogenic variant"),)),
            [_tumor("pancreas", "IV", m="M1", histology="ductal adenocarcinoma")],
            ["pancreas.met.folfirinox", "pancreas.met.gemcitabine", "pancreas.met.nalirifox"],
        ),
        (  # pancreas resected
            Findings(oncology=True, ecog=1, conditions=("resected",)),
            [_tumor("pancreas", "IIB", t="T2", n="N1", m="M0", prefix="p", histology="ductal adenocarcinoma")],
            ["pancreas.adjuvant.mfolfirinox", "pancreas.adjuvant.gemcitabine", None],
        ),
        (  # prostate intermediate risk
            Findings(
                oncology=True,
                labs={"psa_ng_ml": 12.0},
                tumors=(TumorFinding(site="prostate", grade="Gleason 3+4=7"),),
            ),
            [_tumor("prostate", t="T2a", n="N0", m="M0")],
            [
                "prostate.localised.radical_prostatectomy",
                "prostate.intermediate.rt_short_adt",
                "prostate.localised.sbrt",
            ],
        ),
        (  # castration-resistant prostate cancer with BRCA2
            Findings(oncology=True, ecog=1, setting_hint="mCRPC", biomarkers=(_bm("BRCA2", "somatic mutation"),)),
            [_tumor("prostate", "IVB", m="M1b")],
            ["prostate.mcrpc.enzalutamide", "prostate.mcrpc.enzalutamide", None],
        ),
    ],
)
def test_representative_cases(findings: Findings, tumors: list[Tumor], expected: list[str | None]) -> None:
    schemes = draft_schemes(findings, tumors, [])
    assert [s.kind for s in schemes] == list(SCHEME_KINDS)
    assert _ref(schemes) == expected
    assert not any(s.limited_evidence for s in schemes)
    compliance = check_compliance(findings, tumors, schemes)
    assert compliance.score == 100 and compliance.passed, compliance.findings


def test_liver_adjuvant_after_resection_with_mvi() -> None:
    findings = Findings(
        oncology=True,
        ecog=0,
        conditions=("resected",),
        tumors=(TumorFinding(site="liver", extent=("microvascular_invasion",)),),
    )
    tumors = [_tumor("liver", "II", t="T2", n="N0", m="M0", prefix="p", histology="hepatocellular carcinoma")]
    schemes = draft_schemes(findings, tumors, [])
    drugs = {d for s in schemes for t in s.treatments for d in t.drugs}
    assert drugs == set()
    assert schemes[0].guideline_ref == "liver.adjuvant.surveillance"
    assert "microvascular invasion" in schemes[0].bases.patient_data
    assert "no adjuvant systemic therapy is established" in schemes[0].rationale.lower()
    assert schemes[2].treatments[0].name == "clinical trial participation"
    assert schemes[2].title.startswith("Innovative")


def test_prostate_risk_group_from_psa_and_grade() -> None:
    findings = Findings(
        oncology=True, labs={"psa_ng_ml": 5.2}, tumors=(TumorFinding(site="prostate", grade="Gleason 3+3=6"),)
    )
    tumors = [_tumor("prostate", t="T1c", n="N0", m="M0")]
    profile = build_profile(findings, tumors)
    assert (profile.risk_group, profile.grade_group) == ("low", 1)
    schemes = draft_schemes(findings, tumors, [])
    assert schemes[0].guideline_ref == "prostate.low.active_surveillance"
    assert "low risk (cT1c, PSA 5.2 ng/ml, ISUP grade group 1)" in schemes[0].bases.patient_data
    high = Findings(oncology=True, labs={"psa_ng_ml": 25.0}, tumors=(TumorFinding(site="prostate", grade="GG 2"),))
    assert build_profile(high, tumors).risk_group == "high"


def test_esophagus_post_neoadjuvant_residual_disease() -> None:
    findings = Findings(oncology=True, ecog=1)
    residual = [_tumor("esophagus", "II", t="T2", n="N0", m="M0", prefix="yp", histology="squamous cell carcinoma")]
    schemes = draft_schemes(findings, residual, [])
    assert schemes[0].guideline_ref == "esophagus.post_neoadjuvant.nivolumab"
    assert schemes[0].treatments[0].dose == "240 mg"
    complete = [_tumor("esophagus", None, t="T0", n="N0", m="M0", prefix="yp", histology="adenocarcinoma")]
    complete[0] = complete[0].model_copy(update={"tnm": TNM(prefix="yp", t="T0", n="N0", m="M0", stage_group="I")})
    assert draft_schemes(findings, complete, [])[0].guideline_ref == "esophagus.post_neoadjuvant.surveillance"


def test_fitness_shapes_the_choice() -> None:
    """ECOG 2 rules out chemo-immunotherapy; cisplatin needs a clearance of 60 ml/min."""
    tumors = [_tumor("lung", "IVA", m="M1a", histology="adenocarcinoma")]
    frail = Findings(oncology=True, ecog=2, biomarkers=(_bm("PD-L1", "TPS 5%"),))
    assert _ref(draft_schemes(frail, tumors, []))[0] == "lung.met.carboplatin_doublet_frail"
    very_frail = Findings(oncology=True, ecog=3, biomarkers=(_bm("PD-L1", "TPS 5%"),))
    assert _ref(draft_schemes(very_frail, tumors, []))[0] == "lung.met.best_supportive_care"
    resectable = [_tumor("lung", "IIB", t="T3", n="N0", m="M0", histology="adenocarcinoma")]
    kidney = Findings(oncology=True, ecog=0, labs={"creatinine_clearance_ml_min": 45.0})
    refs = _ref(draft_schemes(kidney, resectable, []))
    assert all(r is None or "nivolumab" not in r for r in refs)


# ------------------------------------------------------------------------------------ limited evidence


@pytest.mark.parametrize(
    ("findings", "tumors"),
    [
        (Findings(oncology=True), [_tumor("other", "II", histology="melanoma")]),
        (Findings(oncology=True), [_tumor("unknown_primary", None, histology="adenocarcinoma")]),
        (Findings(oncology=True), [_tumor("lung", None, histology="adenocarcinoma")]),  # stage missing
        (Findings(oncology=True), [_tumor("lung", "IIIA", histology="small cell carcinoma")]),
        (Findings(oncology=True), [_tumor("liver", None, histology="hepatocellular carcinoma")]),  # no BCLC
        (  # two independent primaries
            Findings(oncology=True),
            [
                _tumor("lung", "IA2", t="T1b", n="N0", m="M0"),
                _tumor("colorectal", "IIA", t="T3", n="N0", m="M0"),
            ],
        ),
        (  # contradictory: stage IV with M0
            Findings(oncology=True),
            [_tumor("lung", "IVA", t="T2", n="N0", m="M0", histology="adenocarcinoma")],
        ),
        (  # contradictory biomarker
            Findings(
                oncology=True,
                biomarkers=(_bm("EGFR", "exon 19 deletion"), _bm("EGFR", "wild type", "negative")),
            ),
            [_tumor("lung", "IVA", m="M1a", histology="adenocarcinoma")],
        ),
    ],
)
def test_limited_evidence(findings: Findings, tumors: list[Tumor]) -> None:
    schemes = draft_schemes(findings, tumors, [])
    assert [s.kind for s in schemes] == list(SCHEME_KINDS)
    assert all(s.limited_evidence for s in schemes)
    assert all(LIMITED_EVIDENCE_TEXT in s.rationale for s in schemes)
    assert all(not t.drugs for s in schemes for t in s.treatments)
    compliance = check_compliance(findings, tumors, schemes)
    assert not compliance.passed and compliance.level == "non_compliant"


def test_non_oncology_gets_no_scheme() -> None:
    assert draft_schemes(Findings(oncology=False), [], []) == []


# ------------------------------------------------------------------------------------ compliance


def _scheme(drugs: list[str], dose: str | None, kind: str = "evidence_priority", name: str = "regimen") -> Scheme:
    return Scheme(
        kind=kind,  # type: ignore[arg-type]
        title="hand-built",
        treatments=[Treatment(name=name, drugs=drugs, dose=dose, schedule="every 3 weeks")],
        rationale="hand-built for the test",
    )


def _liver_c() -> tuple[Findings, list[Tumor]]:
    return Findings(oncology=True, ecog=1, conditions=("child_pugh_a",)), [
        _tumor("liver", bclc="C", histology="hepatocellular carcinoma")
    ]


def test_compliance_scores_100_80_60_0() -> None:
    rules = rules_for_case(*_liver_c())
    drugs = ["atezolizumab", "bevacizumab"]
    full = compliance_score(_scheme(drugs, "atezolizumab 1200 mg + bevacizumab 15 mg/kg"), rules)
    assert (full.score, full.level, full.findings) == (100, "fully_compliant", [])
    ten = compliance_score(_scheme(drugs, "atezolizumab 1320 mg + bevacizumab 15 mg/kg"), rules)
    assert (ten.score, ten.level) == (80, "partially_compliant")
    assert "atezolizumab dose 1320 mg deviates 10%" in ten.findings[0] and "1200 mg" in ten.findings[0]
    twenty = compliance_score(_scheme(drugs, "atezolizumab 1200 mg + bevacizumab 17.5 mg/kg"), rules)
    assert twenty.score == 60
    far = compliance_score(_scheme(drugs, "atezolizumab 1200 mg + bevacizumab 25 mg/kg"), rules)
    assert (far.score, far.level) == (0, "non_compliant")
    alternative = compliance_score(_scheme(["sorafenib"], "400 mg"), rules)
    assert alternative.score == 80 and "accepted alternative" in alternative.findings[0]
    off_table = compliance_score(_scheme(["capecitabine"], "1000 mg/m2"), rules)
    assert off_table.score == 0 and "capecitabine" in off_table.findings[0]
    unit = compliance_score(_scheme(["sorafenib"], "400 mg/m2"), rules)
    assert unit.score == 0


def test_compliance_wrong_direction_biomarker() -> None:
    """Anti-EGFR antibodies in RAS-mutant colorectal cancer point the wrong way."""
    findings = Findings(oncology=True, ecog=0, biomarkers=(_bm("KRAS", "G12D"),))
    tumors = [_tumor("colorectal", "IVA", m="M1a", subsite="sigmoid colon")]
    rules = rules_for_case(findings, tumors)
    wrong = _scheme(
        ["oxaliplatin", "leucovorin", "fluorouracil", "panitumumab"],
        "oxaliplatin 85 mg/m2 + leucovorin 400 mg/m2 + fluorouracil 400 mg/m2 bolus then 2400 mg/m2"
        " + panitumumab 6 mg/kg",
    )
    result = compliance_score(wrong, rules)
    assert result.score == 0 and any("panitumumab" in f and "RAS" in f for f in result.findings)
    egfr_findings, egfr_tumors = _egfr_case()
    ici = compliance_score(_scheme(["pembrolizumab"], "200 mg"), rules_for_case(egfr_findings, egfr_tumors))
    assert ici.score == 0


def test_revision_path_returns_compliant_plan() -> None:
    findings, tumors = _egfr_case()
    wrong = [
        _scheme(["osimertinib"], "100 mg"),
        _scheme(["gefitinib"], "250 mg", kind="lowest_risk"),
        _scheme([], None, kind="innovative", name="clinical trial participation"),
    ]
    first = check_compliance(findings, tumors, wrong, iteration=1)
    assert first.score == 0 and not first.passed
    assert first.scheme_scores == {"evidence_priority": 0, "lowest_risk": 0, "innovative": 100}
    assert any("osimertinib dose 100 mg" in f for f in first.findings)
    revised = draft_schemes(findings, tumors, [], feedback=first.findings, iteration=2)
    second = check_compliance(findings, tumors, revised, iteration=2)
    assert second.score == 100 and second.passed and second.iterations == 2
    assert revised[0].treatments[0].dose == "80 mg"
    assert "Revision 2" in revised[0].rationale and "osimertinib dose 100 mg" in revised[0].rationale
    assert "gefitinib" not in {d for s in revised for t in s.treatments for d in t.drugs}


def test_excluded_drug_is_replaced_or_explained() -> None:
    findings, tumors = _liver_c()
    schemes = draft_schemes(findings, tumors, [], excluded_drugs={"bevacizumab"}, iteration=2)
    drugs = {d for s in schemes for t in s.treatments for d in t.drugs}
    assert "bevacizumab" not in drugs
    assert schemes[0].guideline_ref == "liver.bclcc.stride"
    assert "bevacizumab excluded after the safety review" in schemes[0].rationale
    compliance = check_compliance(findings, tumors, schemes, excluded_drugs={"bevacizumab"})
    assert compliance.score == 100
    # resected EGFR stage IB without osimertinib: surveillance remains
    adj_findings = Findings(oncology=True, ecog=0, biomarkers=(_bm("EGFR", "exon 19 deletion"),))
    adj_tumors = [_tumor("lung", "IB", t="T2a", n="N0", m="M0", prefix="p", histology="adenocarcinoma")]
    replaced = draft_schemes(adj_findings, adj_tumors, [], excluded_drugs={"osimertinib"})
    assert replaced[0].guideline_ref == "lung.adjuvant.surveillance"
    # the only drug of a situation excluded: the scheme says why none is left
    residual = [_tumor("esophagus", "II", t="T2", n="N1", m="M0", prefix="yp", histology="adenocarcinoma")]
    none_left = draft_schemes(Findings(oncology=True, ecog=1), residual, [], excluded_drugs={"nivolumab"})
    assert [s.kind for s in none_left] == list(SCHEME_KINDS)
    assert none_left[0].limited_evidence and "nivolumab excluded" in none_left[0].rationale
    assert LIMITED_EVIDENCE_TEXT in none_left[0].rationale
    assert "nivolumab" not in {d for s in none_left for t in s.treatments for d in t.drugs}


def test_every_table_dose_reads_back_and_respects_the_safety_maximum() -> None:
    """Printed doses parse back to zero deviation, and no table dose exceeds a labelled maximum."""
    from tools.safety import dose_limit_findings

    for table in site_guidelines().values():
        for rec in table.recommendations:
            for spec in rec.treatments:
                text = spec.dose_text()
                amounts = parse_dose_text(text, spec.drugs)
                shown = [d for d in spec.doses if not d.alternative]
                assert len(amounts) == len(shown), (rec.id, text)
                for amount in amounts:
                    assert amount.drug is not None
                    assert deviation(amount, rec.dose_specs(amount.drug)) == 0.0, (rec.id, text)
            scheme = Scheme(
                kind="evidence_priority",
                title=rec.title,
                treatments=[Treatment(name=t.name, drugs=t.drugs, dose=t.dose_text()) for t in rec.treatments],
                rationale=rec.summary,
            )
            assert dose_limit_findings([scheme]) == [], rec.id


@pytest.mark.parametrize(
    ("site", "stage", "histology", "subsite"),
    [
        ("colorectal", "IVB", "adenocarcinoma", "sigmoid colon"),
        ("stomach", "IVB", "adenocarcinoma", None),
        ("esophagus", "IVB", "squamous cell carcinoma", None),
        ("pancreas", "IV", "ductal adenocarcinoma", None),
    ],
)
def test_poor_performance_status_gets_supportive_care(
    site: str, stage: str, histology: str, subsite: str | None
) -> None:
    findings = Findings(oncology=True, ecog=3)
    tumors = [_tumor(site, stage, m="M1", histology=histology, subsite=subsite)]
    schemes = draft_schemes(findings, tumors, [])
    assert schemes[0].treatments[0].name == "best supportive care with early palliative care"
    assert "ECOG 3" in schemes[0].bases.patient_data
    assert not {d for s in schemes[:2] for t in s.treatments for d in t.drugs}


# ------------------------------------------------------------------------------------ coverage


def test_cisplatin_ineligible_stage3_gets_carboplatin_chemoradiotherapy() -> None:
    """Renal failure withholds cisplatin chemoradiotherapy; the carboplatin doublet takes its place."""
    findings = Findings(oncology=True, ecog=1, setting_hint="unresectable", labs={"creatinine_clearance_ml_min": 25.0})
    tumors = [_tumor("lung", "IIIA", t="T2b", n="N2", m="M0", histology="squamous cell carcinoma")]
    schemes = draft_schemes(findings, tumors, [])
    assert schemes[0].guideline_ref == "lung.stage3.crt_carboplatin_durvalumab"
    assert "cisplatin" not in {d for s in schemes for t in s.treatments for d in t.drugs}
    rules = rules_for_case(findings, tumors)
    assert "lung.stage3.crt_durvalumab" in {m.rec.id for m in rules.withheld}
    assert "lung.stage3.crt_durvalumab" not in {m.rec.id for m in rules.eligible}
    assert check_compliance(findings, tumors, schemes).score == 100
    # with normal renal function cisplatin stays the preferred partner
    fit = Findings(oncology=True, ecog=1, setting_hint="unresectable", labs={"creatinine_clearance_ml_min": 90.0})
    assert draft_schemes(fit, tumors, [])[0].guideline_ref == "lung.stage3.crt_durvalumab"
    assert not rules_for_case(fit, tumors).withheld or all(
        m.rec.id != "lung.stage3.crt_durvalumab" for m in rules_for_case(fit, tumors).withheld
    )


def test_unknown_nodal_status_still_plans_when_every_stage_agrees() -> None:
    """cT3 rectal cancer is locally advanced whatever N is; an N-dependent decision waits for N."""
    findings = Findings(oncology=True, ecog=0, biomarkers=(_bm("MMR", "pMMR", "negative"),))
    rectum = [_tumor("colorectal", None, t="T3", m="M0", subsite="rectum", histology="adenocarcinoma")]
    schemes = draft_schemes(findings, rectum, [])
    assert not schemes[0].limited_evidence
    assert {"capecitabine", "fluorouracil", "oxaliplatin"} & {d for t in schemes[0].treatments for d in t.drugs}
    assert any("N not known" in f for f in schemes[0].bases.patient_data)
    # cT1 rectal cancer: stage I (TME alone) or III (neoadjuvant therapy) depends on N
    early = [_tumor("colorectal", None, t="T1", m="M0", subsite="rectum", histology="adenocarcinoma")]
    assert all(s.limited_evidence for s in draft_schemes(findings, early, []))


def test_prostate_high_risk_prefers_radiotherapy_with_long_term_adt() -> None:
    findings = Findings(
        oncology=True,
        ecog=0,
        labs={"psa_ng_ml": 32.0},
        tumors=(TumorFinding(site="prostate", grade="Gleason 3+4=7"),),
    )
    tumors = [_tumor("prostate", "IIIA", t="T2a", n="N0", m="M0", histology="acinar adenocarcinoma")]
    schemes = draft_schemes(findings, tumors, [])
    assert schemes[0].guideline_ref == "prostate.high.rt_long_adt"
    assert "leuprorelin" in {d for t in schemes[0].treatments for d in t.drugs}
    surgery = Scheme(
        kind="evidence_priority",
        title="surgery",
        treatments=[Treatment(name="radical prostatectomy with extended pelvic lymph node dissection")],
        rationale="hand-built",
    )
    alternative = compliance_score(surgery, rules_for_case(findings, tumors))
    assert alternative.score == 80 and "accepted alternative" in alternative.findings[0]


def test_early_hr_positive_breast_names_the_endocrine_drug() -> None:
    findings = Findings(
        oncology=True, ecog=0, age=52, biomarkers=(_bm("ER", "90%"), _bm("HER2", "negative", "negative"))
    )
    tumors = [_tumor("breast", "IIA", t="T1c", n="N1", m="M0", histology="invasive lobular carcinoma")]
    assert draft_schemes(findings, tumors, [])[0].guideline_ref == "breast.early.hrpos.surgery_first_tamoxifen"
    older = findings.model_copy(update={"age": 67})
    first = draft_schemes(older, tumors, [])[0]
    assert first.guideline_ref == "breast.early.hrpos.surgery_first"
    assert [t.dose for t in first.treatments if t.drugs] == ["2.5 mg"]


@pytest.mark.parametrize(
    ("findings", "histology", "expected", "drug"),
    [
        (  # nodal squamous CUP, fit kidneys: treated like head and neck cancer
            Findings(oncology=True, ecog=1, labs={"creatinine_clearance_ml_min": 90.0}),
            "squamous cell carcinoma",
            "cup.squamous_nodal.cisplatin_radiotherapy",
            "cisplatin",
        ),
        (  # the same with renal failure: carboplatin-fluorouracil
            Findings(oncology=True, ecog=1, labs={"creatinine_clearance_ml_min": 25.0}),
            "squamous cell carcinoma",
            "cup.squamous_nodal.carboplatin_radiotherapy",
            "carboplatin",
        ),
        (  # disseminated adenocarcinoma: empirical platinum doublet
            Findings(
                oncology=True,
                ecog=1,
                tumors=(TumorFinding(site="unknown_primary", metastases=("liver", "bone")),),
            ),
            "adenocarcinoma",
            "cup.unfavourable.carboplatin_paclitaxel",
            "paclitaxel",
        ),
    ],
)
def test_cancer_of_unknown_primary_subsets(findings: Findings, histology: str, expected: str, drug: str) -> None:
    tumors = [_tumor("unknown_primary", None, histology=histology)]
    schemes = draft_schemes(findings, tumors, [])
    assert schemes[0].guideline_ref == expected and not schemes[0].limited_evidence
    assert drug in {d for t in schemes[0].treatments for d in t.drugs}
    assert check_compliance(findings, tumors, schemes).score == 100


# ------------------------------------------------------------------------------------ checker


def test_checker_is_not_the_drafter() -> None:
    """A table-drafted plan scores 100 only while it stays on the table: an edited dose, a swapped
    drug and a missing dose each lower the score."""
    findings, tumors = _egfr_case()
    drafted = draft_schemes(findings, tumors, [])
    assert check_compliance(findings, tumors, drafted).score == 100
    ep = drafted[0]

    def edited(dose: str | None, drugs: list[str] | None = None) -> list[Scheme]:
        treatment = ep.treatments[0].model_copy(update={"dose": dose, "drugs": drugs or ep.treatments[0].drugs})
        return [ep.model_copy(update={"treatments": [treatment]}), *drafted[1:]]

    partial = check_compliance(findings, tumors, edited("92 mg"))
    assert 60 <= partial.score <= 80 and partial.level == "partially_compliant" and not partial.passed
    assert any("deviates 15%" in f for f in partial.findings)
    missing = check_compliance(findings, tumors, edited(None))
    assert 60 <= missing.score <= 80 and any("state the dose of osimertinib" in f for f in missing.findings)
    wrong = check_compliance(findings, tumors, edited("200 mg", ["pembrolizumab"]))
    assert wrong.score == 0 and wrong.level == "non_compliant"


def test_reduced_lvef_keeps_the_chemotherapy_backbone() -> None:
    """HER2-positive metastatic gastric cancer with LVEF 35 %: trastuzumab regimens are withheld and
    the platinum-fluoropyrimidine backbone is offered; with LVEF unknown trastuzumab stays first."""
    her2 = (_bm("HER2", "IHC 3+"),)
    tumors = [_tumor("stomach", "IVB", t="T3", n="N2", m="M1", histology="adenocarcinoma")]
    weak = Findings(oncology=True, ecog=1, biomarkers=her2, labs={"lvef_percent": 35.0})
    schemes = draft_schemes(weak, tumors, [])
    assert schemes[0].guideline_ref == "stomach.met.her2.capox_cardiac_contraindication"
    assert "trastuzumab" not in {d for s in schemes for t in s.treatments for d in t.drugs}
    assert "trastuzumab" in {d for m in rules_for_case(weak, tumors).withheld for d in m.rec.drugs()}
    unknown = draft_schemes(Findings(oncology=True, ecog=1, biomarkers=her2), tumors, [])
    assert "trastuzumab" in {d for t in unknown[0].treatments for d in t.drugs}
