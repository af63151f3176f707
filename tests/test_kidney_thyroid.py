"""Kidney and thyroid: site detection, extent phrases, AJCC 8th T/N/M and stage groups, ICD-10, the graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from oncoboard.domain import EXTENT_TERMS, CaseInput, Findings, TumorFinding
from tools.extraction import extract_findings
from tools.icd10.coder import code_case
from tools.tnm import stage_group, stage_tumor


def _tumour(text: str, lang: str = "en") -> TumorFinding:
    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    assert findings.tumors, text
    return findings.tumors[0]


def _staged(text: str, lang: str = "en") -> tuple[str | None, str | None, str | None, str | None]:
    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    tnm = stage_tumor(findings.tumors[0], findings).tnm
    return tnm.t, tnm.n, tnm.m, tnm.stage_group


def _t_from(
    site: str, size_cm: float | None = None, extent: tuple[str, ...] = (), stated: str | None = None
) -> str | None:
    tumor = TumorFinding(site=site, size_cm=size_cm, extent=extent, stated_tnm=stated)  # type: ignore[arg-type]
    return stage_tumor(tumor, Findings(oncology=True, tumors=(tumor,))).tnm.t


# --------------------------------------------------------------------------- site detection


@pytest.mark.parametrize(
    ("text", "lang", "site", "histology", "laterality"),
    [
        (
            "Right radical nephrectomy: clear cell renal cell carcinoma, 3 cm.",
            "en",
            "kidney",
            "clear cell renal cell carcinoma",
            "right",
        ),
        (
            "Renal cell carcinoma, chromophobe type, of the left kidney, 2 cm.",
            "en",
            "kidney",
            "chromophobe renal cell carcinoma",
            "left",
        ),
        (
            "Nephrektomie links: papilläres Nierenzellkarzinom, 5 cm.",
            "de",
            "kidney",
            "papillary renal cell carcinoma",
            "left",
        ),
        ("Nierenzellkarzinom der rechten Niere, 3 cm.", "de", "kidney", "renal cell carcinoma", "right"),
        (
            "Total thyroidectomy: papillary thyroid carcinoma, 1.2 cm.",
            "en",
            "thyroid",
            "papillary thyroid carcinoma",
            None,
        ),
        (
            "Core biopsy of a neck mass: anaplastic thyroid carcinoma.",
            "en",
            "thyroid",
            "anaplastic thyroid carcinoma",
            None,
        ),
        (
            "Thyreoidektomie: medulläres Schilddrüsenkarzinom, 1,5 cm.",
            "de",
            "thyroid",
            "medullary thyroid carcinoma",
            None,
        ),
        ("Schilddrüsenkarzinom, follikuläres Karzinom, 3 cm.", "de", "thyroid", "follicular carcinoma", None),
    ],
)
def test_kidney_and_thyroid_are_named_sites(
    text: str, lang: str, site: str, histology: str, laterality: str | None
) -> None:
    tumor = _tumour(text, lang)
    assert (tumor.site, tumor.histology, tumor.laterality) == (site, histology, laterality)


def test_thyroid_lobe_is_the_subsite_and_renal_pelvis_stays_another_organ() -> None:
    assert _tumour("Papillary thyroid carcinoma in the left thyroid lobe, 1.1 cm.").subsite == "left lobe"
    pelvis = _tumour("Carcinoma of the left renal pelvis, 2 cm.")
    assert (pelvis.site, pelvis.subsite) == ("other", "renal pelvis")


def test_a_kidney_removed_en_bloc_is_the_neighbour_of_the_named_cancer() -> None:
    findings = extract_findings(
        "En-bloc resection of the left kidney and an adrenal mass. Left nephrectomy and left adrenal mass "
        "resection: adrenocortical carcinoma, 12 cm.",
        "en",
    )
    assert [(t.site, t.subsite) for t in findings.tumors] == [("other", "adrenal gland")]


def test_a_renal_word_in_another_cancer_does_not_found_a_kidney_primary() -> None:
    findings = extract_findings(
        "Adenocarcinoma of the right upper lobe, 2.5 cm, cT1c cN0 cM0. Normal renal function, creatinine 0.9.", "en"
    )
    assert [t.site for t in findings.tumors] == ["lung"]


# --------------------------------------------------------------------------- size cut-offs


@pytest.mark.parametrize(
    ("size", "t"),
    [(0.8, "T1a"), (4.0, "T1a"), (4.1, "T1b"), (7.0, "T1b"), (7.1, "T2a"), (10.0, "T2a"), (10.1, "T2b")],
)
def test_kidney_t_by_size(size: float, t: str) -> None:
    assert _t_from("kidney", size) == t


@pytest.mark.parametrize(
    ("size", "t"),
    [(0.6, "T1a"), (1.0, "T1a"), (1.1, "T1b"), (2.0, "T1b"), (2.1, "T2"), (4.0, "T2"), (4.1, "T3a")],
)
def test_thyroid_t_by_size(size: float, t: str) -> None:
    assert _t_from("thyroid", size) == t


def test_size_read_from_text_at_the_kidney_boundary() -> None:
    assert _staged("Left nephrectomy: renal cell carcinoma, tumour size 4.0 cm, confined to the kidney.")[0] == "T1a"
    assert _staged("Left nephrectomy: renal cell carcinoma, tumour size 4.1 cm, confined to the kidney.")[0] == "T1b"


# --------------------------------------------------------------------------- extent


@pytest.mark.parametrize(
    ("extent", "t"),
    [
        (("perinephric_fat",), "T3a"),
        (("renal_sinus_fat",), "T3a"),
        (("renal_vein",), "T3a"),
        (("vena_cava_below_diaphragm",), "T3b"),
        (("vena_cava",), "T3b"),
        (("vena_cava_above_diaphragm",), "T3c"),
        (("gerota_fascia",), "T4"),
        (("ipsilateral_adrenal", "renal_vein"), "T4"),
    ],
)
def test_kidney_extent_outranks_size(extent: tuple[str, ...], t: str) -> None:
    assert _t_from("kidney", 2.0, extent) == t


@pytest.mark.parametrize(
    ("extent", "t"),
    [
        (("minimal_extrathyroidal_extension",), "T1b"),
        (("extrathyroidal_extension",), "T1b"),
        (("strap_muscles",), "T3b"),
        (("gross_extrathyroidal_extension",), "T3b"),
        (("trachea",), "T4a"),
        (("recurrent_laryngeal_nerve",), "T4a"),
        (("prevertebral_fascia",), "T4b"),
        (("carotid_or_mediastinal_vessels", "larynx"), "T4b"),
    ],
)
def test_thyroid_extent_only_gross_extension_counts(extent: tuple[str, ...], t: str) -> None:
    assert _t_from("thyroid", 1.5, extent) == t


@pytest.mark.parametrize(
    ("text", "lang", "extent"),
    [
        ("Renal cell carcinoma, 5 cm, extends into the perinephric fat.", "en", ("perinephric_fat",)),
        ("Renal cell carcinoma, 5 cm. Renal vein invasion: present.", "en", ("renal_vein",)),
        (
            "Renal cell carcinoma with tumour thrombus in the inferior vena cava above the diaphragm.",
            "en",
            ("vena_cava_above_diaphragm",),
        ),
        ("Renal cell carcinoma; the tumour invades beyond Gerota's fascia.", "en", ("gerota_fascia",)),
        ("Renal cell carcinoma. The tumour directly invades the adrenal gland.", "en", ("ipsilateral_adrenal",)),
        (
            "Nierenzellkarzinom mit Infiltration des perirenalen Fettgewebes und Tumorthrombus in der Nierenvene.",
            "de",
            ("perinephric_fat", "renal_vein"),
        ),
        ("Papillary thyroid carcinoma, 3 cm, invading the strap muscles.", "en", ("strap_muscles",)),
        (
            "Papillary thyroid carcinoma, 3 cm. Extrathyroidal extension: present, minimal.",
            "en",
            ("minimal_extrathyroidal_extension",),
        ),
        (
            "Papillary thyroid carcinoma with gross extrathyroidal extension into the trachea.",
            "en",
            ("gross_extrathyroidal_extension", "trachea"),
        ),
        ("Papilläres Schilddrüsenkarzinom, infiltriert die gerade Halsmuskulatur.", "de", ("strap_muscles",)),
    ],
)
def test_extent_phrases(text: str, lang: str, extent: tuple[str, ...]) -> None:
    tumor = _tumour(text, lang)
    assert tumor.extent == extent
    assert set(tumor.extent) <= EXTENT_TERMS


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Renal cell carcinoma, 3 cm, confined to the kidney; no extension into perinephric fat.", "en"),
        ("Renal cell carcinoma, 3 cm. Renal Vein Invasion: Not identified. Adrenal Gland: Not identified.", "en"),
        ("Renal cell carcinoma, 3 cm. Renal vein involvement: indeterminate.", "en"),
        (
            "Renal cell carcinoma, 3 cm. Capsular invasion/perirenal adipose tissue: Tumor invades into renal capsule.",
            "en",
        ),
        ("Renal cell carcinoma, 3 cm. The perinephric fat is inked green; renal vein margin free.", "en"),
        ("Renal cell carcinoma, 3 cm. pT3a: Tumor invades the adrenal gland or perinephric tissues.", "en"),
        ("Papillary thyroid carcinoma, 1.5 cm. Extrathyroidal extension: not identified.", "en"),
        (
            "Papillary thyroid carcinoma, 1.5 cm, no extrathyroidal extension; recurrent laryngeal nerve preserved.",
            "en",
        ),
        ("Nierenzellkarzinom, 3 cm, auf die Niere begrenzt, keine Infiltration des perirenalen Fettgewebes.", "de"),
        ("Papilläres Schilddrüsenkarzinom, 1,5 cm, keine extrathyreoidale Ausbreitung.", "de"),
    ],
)
def test_negated_or_non_affirmed_extent_is_no_extent(text: str, lang: str) -> None:
    assert _tumour(text, lang).extent == ()


def test_microscopic_strap_muscle_invasion_is_minimal_extension() -> None:
    tumor = _tumour("Papillary thyroid carcinoma, 1.5 cm, with microscopic invasion of the strap muscle.")
    assert tumor.extent == ("minimal_extrathyroidal_extension",)


# --------------------------------------------------------------------------- stated vs measured


@pytest.mark.parametrize(
    ("stated", "size", "t"),
    [
        ("pT1", 3.0, "T1a"),
        ("pT1", 6.5, "T1b"),
        ("pT2", 10.5, "T2b"),
        ("pT1", 8.0, "T1"),  # a size outside the stated category is a conflict, not a refinement
        ("pT1a", 6.0, "T1a"),  # a stated subcategory is kept
        ("pT1", None, "T1"),
    ],
)
def test_stated_kidney_t_is_refined_only_when_the_size_agrees(stated: str, size: float | None, t: str) -> None:
    assert _t_from("kidney", size, stated=stated) == t


def test_stated_t_with_extent_is_not_refined_and_conflict_is_kept() -> None:
    tumor = TumorFinding(site="kidney", size_cm=3.0, extent=("renal_vein",), stated_tnm="pT1")
    result = stage_tumor(tumor, Findings(oncology=True, tumors=(tumor,)))
    assert result.tnm.t == "T1"
    assert any("T3a" in c for c in result.conflicts)


def test_stated_t1_in_text_is_completed_by_the_measured_size() -> None:
    t, n, m, group = _staged("Left nephrectomy. Renal cell carcinoma, 6.1 cm. pT1 pN0 (0/3). No distant metastases.")
    assert (t, n, m, group) == ("T1b", "N0", "M0", "I")


# --------------------------------------------------------------------------- N, M and stage groups


def test_kidney_nodes_and_metastases() -> None:
    assert _staged("Nephrectomy: renal cell carcinoma, 5 cm. Lymph nodes 2/6 involved. No distant metastases.")[1:] == (
        "N1",
        "M0",
        "III",
    )
    assert _staged("Renal cell carcinoma of the right kidney, 5 cm, with bone metastases.")[2:] == ("M1", "IV")


@pytest.mark.parametrize(
    ("t", "n", "m", "group"),
    [
        ("T1a", "N0", "M0", "I"),
        ("T2b", "N0", "M0", "II"),
        ("T1b", "N1", "M0", "III"),
        ("T3a", "N0", "M0", "III"),
        ("T4", "N0", "M0", "IV"),
        ("T1a", "N0", "M1", "IV"),
    ],
)
def test_kidney_stage_groups(t: str, n: str, m: str, group: str) -> None:
    assert stage_group("kidney", t, n, m, prefix="p").group == group


@pytest.mark.parametrize(
    ("histology", "age", "t", "n", "m", "group"),
    [
        ("papillary thyroid carcinoma", 40, "T4a", "N1b", "M0", "I"),
        ("papillary thyroid carcinoma", 40, "T2", "N0", "M1", "II"),
        ("papillary thyroid carcinoma", 54, "T3b", "N0", "M0", "I"),
        ("papillary thyroid carcinoma", 55, "T3b", "N0", "M0", "II"),
        ("follicular carcinoma", 60, "T2", "N0", "M0", "I"),
        ("follicular carcinoma", 60, "T2", "N1a", "M0", "II"),
        ("papillary thyroid carcinoma", 70, "T4a", "N0", "M0", "III"),
        ("papillary thyroid carcinoma", 70, "T4b", "N0", "M0", "IVA"),
        ("papillary thyroid carcinoma", 70, "T1a", "N0", "M1", "IVB"),
        ("anaplastic thyroid carcinoma", 70, "T2", "N0", "M0", "IVA"),
        ("anaplastic thyroid carcinoma", 70, "T3b", "N0", "M0", "IVB"),
        ("anaplastic thyroid carcinoma", 40, "T1a", "N1a", "M0", "IVB"),
        ("anaplastic thyroid carcinoma", 70, "T1a", "N0", "M1", "IVC"),
        ("medullary thyroid carcinoma", 70, "T1b", "N0", "M0", "I"),
        ("medullary thyroid carcinoma", 40, "T3a", "N0", "M0", "II"),
        ("medullary thyroid carcinoma", 40, "T2", "N1a", "M0", "III"),
        ("medullary thyroid carcinoma", 40, "T2", "N1b", "M0", "IVA"),
        ("medullary thyroid carcinoma", 40, "T4b", "N0", "M0", "IVB"),
    ],
)
def test_thyroid_stage_groups_by_histology_and_age(
    histology: str, age: int, t: str, n: str, m: str, group: str
) -> None:
    assert stage_group("thyroid", t, n, m, prefix="p", histology=histology, age=age).group == group


def test_thyroid_group_needs_age_or_histology_only_when_it_depends_on_them() -> None:
    unknown_age = stage_group("thyroid", "T2", "N1a", "M0", prefix="p", histology="papillary thyroid carcinoma")
    assert unknown_age.group is None and "age not given" in " ".join(unknown_age.rationale)
    # below and above 55 this is stage I: the group does not depend on age
    assert stage_group("thyroid", "T1b", "N0", "M0", prefix="p", histology="papillary thyroid carcinoma").group == "I"
    no_histology = stage_group("thyroid", "T1b", "N0", "M0", prefix="p", age=40)
    assert no_histology.group is None and "histology" in (no_histology.reason or "")


def test_thyroid_from_text_with_age_and_central_nodes() -> None:
    t, n, m, group = _staged(
        "48-year-old woman. Total thyroidectomy: papillary thyroid carcinoma, 2.4 cm. Central neck lymph nodes "
        "2/7 involved (level VI). No distant metastases."
    )
    assert (t, n, m, group) == ("T2", "N1a", "M0", "I")
    t, n, m, group = _staged(
        "66-jähriger Patient. Thyreoidektomie: papilläres Schilddrüsenkarzinom, 3,1 cm, infiltriert die Trachea. "
        "Lymphknoten tumorfrei (0/5). Keine Fernmetastasen.",
        "de",
    )
    assert (t, n, m, group) == ("T4a", "N0", "M0", "III")


@pytest.mark.parametrize(
    ("nodes", "lang", "n"),
    [
        (
            "Lymph nodes, right central neck, excision: metastatic carcinoma in four of four lymph nodes (4/4).",
            "en",
            "N1a",
        ),
        ("Central lymph nodes 0/6. Lateral neck dissection: 2/14 lymph nodes involved.", "en", "N1b"),
        ("Lymph nodes 2/9 involved.", "en", "N1"),
        ("Central lymph nodes 0/6.", "en", "N0"),
        ("Laterale Lymphknoten links: 2/10 befallen.", "de", "N1b"),
    ],
)
def test_thyroid_n_follows_the_neck_compartment_of_involved_nodes(nodes: str, lang: str, n: str) -> None:
    primary = (
        "Thyreoidektomie: papilläres Schilddrüsenkarzinom, 1,5 cm."
        if lang == "de"
        else ("Total thyroidectomy: papillary thyroid carcinoma, 1.5 cm.")
    )
    assert _staged(f"{primary} {nodes}", lang)[1] == n


# --------------------------------------------------------------------------- ICD-10


def test_icd10_codes_for_kidney_and_thyroid() -> None:
    kidney = extract_findings("Left nephrectomy: clear cell renal cell carcinoma, 4 cm.", "en")
    codes = code_case(kidney)
    assert [(c.code, c.role) for c in codes if c.system == "ICD-10-WHO-2019"] == [("C64", "primary")]
    # WHO C64 has no side; the CM rendering carries it
    assert any(c.code == "C64.2" and c.system == "ICD-10-CM" for c in codes)
    thyroid = extract_findings("Thyroidectomy: papillary thyroid carcinoma, 2 cm. Lymph nodes 1/4 involved.", "en")
    who = [(c.code, c.role) for c in code_case(thyroid) if c.system == "ICD-10-WHO-2019"]
    assert who == [("C73", "primary"), ("C77.0", "secondary")]


# --------------------------------------------------------------------------- the whole graph


def test_kidney_consult_is_staged_coded_and_planned(database: object, tmp_path: Path) -> None:
    from graphs.service import ConsultService
    from oncoboard.config import RunContext
    from oncoboard.crypto import Keyring
    from oncoboard.llm import NoModel

    service = ConsultService(db=database, keyring=Keyring.from_settings(None, tmp_path), llm=NoModel())  # type: ignore[arg-type]
    case = CaseInput(
        text=(
            "62-year-old man, ECOG 0. Right radical nephrectomy: clear cell renal cell carcinoma, 5.2 cm, extends "
            "into the perinephric fat. Renal vein invasion: not identified. Hilar lymph nodes 0/4. CT chest: no "
            "distant metastases."
        )
    )
    report = service.consult(case, RunContext(use_llm=False))
    tumor = report.tumors[0]
    assert (tumor.site, tumor.laterality) == ("kidney", "right")
    assert (tumor.tnm.t, tumor.tnm.n, tumor.tnm.m, tumor.tnm.stage_group) == ("T3a", "N0", "M0", "III")
    assert [c.code for c in report.icd10 if c.role == "primary"] == ["C64"]
    # pT3 clear cell carcinoma after nephrectomy: adjuvant pembrolizumab is the guideline option
    assert report.limited_evidence is False
    first = report.schemes[0]
    assert first.kind == "evidence_priority"
    assert "pembrolizumab" in {d for t in first.treatments for d in t.drugs}
