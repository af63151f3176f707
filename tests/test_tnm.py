"""AJCC 8th TNM engine: parsing stated TNM, stage-group tables, staging from findings, BCLC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oncoboard.domain import Findings, NodeFinding, TumorFinding
from oncoboard.knowledge import knowledge_path, load_table
from tools.tnm import bclc_stage, parse_tnm, stage_group, stage_tumor, strip_prefix
from tools.tnm.tables import site_spec

SITES_WITH_TABLES = ("lung", "breast", "colorectal", "liver", "esophagus", "stomach", "pancreas", "prostate")
FINDINGS = Findings(oncology=True)


# --------------------------------------------------------------------------- parse_tnm


@pytest.mark.parametrize(
    ("text", "prefix", "t", "n", "m"),
    [
        ("pT2 pN1 M0", "p", "T2", "N1", "M0"),
        ("ypT2N1", "yp", "T2", "N1", None),
        ("T3N1M0", None, "T3", "N1", "M0"),
        ("cT1c cN0 cM0", "c", "T1c", "N0", "M0"),
        ("pT2a pN0 (0/12) L0 V0 R0", "p", "T2a", "N0", None),
        ("pT1b(m)", "p", "T1b", None, None),
        ("T4b N2c M1a", None, "T4b", "N2c", "M1a"),
        ("pT3 pN1a (2/14) cM0", "p", "T3", "N1a", "M0"),
        ("pT 2 N 1", "p", "T2", "N1", None),
        ("pTis pN0", "p", "Tis", "N0", None),
        ("ypT0 ypN0", "yp", "T0", "N0", None),
        ("pN1mi", "p", None, "N1mi", None),
        ("Pathologic stage is T2N0MX.", None, "T2", "N0", "MX"),
        ("pT2 pNO (0/18) LO V0", "p", "T2", "N0", None),
        ("pTNM: pT3. pN3a. cTNM: cT2. cN1. cMO.", "p", "T3", "N3a", "M0"),
        ("Pathological T. T2b. Pathological N. Clinical M. MO.", None, "T2b", None, "M0"),
        ("AJCC Staging: pTla. pNx.", "p", "T1a", "NX", None),
        ("Pathologic stage: Tia NX MX.", None, "T1a", "NX", "MX"),
        ("pTIS", "p", "Tis", None, None),
    ],
)
def test_parse_tnm_forms(text: str, prefix: str | None, t: str | None, n: str | None, m: str | None) -> None:
    parsed = parse_tnm(text)
    assert (parsed.prefix, parsed.t, parsed.n, parsed.m) == (prefix, t, n, m)


def test_parse_tnm_extras_and_node_ratio() -> None:
    parsed = parse_tnm("pT2a pN0 (0/12) L0 V0 Pn0 R0 G2")
    assert parsed.extras == {"L": "L0", "V": "V0", "Pn": "Pn0", "R": "R0", "G": "G2"}
    assert (parsed.nodes_positive, parsed.nodes_examined) == (0, 12)
    german = parse_tnm("Befund: pT3 pN1a (2/14) cM0 L1 V0")
    assert (german.nodes_positive, german.nodes_examined) == (2, 14)
    assert german.m_prefix == "c" and german.extras["L"] == "L1"
    assert parse_tnm("pT1b(m)").extras["multiplicity"] == "m"
    assert parse_tnm("pN0(i+) cM0").extras["n_suffix"] == "i+"


def test_parse_tnm_ignores_unrelated_letters() -> None:
    assert parse_tnm("T1-weighted MRI shows no lesion").empty
    assert parse_tnm("NO evidence of malignancy. Section code M1, M2.").empty
    assert parse_tnm("").empty


def test_strip_prefix() -> None:
    assert strip_prefix("pT2a") == ("p", "T2a")
    assert strip_prefix("ypN0") == ("yp", "N0")
    assert strip_prefix("M1c") == (None, "M1c")
    assert strip_prefix("Tis") == (None, "Tis")
    assert strip_prefix(None) == (None, None)


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("site", SITES_WITH_TABLES)
def test_every_site_table_loads_with_header(site: str) -> None:
    data = load_table(f"tnm/{site}.yaml")
    assert data["edition"] == "AJCC 8th"
    assert "AJCC Cancer Staging Manual, 8th edition" in data["source"]
    spec = site_spec(site)
    assert spec is not None and spec.tables


def test_all_tnm_yaml_files_have_headers() -> None:
    files = sorted(knowledge_path("tnm").glob("*.yaml"))
    assert {f.stem for f in files} >= {*SITES_WITH_TABLES, "bclc"}
    for f in files:
        data = load_table(f"tnm/{f.name}")
        assert data["source"] and data["edition"]


# --------------------------------------------------------------------------- stage_group


@pytest.mark.parametrize(
    ("site", "t", "n", "m", "kwargs", "group"),
    [
        ("lung", "T1a", "N0", "M0", {}, "IA1"),
        ("lung", "T1b", "N0", "M0", {}, "IA2"),
        ("lung", "T1c", "N0", "M0", {}, "IA3"),
        ("lung", "T2a", "N0", "M0", {}, "IB"),
        ("lung", "T2b", "N0", "M0", {}, "IIA"),
        ("lung", "T3", "N0", "M0", {}, "IIB"),
        ("lung", "T2a", "N1", "M0", {}, "IIB"),
        ("lung", "T3", "N1", "M0", {}, "IIIA"),
        ("lung", "T1", "N2", "M0", {}, "IIIA"),
        ("lung", "T4", "N1", "M0", {}, "IIIA"),
        ("lung", "T4", "N2", "M0", {}, "IIIB"),
        ("lung", "T2b", "N3", "M0", {}, "IIIB"),
        ("lung", "T3", "N3", "M0", {}, "IIIC"),
        ("lung", "T1a", "N0", "M1a", {}, "IVA"),
        ("lung", "T2", "N2", "M1b", {}, "IVA"),
        ("lung", "T1", "N0", "M1c", {}, "IVB"),
        ("breast", "Tis", "N0", "M0", {}, "0"),
        ("breast", "T1c", "N0", "M0", {}, "IA"),
        ("breast", "T1b", "N1mi", "M0", {}, "IB"),
        ("breast", "T1c", "N1a", "M0", {}, "IIA"),
        ("breast", "T2", "N0", "M0", {}, "IIA"),
        ("breast", "T2", "N1", "M0", {}, "IIB"),
        ("breast", "T2", "N1mi", "M0", {}, "IIB"),
        ("breast", "T3", "N0", "M0", {}, "IIB"),
        ("breast", "T3", "N1", "M0", {}, "IIIA"),
        ("breast", "T2", "N2a", "M0", {}, "IIIA"),
        ("breast", "T4b", "N1", "M0", {}, "IIIB"),
        ("breast", "T1", "N3c", "M0", {}, "IIIC"),
        ("breast", "T2", "N1", "M1", {}, "IV"),
        ("colorectal", "Tis", "N0", "M0", {}, "0"),
        ("colorectal", "T2", "N0", "M0", {}, "I"),
        ("colorectal", "T3", "N0", "M0", {}, "IIA"),
        ("colorectal", "T4a", "N0", "M0", {}, "IIB"),
        ("colorectal", "T4b", "N0", "M0", {}, "IIC"),
        ("colorectal", "T2", "N1c", "M0", {}, "IIIA"),
        ("colorectal", "T1", "N2a", "M0", {}, "IIIA"),
        ("colorectal", "T3", "N1a", "M0", {}, "IIIB"),
        ("colorectal", "T2", "N2b", "M0", {}, "IIIB"),
        ("colorectal", "T4a", "N2a", "M0", {}, "IIIC"),
        ("colorectal", "T4b", "N1b", "M0", {}, "IIIC"),
        ("colorectal", "T3", "N1", "M1a", {}, "IVA"),
        ("colorectal", "T3", "N1", "M1b", {}, "IVB"),
        ("colorectal", "T3", "N1", "M1c", {}, "IVC"),
        ("liver", "T1a", "N0", "M0", {}, "IA"),
        ("liver", "T1b", "N0", "M0", {}, "IB"),
        ("liver", "T2", "N0", "M0", {}, "II"),
        ("liver", "T3", "N0", "M0", {}, "IIIA"),
        ("liver", "T4", "N0", "M0", {}, "IIIB"),
        ("liver", "T2", "N1", "M0", {}, "IVA"),
        ("liver", "T1a", "N0", "M1", {}, "IVB"),
        ("pancreas", "T1a", "N0", "M0", {}, "IA"),
        ("pancreas", "T2", "N0", "M0", {}, "IB"),
        ("pancreas", "T3", "N0", "M0", {}, "IIA"),
        ("pancreas", "T2", "N1", "M0", {}, "IIB"),
        ("pancreas", "T1c", "N2", "M0", {}, "III"),
        ("pancreas", "T4", "N0", "M0", {}, "III"),
        ("pancreas", "T2", "N1", "M1", {}, "IV"),
        ("stomach", "T2", "N0", "M0", {"prefix": "c"}, "I"),
        ("stomach", "T2", "N2", "M0", {"prefix": "c"}, "IIA"),
        ("stomach", "T4a", "N0", "M0", {"prefix": "c"}, "IIB"),
        ("stomach", "T3", "N3", "M0", {"prefix": "c"}, "III"),
        ("stomach", "T4b", "N0", "M0", {"prefix": "c"}, "IVA"),
        ("stomach", "T1", "N0", "M1", {"prefix": "c"}, "IVB"),
        ("stomach", "T1b", "N0", "M0", {"prefix": "p"}, "IA"),
        ("stomach", "T2", "N0", "M0", {"prefix": "p"}, "IB"),
        ("stomach", "T3", "N0", "M0", {"prefix": "p"}, "IIA"),
        ("stomach", "T4a", "N0", "M0", {"prefix": "p"}, "IIB"),
        ("stomach", "T2", "N3a", "M0", {"prefix": "p"}, "IIIA"),
        ("stomach", "T1", "N3b", "M0", {"prefix": "p"}, "IIIB"),
        ("stomach", "T4b", "N3a", "M0", {"prefix": "p"}, "IIIC"),
        ("stomach", "T2", "N1", "M1", {"prefix": "p"}, "IV"),
        ("stomach", "T1", "N1", "M0", {"prefix": "yp"}, "I"),
        ("stomach", "T2", "N2", "M0", {"prefix": "yp"}, "II"),
        ("stomach", "T4a", "N1", "M0", {"prefix": "yp"}, "III"),
        ("stomach", "T3", "N3b", "M0", {"prefix": "yp"}, "III"),
        ("esophagus", "T1", "N1", "M0", {"prefix": "c", "histology": "squamous cell carcinoma"}, "I"),
        ("esophagus", "T3", "N0", "M0", {"prefix": "c", "histology": "squamous cell carcinoma"}, "II"),
        ("esophagus", "T3", "N1", "M0", {"prefix": "c", "histology": "squamous cell carcinoma"}, "III"),
        ("esophagus", "T4a", "N2", "M0", {"prefix": "c", "histology": "squamous cell carcinoma"}, "IVA"),
        ("esophagus", "T1", "N1", "M0", {"prefix": "c", "histology": "adenocarcinoma"}, "IIA"),
        ("esophagus", "T2", "N0", "M0", {"prefix": "c", "histology": "adenocarcinoma"}, "IIB"),
        ("esophagus", "T2", "N2", "M0", {"prefix": "c", "histology": "adenocarcinoma"}, "IVA"),
        ("esophagus", "T1a", "N0", "M0", {"prefix": "p", "histology": "adenocarcinoma", "grade": "G1"}, "IA"),
        ("esophagus", "T1b", "N0", "M0", {"prefix": "p", "histology": "adenocarcinoma", "grade": "G3"}, "IC"),
        ("esophagus", "T2", "N0", "M0", {"prefix": "p", "histology": "adenocarcinoma", "grade": "G2"}, "IC"),
        ("esophagus", "T2", "N0", "M0", {"prefix": "p", "histology": "adenocarcinoma"}, "IIA"),
        ("esophagus", "T3", "N0", "M0", {"prefix": "p", "histology": "adenocarcinoma"}, "IIB"),
        (
            "esophagus",
            "T3",
            "N0",
            "M0",
            {"prefix": "p", "histology": "squamous", "grade": "G2", "location": "distal third"},
            "IIA",
        ),
        (
            "esophagus",
            "T3",
            "N0",
            "M0",
            {"prefix": "p", "histology": "squamous", "grade": "G2", "location": "middle"},
            "IIB",
        ),
        ("esophagus", "T3", "N0", "M0", {"prefix": "p", "histology": "squamous"}, "IIB"),
        ("esophagus", "T1a", "N0", "M0", {"prefix": "p", "histology": "squamous", "grade": "G2"}, "IB"),
        ("esophagus", "T2", "N1", "M0", {"prefix": "p", "histology": "squamous"}, "IIIA"),
        ("esophagus", "T4a", "N1", "M0", {"prefix": "p", "histology": "squamous"}, "IIIB"),
        ("esophagus", "T0", "N0", "M0", {"prefix": "yp"}, "I"),
        ("esophagus", "T2", "N0", "M0", {"prefix": "yp"}, "I"),
        ("esophagus", "T3", "N0", "M0", {"prefix": "yp"}, "II"),
        ("esophagus", "T1", "N1", "M0", {"prefix": "yp"}, "IIIA"),
        ("esophagus", "T3", "N1", "M0", {"prefix": "yp"}, "IIIB"),
        ("esophagus", "T2", "N2", "M0", {"prefix": "yp"}, "IIIB"),
        ("esophagus", "T4a", "N0", "M0", {"prefix": "yp"}, "IIIB"),
        ("esophagus", "T4a", "N1", "M0", {"prefix": "yp"}, "IVA"),
        ("esophagus", "T4a", "NX", "M0", {"prefix": "yp"}, "IVA"),
        ("esophagus", "T1", "N3", "M0", {"prefix": "yp"}, "IVA"),
        ("esophagus", "T2", "N0", "M1", {"prefix": "yp"}, "IVB"),
        ("prostate", "T1c", "N0", "M0", {"psa_ng_ml": 6.2, "grade_group": 1}, "I"),
        ("prostate", "T2a", "N0", "M0", {"psa_ng_ml": 8, "grade_group": 1}, "I"),
        ("prostate", "T2a", "N0", "M0", {"psa_ng_ml": 12, "grade_group": 1}, "IIA"),
        ("prostate", "T2b", "N0", "M0", {"psa_ng_ml": 8, "grade_group": 1}, "IIA"),
        ("prostate", "T2c", "N0", "M0", {"psa_ng_ml": 15, "grade_group": 2}, "IIB"),
        ("prostate", "T1c", "N0", "M0", {"psa_ng_ml": 5, "grade_group": 4}, "IIC"),
        ("prostate", "T2a", "N0", "M0", {"psa_ng_ml": 25, "grade_group": 3}, "IIIA"),
        ("prostate", "T3b", "N0", "M0", {"psa_ng_ml": 5, "grade_group": 2}, "IIIB"),
        ("prostate", "T2a", "N0", "M0", {"psa_ng_ml": 5, "grade_group": 5}, "IIIC"),
        ("prostate", "T2", "N0", "M0", {"prefix": "p", "psa_ng_ml": 8, "grade_group": 1}, "I"),
        ("prostate", "T3a", "N1", "M0", {"prefix": "p"}, "IVA"),
        ("prostate", "T2", "N0", "M1b", {}, "IVB"),
    ],
)
def test_stage_group_cells(site: str, t: str, n: str, m: str, kwargs: dict[str, object], group: str) -> None:
    result = stage_group(site, t, n, m, **kwargs)  # type: ignore[arg-type]
    assert result.group == group, result.reason
    assert result.rationale


def test_stage_group_accepts_prefixed_categories() -> None:
    assert stage_group("lung", "pT1c", "pN0", "cM0").group == "IA3"


def test_stage_group_m1_needs_no_t_or_n() -> None:
    result = stage_group("lung", None, None, "M1c")
    assert result.group == "IVB"
    assert any("does not depend" in line for line in result.rationale)


def test_stage_group_none_with_reason() -> None:
    ambiguous = stage_group("lung", "T1", "N0", "M0")
    assert ambiguous.group is None and "IA1" in (ambiguous.reason or "")
    unknown_n = stage_group("colorectal", "T3", None, "M0")
    assert unknown_n.group is None and "N" in (unknown_n.reason or "")
    no_histology = stage_group("esophagus", "T2", "N0", "M0", prefix="p")
    assert no_histology.group is None and "histology" in (no_histology.reason or "")
    no_grade_group = stage_group("prostate", "T3a", "N0", "M0", psa_ng_ml=4.0)
    assert no_grade_group.group is None
    other = stage_group("other", "T2", "N0", "M0")
    assert other.group is None and other.reason == "no stage-group table for site other"
    wrong = stage_group("colorectal", "T1c", "N0", "M0")
    assert wrong.group is None and "not a category" in (wrong.reason or "")


def test_breast_rationale_says_anatomic() -> None:
    result = stage_group("breast", "T2", "N1", "M0")
    assert any("anatomic" in line for line in result.rationale)


def test_stage_group_rejects_wrong_axis() -> None:
    with pytest.raises(ValueError):
        stage_group("lung", "N1", "N0", "M0")


# --------------------------------------------------------------------------- stage_tumor


def test_stage_tumor_lung_from_size() -> None:
    tumor = TumorFinding(site="lung", size_cm=2.6, nodes=NodeFinding(negated=True), metastases_negated=True)
    result = stage_tumor(tumor, FINDINGS)
    assert (result.tnm.prefix, result.tnm.t, result.tnm.n, result.tnm.m) == ("c", "T1c", "N0", "M0")
    assert result.tnm.stage_group == "IA3"
    assert result.tnm.system == "AJCC 8th"
    assert "2.6 cm -> T1c (lung: >2 to <=3 cm)" in result.tnm.rationale
    assert result.conflicts == []


def test_stage_tumor_lung_extent_stations_and_m1c() -> None:
    tumor = TumorFinding(
        site="lung",
        size_cm=4.5,
        extent=("visceral_pleura",),
        nodes=NodeFinding(positive=2, stations=("4R", "10R")),
        metastases=("brain", "bone"),
    )
    result = stage_tumor(tumor, FINDINGS)
    assert (result.tnm.t, result.tnm.n, result.tnm.m, result.tnm.stage_group) == ("T2b", "N2", "M1c", "IVB")


def test_stage_tumor_lung_m1a_effusion_and_t4_nodule() -> None:
    tumor = TumorFinding(
        site="lung",
        size_cm=1.5,
        extent=("separate_nodule_other_ipsilateral_lobe",),
        nodes=NodeFinding(supraclavicular=True),
        metastases=("pleural_effusion",),
    )
    result = stage_tumor(tumor, FINDINGS)
    assert (result.tnm.t, result.tnm.n, result.tnm.m, result.tnm.stage_group) == ("T4", "N3", "M1a", "IVA")


def test_stage_tumor_findings_beyond_the_stated_categories_decide_with_conflicts() -> None:
    tumor = TumorFinding(site="lung", size_cm=4.5, stated_tnm="cT1 cN0 cM0", metastases=("liver",))
    result = stage_tumor(tumor, FINDINGS)
    assert (result.tnm.t, result.tnm.n, result.tnm.m) == ("T1", "N0", "M1b")  # T stays as stated
    assert any("M1b from the findings, beyond the stated M0" in line for line in result.tnm.rationale)
    assert len(result.conflicts) == 2
    assert any("stated T1" in c and "T2b" in c for c in result.conflicts)
    assert any("stated M0" in c and "M1b" in c for c in result.conflicts)


def test_stage_tumor_stated_size_only_category_below_measurement_conflicts() -> None:
    tumor = TumorFinding(site="breast", size_cm=0.8, stated_tnm="pT2 pN0")
    result = stage_tumor(tumor, FINDINGS)
    assert result.tnm.t == "T2"
    assert any("T1b" in c for c in result.conflicts)


def test_stage_tumor_stated_agrees() -> None:
    tumor = TumorFinding(site="lung", size_cm=2.6, stated_tnm="pT1c pN0 cM0")
    result = stage_tumor(tumor, FINDINGS)
    assert result.conflicts == []
    assert result.tnm.prefix == "p" and result.tnm.stage_group == "IA3"


def test_stage_tumor_unknown_stays_null_with_reason() -> None:
    tumor = TumorFinding(site="colorectal", extent=("subserosa",))
    result = stage_tumor(tumor, FINDINGS)
    assert result.tnm.t == "T3"
    assert result.tnm.n is None and result.tnm.m is None and result.tnm.stage_group is None
    assert any(line.startswith("N not derived") for line in result.tnm.rationale)
    assert any(line.startswith("M not derived") for line in result.tnm.rationale)
    lung_nodes = stage_tumor(TumorFinding(site="lung", size_cm=3.5, nodes=NodeFinding(positive=2)), FINDINGS)
    assert lung_nodes.tnm.n is None
    assert any("node location" in line for line in lung_nodes.tnm.rationale)


def test_stage_tumor_colorectal_resection_counts() -> None:
    tumor = TumorFinding(
        site="colorectal",
        extent=("subserosa",),
        nodes=NodeFinding(positive=3, examined=14),
        metastases_negated=True,
    )
    result = stage_tumor(tumor, Findings(oncology=True, conditions=("resected",)))
    assert (result.tnm.prefix, result.tnm.t, result.tnm.n, result.tnm.m) == ("p", "T3", "N1b", "M0")
    assert result.tnm.stage_group == "IIIB"
    peritoneal = stage_tumor(
        TumorFinding(
            site="colorectal",
            extent=("serosa",),
            nodes=NodeFinding(positive=8),
            metastases=("liver", "peritoneum"),
        ),
        FINDINGS,
    )
    assert (peritoneal.tnm.t, peritoneal.tnm.n, peritoneal.tnm.m, peritoneal.tnm.stage_group) == (
        "T4a",
        "N2b",
        "M1c",
        "IVC",
    )


def test_stage_tumor_count_contradicts_stated_n() -> None:
    tumor = TumorFinding(site="colorectal", stated_tnm="pT3 pN1 (5/20)", nodes=NodeFinding(positive=5, examined=20))
    result = stage_tumor(tumor, FINDINGS)
    assert result.tnm.n == "N1"  # a pathological N as stated: the pathologist's count weighs more
    assert any("N2a" in c for c in result.conflicts)


def test_stage_tumor_post_neoadjuvant_esophagus() -> None:
    tumor = TumorFinding(
        site="esophagus",
        histology="adenocarcinoma",
        extent=("adventitia",),
        nodes=NodeFinding(positive=1, examined=22),
        metastases_negated=True,
    )
    result = stage_tumor(tumor, Findings(oncology=True, conditions=("post_neoadjuvant", "resected")))
    assert (result.tnm.prefix, result.tnm.t, result.tnm.n, result.tnm.m) == ("yp", "T3", "N1", "M0")
    assert result.tnm.stage_group == "IIIB"


def test_stage_tumor_prostate_psa_and_gleason() -> None:
    tumor = TumorFinding(site="prostate", stated_tnm="cT2a cN0 cM0", grade="Gleason 3+4=7")
    result = stage_tumor(tumor, Findings(oncology=True, labs={"psa_ng_ml": 8.0}))
    assert result.tnm.stage_group == "IIB"
    tumor_gg1 = TumorFinding(site="prostate", stated_tnm="cT2a cN0 cM0", grade="Gleason 3+3=6")
    assert stage_tumor(tumor_gg1, Findings(oncology=True, labs={"psa_ng_ml": 12.0})).tnm.stage_group == "IIA"


def test_stage_tumor_other_site_keeps_stated() -> None:
    tumor = TumorFinding(site="other", stated_tnm="pT2 pN0 M0")
    result = stage_tumor(tumor, FINDINGS)
    assert (result.tnm.t, result.tnm.n, result.tnm.m, result.tnm.stage_group) == ("T2", "N0", "M0", None)
    assert "no stage-group table for site other" in result.tnm.rationale


def test_stage_tumor_pancreas_artery_and_size() -> None:
    tumor = TumorFinding(site="pancreas", size_cm=1.0, nodes=NodeFinding(negated=True), metastases_negated=True)
    assert stage_tumor(tumor, FINDINGS).tnm.t == "T1c"
    t4 = TumorFinding(site="pancreas", size_cm=3.0, extent=("superior_mesenteric_artery",))
    assert stage_tumor(t4, FINDINGS).tnm.t == "T4"


# --------------------------------------------------------------------------- liver and BCLC


def _liver(**kwargs: object) -> TumorFinding:
    return TumorFinding(site="liver", nodes=NodeFinding(negated=True), metastases_negated=True, **kwargs)  # type: ignore[arg-type]


def test_liver_t_categories() -> None:
    assert stage_tumor(_liver(size_cm=1.8, count=1), FINDINGS).tnm.t == "T1a"
    assert stage_tumor(_liver(size_cm=3.0, count=1), FINDINGS).tnm.t == "T1b"
    assert stage_tumor(_liver(size_cm=3.0, count=1, extent=("microvascular_invasion",)), FINDINGS).tnm.t == "T2"
    assert stage_tumor(_liver(lesion_sizes_cm=(2.0, 4.0), count=2), FINDINGS).tnm.t == "T2"
    assert stage_tumor(_liver(lesion_sizes_cm=(2.0, 6.0), count=2), FINDINGS).tnm.t == "T3"
    assert stage_tumor(_liver(size_cm=3.0, count=1, extent=("portal_vein",)), FINDINGS).tnm.t == "T4"


@pytest.mark.parametrize(
    ("tumor_kwargs", "findings_kwargs", "stage"),
    [
        ({"size_cm": 1.8, "count": 1}, {"conditions": ("child_pugh_a",), "ecog": 0}, "0"),
        ({"size_cm": 4.5, "count": 1}, {"conditions": ("child_pugh_a",), "ecog": 0}, "A"),
        (
            {"lesion_sizes_cm": (2.5, 2.0, 1.0), "count": 3},
            {"labs": {"child_pugh_score": 6.0}, "ecog": 0},
            "A",
        ),
        ({"lesion_sizes_cm": (4.0, 2.0), "count": 2}, {"conditions": ("child_pugh_a",), "ecog": 0}, "B"),
        (
            {"size_cm": 3.0, "count": 1, "extent": ("portal_vein",)},
            {"conditions": ("child_pugh_a",), "ecog": 0},
            "C",
        ),
        ({"size_cm": 3.0, "count": 1}, {"conditions": ("child_pugh_b",), "ecog": 1}, "C"),
        ({"size_cm": 3.0, "count": 1}, {"labs": {"child_pugh_score": 11.0}, "ecog": 0}, "D"),
        ({"size_cm": 3.0, "count": 1}, {"ecog": 3}, "D"),
    ],
)
def test_bclc_examples(tumor_kwargs: dict[str, object], findings_kwargs: dict[str, object], stage: str) -> None:
    tumor = _liver(**tumor_kwargs)
    findings = Findings(oncology=True, **findings_kwargs)  # type: ignore[arg-type]
    assert bclc_stage(tumor, findings).stage == stage
    assert stage_tumor(tumor, findings).other_staging == {"bclc": stage}


def test_bclc_extrahepatic_spread_and_unknowns() -> None:
    spread = TumorFinding(site="liver", size_cm=2.0, count=1, metastases=("lung",))
    result = stage_tumor(spread, Findings(oncology=True, conditions=("child_pugh_a",), ecog=0))
    assert result.other_staging == {"bclc": "C"} and result.tnm.m == "M1" and result.tnm.stage_group == "IVB"
    unknown = bclc_stage(_liver(size_cm=2.0, count=1), Findings(oncology=True, ecog=0))
    assert unknown.stage is None and any("Child-Pugh class not stated" in line for line in unknown.rationale)


# --------------------------------------------------------------------------- evaluation


def test_evaluate_tcga_on_small_fixture(tmp_path: Path) -> None:
    from evaluation.tnm_eval import evaluate_tcga

    rows = [
        {
            "id": "a",
            "cancer_type": "LUAD",
            "t_gdc": "T2a",
            "n_gdc": "N0",
            "m_gdc": "",
            "text": "Stage pT2a pN0.",
        },
        {
            "id": "b",
            "cancer_type": "COAD",
            "t_gdc": "T3",
            "n_gdc": "N1",
            "m_gdc": "M0",
            "text": "pT3 pN2a cM0",
        },
        {"id": "c", "cancer_type": "THCA", "t_gdc": "T1", "n_gdc": "", "m_gdc": "", "text": "no staging"},
    ]
    path = tmp_path / "dev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    result = evaluate_tcga(path)
    assert result["reports"] == 3
    assert result["t"]["gold"] == 3 and result["t"]["exact"] == 2 and result["t"]["predicted"] == 2
    assert result["n"]["gold"] == 2 and result["n"]["exact"] == 1 and result["n"]["main"] == 1
    assert result["m"]["gold"] == 1 and result["m"]["exact"] == 1
    assert evaluate_tcga(tmp_path / "missing.jsonl")["skipped"]


# --------------------------------------------------------------------------- edge cases


def test_lung_station_opposite_the_tumour_is_n3() -> None:
    tumor = TumorFinding(
        site="lung",
        laterality="right",
        size_cm=2.0,
        nodes=NodeFinding(stations=("4L", "7")),
        metastases_negated=True,
    )
    result = stage_tumor(tumor, FINDINGS)
    assert (result.tnm.n, result.tnm.stage_group) == ("N3", "IIIB")
    same_side = TumorFinding(site="lung", laterality="left", size_cm=2.0, nodes=NodeFinding(stations=("4L",)))
    assert stage_tumor(same_side, FINDINGS).tnm.n == "N2"


def test_breast_pathological_counts_and_skin() -> None:
    tumor = TumorFinding(
        site="breast",
        size_cm=3.1,
        extent=("chest_wall_breast", "skin_ulceration"),
        nodes=NodeFinding(positive=5, examined=12),
        metastases_negated=True,
    )
    result = stage_tumor(tumor, Findings(oncology=True, conditions=("resected",)))
    assert (result.tnm.t, result.tnm.n, result.tnm.stage_group) == ("T4c", "N2a", "IIIB")


def test_histology_with_its_own_chapter_is_not_staged_by_site_table() -> None:
    tumor = TumorFinding(site="liver", histology="intrahepatic cholangiocarcinoma", stated_tnm="pT2 pN0")
    result = stage_tumor(tumor, FINDINGS)
    assert (result.tnm.t, result.tnm.n, result.tnm.stage_group) == ("T2", "N0", None)
    assert result.other_staging == {}
    assert any("own AJCC 8th chapter" in line for line in result.tnm.rationale)


def test_secondary_tumour_is_not_staged() -> None:
    result = stage_tumor(TumorFinding(site="liver", primary=False, size_cm=3.0), FINDINGS)
    assert result.tnm.t is None and result.tnm.stage_group is None


def test_not_assessed_category_gives_no_group() -> None:
    result = stage_group("lung", "T2a", "N0", "MX")
    assert result.group is None and "MX" in (result.reason or "")


def test_worst_grade_component_is_used() -> None:
    mixed = stage_group(
        "esophagus", "T2", "N0", "M0", prefix="p", histology="adenocarcinoma", grade="moderately to poorly"
    )
    assert mixed.group == "IIA"


def test_physical_therapy_is_not_a_t_category() -> None:
    assert parse_tnm("PT 2 times weekly").empty
    assert parse_tnm("PT2 N0").t == "T2"


def test_stated_above_findings_is_a_note_unless_findings_decide() -> None:
    # Chest wall invasion may be undescribed: a stated T3 above a 2.5 cm size is only a note.
    lung = stage_tumor(TumorFinding(site="lung", size_cm=2.5, stated_tnm="pT3 pN0"), FINDINGS)
    assert lung.conflicts == [] and any("T3" in note for note in lung.notes)
    # Node-negative findings contradict a stated N1; negated metastases contradict a stated M1.
    negative = TumorFinding(
        site="colorectal",
        stated_tnm="pT3 pN1 M1",
        nodes=NodeFinding(positive=0, examined=15),
        metastases_negated=True,
    )
    result = stage_tumor(negative, FINDINGS)
    assert len(result.conflicts) == 2
    assert (result.tnm.n, result.tnm.m) == ("N1", "M1")


# --------------------------------------------------------------------------- staged from text


def _staged(text: str, lang: str) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    from tools.extraction import extract_findings

    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    tnm = stage_tumor(findings.tumors[0], findings).tnm
    return tnm.prefix, tnm.t, tnm.n, tnm.m, tnm.stage_group


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        # lung M1b is one extrathoracic metastasis; several lesions, even in one organ, are M1c
        (
            "Lung adenocarcinoma, 3 cm mass in the right upper lobe; no enlarged hilar or mediastinal lymph nodes. "
            "Multiple bone metastases.",
            "en",
            ("c", "T1c", "N0", "M1c", "IVB"),
        ),
        (
            "Plattenepithelkarzinom der Lunge, 3,5 cm Raumforderung im rechten Unterlappen, keine vergrößerten "
            "Lymphknoten. Skelettszintigraphie: multiple Knochenmetastasen.",
            "de",
            ("c", "T2a", "N0", "M1c", "IVB"),
        ),
        (
            "Adenokarzinom der Lunge, 2,5 cm Tumor im linken Oberlappen, keine vergrößerten Lymphknoten. MRT "
            "Schädel: solitäre Hirnmetastase. Keine weiteren Metastasen.",
            "de",
            ("c", "T1c", "N0", "M1b", "IVA"),
        ),
        # lung N from the station, a negated station left out; a planned lobectomy keeps the prefix c
        (
            "Adenokarzinom der Lunge, 4 cm Tumor im rechten Oberlappen, FDG-positive hiläre Lymphknoten "
            "(Station 10R), keine mediastinalen Lymphknoten, keine Fernmetastasen. Lobektomie geplant.",
            "de",
            ("c", "T2a", "N1", "M0", "IIB"),
        ),
        # colorectal N from the number of suspicious nodes on imaging
        (
            "Adenocarcinoma of the sigmoid colon, cT3. CT: four suspicious pericolic lymph nodes, no distant "
            "metastases.",
            "en",
            ("c", "T3", "N2a", "M0", "IIIB"),
        ),
        (
            "Rektumkarzinom, Adenokarzinom. MRT: cT3, zwei suspekte mesorektale Lymphknoten. CT: keine Fernmetastasen.",
            "de",
            ("c", "T3", "N1b", "M0", "IIIB"),
        ),
        # categories stated apart are read together
        (
            "Gastric antrum adenocarcinoma, cT3, enlarged perigastric lymph nodes (cN1), no distant metastases.",
            "en",
            ("c", "T3", "N1", "M0", "III"),
        ),
        # DCIS is Tis; stage 0 needs no described nodal or distant spread
        (
            "Wide local excision of the right breast: ductal carcinoma in situ, 1.8 cm, high grade.",
            "en",
            ("p", "Tis", "N0", "M0", "0"),
        ),
        (
            "Exzisionsbiopsie der linken Mamma: duktales Carcinoma in situ, 2 cm, kein invasiver Anteil.",
            "de",
            ("p", "Tis", "N0", "M0", "0"),
        ),
        # liver T from the number and size of the tumours and portal vein involvement
        (
            "Cirrhosis, Child-Pugh A. MRI: three hepatocellular carcinoma lesions measuring 7 cm, 3 cm and 2 cm; "
            "no macrovascular invasion, no extrahepatic spread.",
            "en",
            ("c", "T3", "N0", "M0", "IIIA"),
        ),
        (
            "Leberzirrhose, Child-Pugh A. MRT: drei HCC-Herde, größter 4 cm, keine Gefäßinvasion, keine "
            "Lymphknoten- oder Fernmetastasen.",
            "de",
            ("c", "T2", "N0", "M0", "II"),
        ),
        (
            "Hepatozelluläres Karzinom, größter Herd 6 cm, mit Tumorthrombus im linken Pfortaderast. Keine "
            "Lymphknotenmetastasen, keine Fernmetastasen.",
            "de",
            ("c", "T4", "N0", "M0", "IIIB"),
        ),
        # no contact with the arteries: size decides T
        (
            "Pancreatic head mass 3 cm, no contact with the superior mesenteric artery, coeliac axis or common "
            "hepatic artery; no enlarged lymph nodes, no metastases. EUS-FNA: ductal adenocarcinoma.",
            "en",
            ("c", "T2", "N0", "M0", "IB"),
        ),
    ],
)
def test_staging_from_text(text: str, lang: str, expected: tuple[str | None, ...]) -> None:
    assert _staged(text, lang) == expected


@pytest.mark.parametrize(
    ("text", "lang", "m"),
    [
        (
            "Carcinoma of unknown primary: adenocarcinoma in the liver biopsy; multiple liver and bone metastases, "
            "no primary found on PET-CT.",
            "en",
            "M1",
        ),
        (
            "CUP-Syndrom: zervikale Lymphknotenmetastase rechts (Level III), Plattenepithelkarzinom, Primärtumor "
            "unbekannt. Keine Fernmetastasen.",
            "de",
            "M0",
        ),
        ("Carcinoma of unknown primary, squamous cell carcinoma in a cervical lymph node.", "en", None),
    ],
)
def test_a_tumour_without_site_table_gets_the_shared_m_rule(text: str, lang: str, m: str | None) -> None:
    _, t, n, got, group = _staged(text, lang)
    assert (t, n, got, group) == (None, None, m, None)


def test_clinical_n_below_a_positive_node_biopsy_is_raised_with_a_conflict() -> None:
    from tools.extraction import extract_findings

    text = (
        "CT staging reported as cT2a cN0 cM0 for a 3.5 cm adenocarcinoma of the right upper lobe. However, PET-CT "
        "shows an FDG-avid ipsilateral mediastinal lymph node at station 4R, and EBUS-TBNA of it is positive."
    )
    findings = extract_findings(text, "en")
    result = stage_tumor(findings.tumors[0], findings)
    assert result.tnm.n == "N2" and result.tnm.stage_group == "IIIA"
    assert any("stated N0" in c for c in result.conflicts)


def test_described_metastases_override_a_stated_m0_with_a_conflict() -> None:
    from tools.extraction import extract_findings

    findings = extract_findings(
        "Sigmoid adenocarcinoma. The referral states cT3 cN1 M0. Staging CT: three liver metastases.", "en"
    )
    result = stage_tumor(findings.tumors[0], findings)
    assert result.tnm.m == "M1a" and result.tnm.stage_group == "IVA"
    assert any("M0" in c and "M1a" in c for c in result.conflicts)


@pytest.mark.parametrize(
    ("text", "lang", "n"),
    [
        ("Radical cystectomy: urothelial carcinoma of the bladder, 4 cm. Pelvic lymph nodes: 0/3.", "en", "N0"),
        ("Zystektomie: Urothelkarzinom der Harnblase, 4 cm. Lymphknoten tumorfrei (0/5).", "de", "N0"),
        (
            "Radical cystectomy: urothelial carcinoma of the bladder, 4 cm. Pelvic lymph nodes: 2/3 involved.",
            "en",
            None,
        ),
    ],
)
def test_a_site_without_table_gets_n0_only(text: str, lang: str, n: str | None) -> None:
    assert _staged(text, lang)[2] == n
