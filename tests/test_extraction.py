"""Findings extraction on realistic English and German notes, with exact expected values."""

from __future__ import annotations

import random
import string

import pytest

from oncoboard.domain import (
    CONDITION_TERMS,
    EXTENT_TERMS,
    LAB_KEYS,
    METASTASIS_SITES,
    Findings,
    StructuredData,
    TumorFinding,
)
from tools.extraction import extract_findings
from tools.extraction.lexicon import PhraseMatcher
from tools.extraction.negation import TextContext
from tools.extraction.numbers import find_sizes
from tools.extraction.tnm import find_stated_tnm

LUNG_EN = (
    "65-year-old male, ECOG 1. CT: 2.6 cm spiculated mass in the right upper lobe. Biopsy: adenocarcinoma "
    "of the lung, EGFR exon 19 deletion detected, ALK and ROS1 negative, PD-L1 TPS 60%. No distant "
    "metastases. cT1c cN0 cM0. Creatinine clearance 55 ml/min. Medications: Marcumar, metformin."
)
LUNG_DE = (
    "Die 64-jährige Patientin stellt sich mit einem Adenokarzinom der Lunge im rechten Oberlappen vor. "
    "Tumorgröße 6,2 cm. EGFR-Mutation nachgewiesen (Exon-19-Deletion), ALK negativ, PD-L1 TPS 80 %. "
    "ECOG-Status 1. Keine Fernmetastasen. Kreatinin 1,1 mg/dl. Medikation: Marcumar, ASS 100 mg."
)
BREAST = (
    "58-year-old woman with invasive ductal carcinoma of the left breast, upper outer quadrant, 2.1 cm, "
    "grade 2. ER 90%, PR 40%, HER2 IHC 2+, FISH not amplified. Ki-67 15%. Sentinel node biopsy: 1/3 "
    "lymph nodes positive. pT2 pN1a M0. Planned adjuvant endocrine therapy."
)
RECTAL = (
    "Rectal adenocarcinoma, 8 cm from the anal verge. Initial staging cT3 cN1 M0. After neoadjuvant "
    "chemoradiotherapy, low anterior resection: ypT2 ypN0 (0/14), tumour invades muscularis propria. "
    "MSS, KRAS G12D mutated."
)
HCC_DE = (
    "72-jähriger Patient mit hepatozellulärem Karzinom bei Leberzirrhose Child-Pugh B (8 Punkte). "
    "Multifokal, drei Herde von 4,2, 2,1 und 1,5 cm. Pfortaderthrombose. AFP 850 ng/ml. "
    "Bilirubin 2,1 mg/dl. Albumin 3,1 g/dl. ECOG 1."
)
PANCREAS = (
    "Pancreatic head mass 3.1 x 2.4 cm, biopsy showed ductal adenocarcinoma. Tumor abuts the superior "
    "mesenteric artery. CA 19-9 1200 U/ml. No liver metastases. Plan: neoadjuvant FOLFIRINOX."
)
PROSTATE = (
    "68 yo male, PSA 12.4 ng/ml. Prostate biopsy: acinar adenocarcinoma, Gleason 4+3=7 (Grade Group 3). "
    "MRI: extraprostatic extension right, seminal vesicles free. Bone scan negative."
)
CUP_DE = (
    "CUP-Syndrom: Lebermetastasen eines Adenokarzinoms bei unbekanntem Primärtumor. Verdacht auf Knochenmetastasen."
)
NON_ONCOLOGY = (
    "Patient admitted with community-acquired pneumonia of the right lower lobe. History of type 2 "
    "diabetes on metformin and hypertension. Creatinine 1.4 mg/dL. No malignancy."
)
NEGATED_METASTASES = "Sigmoid colon adenocarcinoma, pT3 pN0 (0/18) M0. No distant metastases. Liver: no metastases."
UNCERTAIN = (
    "Adenocarcinoma of the lung. Liver lesion suspicious for metastasis. Possible bone metastases. "
    "Pneumonitis cannot be excluded."
)


@pytest.fixture(scope="module")
def lung_en() -> Findings:
    return extract_findings(LUNG_EN, "en")


def test_lung_adenocarcinoma_egfr_positive_english(lung_en: Findings) -> None:
    f = lung_en
    assert f.oncology is True
    assert len(f.tumors) == 1
    t = f.tumors[0]
    assert (t.site, t.subsite, t.laterality) == ("lung", "right upper lobe", "right")
    assert (t.histology, t.icdo3_morphology) == ("adenocarcinoma", "8140/3")
    assert t.size_cm == 2.6
    assert t.stated_tnm == "cT1c cN0 cM0"
    assert t.metastases == () and t.metastases_negated is True
    assert t.nodes.positive == 0 and t.nodes.negated is True
    markers = {b.name: (b.result, b.status) for b in f.biomarkers}
    assert markers == {
        "EGFR": ("exon 19 deletion", "positive"),
        "ALK": ("negative", "negative"),
        "ROS1": ("negative", "negative"),
        "PD-L1": ("TPS 60%", "positive"),
    }
    assert (f.age, f.sex, f.ecog) == (65, "male", 1)
    assert f.labs == {"creatinine_clearance_ml_min": 55.0}
    assert f.medications == ("phenprocoumon", "metformin")


def test_entities_carry_exact_offsets(lung_en: Findings) -> None:
    for e in lung_en.entities:
        assert LUNG_EN[e.start : e.end] == e.text
    labels = {e.label for e in lung_en.entities}
    assert {"SITE", "HISTOLOGY", "BIOMARKER", "DRUG", "STAGE", "SIZE", "LAB"} <= labels
    for span in lung_en.tumors[0].evidence:
        assert LUNG_EN[span.start : span.end] == span.text


def test_lung_adenocarcinoma_german() -> None:
    f = extract_findings(LUNG_DE, "de")
    t = f.tumors[0]
    assert (t.site, t.subsite, t.laterality, t.histology) == (
        "lung",
        "right upper lobe",
        "right",
        "adenocarcinoma",
    )
    assert t.size_cm == 6.2
    assert t.metastases_negated is True
    markers = {b.name: (b.result, b.status) for b in f.biomarkers}
    assert markers["EGFR"] == ("exon 19 deletion", "positive")
    assert markers["ALK"] == ("negative", "negative")
    assert markers["PD-L1"] == ("TPS 80%", "positive")
    assert (f.age, f.sex, f.ecog) == (64, "female", 1)
    assert f.labs == {"creatinine_mg_dl": 1.1}
    assert f.medications == ("phenprocoumon", "aspirin")


def test_breast_hormone_receptor_positive_her2_low() -> None:
    f = extract_findings(BREAST, "en")
    t = f.tumors[0]
    assert (t.site, t.subsite, t.laterality) == ("breast", "upper outer quadrant", "left")
    assert (t.histology, t.icdo3_morphology) == ("invasive ductal carcinoma", "8500/3")
    assert t.size_cm == 2.1 and t.grade == "G2"
    assert (t.nodes.positive, t.nodes.examined) == (1, 3)
    assert t.stated_tnm == "pT2 pN1a M0"
    markers = {b.name: (b.result, b.status) for b in f.biomarkers}
    assert markers["ER"] == ("90%", "positive")
    assert markers["PR"] == ("40%", "positive")
    assert markers["HER2"] == ("IHC 2+, ISH not amplified (HER2-low)", "negative")
    assert markers["Ki-67"] == ("15%", "unknown")
    assert f.setting_hint == "adjuvant"


def test_rectal_cancer_after_neoadjuvant_therapy() -> None:
    f = extract_findings(RECTAL, "en")
    t = f.tumors[0]
    assert (t.site, t.subsite, t.histology) == ("colorectal", "rectum", "adenocarcinoma")
    # the post-therapy pathological statement describes the tumour now
    assert t.stated_tnm == "ypT2 ypN0 (0/14)"
    assert (t.nodes.positive, t.nodes.examined, t.nodes.negated) == (0, 14, True)
    assert t.extent == ("muscularis_propria",)
    assert f.setting_hint == "post_neoadjuvant"
    assert {"post_neoadjuvant", "resected"} <= set(f.conditions)
    markers = {b.name: (b.result, b.status) for b in f.biomarkers}
    assert markers == {"KRAS": ("G12D", "positive"), "MSI": ("MSS", "negative")}


def test_hcc_child_pugh_b_multifocal_german() -> None:
    f = extract_findings(HCC_DE, "de")
    t = f.tumors[0]
    assert (t.site, t.histology, t.icdo3_morphology) == ("liver", "hepatocellular carcinoma", "8170/3")
    assert t.count == 3
    assert t.lesion_sizes_cm == (4.2, 2.1, 1.5)
    assert t.size_cm == 4.2
    assert t.extent == ("portal_vein",)
    assert {"child_pugh_b", "cirrhosis"} <= set(f.conditions)
    assert f.labs == {
        "afp_ng_ml": 850.0,
        "bilirubin_mg_dl": 2.1,
        "albumin_g_dl": 3.1,
        "child_pugh_score": 8.0,
    }
    assert (f.age, f.sex, f.ecog) == (72, "male", 1)


def test_pancreatic_head_cancer() -> None:
    f = extract_findings(PANCREAS, "en")
    t = f.tumors[0]
    assert (t.site, t.subsite, t.histology) == ("pancreas", "pancreatic head", "ductal adenocarcinoma")
    assert t.size_cm == 3.1
    assert t.extent == ("superior_mesenteric_artery",)
    assert t.metastases == ()
    assert f.labs == {"ca19_9_u_ml": 1200.0}
    assert f.setting_hint == "neoadjuvant"
    # "Plan: neoadjuvant FOLFIRINOX" is proposed, not taken: it is no current medication
    assert f.medications == ()


def test_prostate_psa_gleason() -> None:
    f = extract_findings(PROSTATE, "en")
    t = f.tumors[0]
    assert (t.site, t.histology) == ("prostate", "acinar adenocarcinoma")
    assert t.grade == "Gleason 4+3=7, GG3"
    assert t.extent == ("extraprostatic_extension",)
    assert f.labs == {"psa_ng_ml": 12.4}
    assert (f.age, f.sex) == (68, "male")


def test_cancer_of_unknown_primary_german() -> None:
    f = extract_findings(CUP_DE, "de")
    assert len(f.tumors) == 1
    t = f.tumors[0]
    assert t.site == "unknown_primary"
    assert t.histology == "adenocarcinoma"
    # the suspected bone metastases are not a fact; the liver metastases are
    assert t.metastases == ("liver",)
    assert any(e.label == "METASTASIS_UNCERTAIN" and e.code == "bone" for e in f.entities)
    assert "metastatic" in f.conditions


def test_non_oncology_note() -> None:
    f = extract_findings(NON_ONCOLOGY, "en")
    assert f.oncology is False
    assert f.tumors == ()
    assert f.biomarkers == ()
    assert set(f.conditions) == {"diabetes", "hypertension"}
    assert f.medications == ("metformin",)
    assert f.labs == {"creatinine_mg_dl": 1.4}
    assert f.setting_hint is None


def test_negated_metastases_and_nodes() -> None:
    f = extract_findings(NEGATED_METASTASES, "en")
    t = f.tumors[0]
    assert (t.site, t.subsite) == ("colorectal", "sigmoid colon")
    assert t.metastases == () and t.metastases_negated is True
    assert (t.nodes.positive, t.nodes.examined, t.nodes.negated) == (0, 18, True)
    assert t.stated_tnm == "pT3 pN0 (0/18) M0"
    assert "metastatic" not in f.conditions


def test_uncertain_findings_are_not_facts() -> None:
    f = extract_findings(UNCERTAIN, "en")
    t = f.tumors[0]
    assert t.site == "lung"
    assert t.metastases == ()
    assert "metastatic" not in f.conditions
    assert "interstitial_lung_disease" not in f.conditions
    assert {e.code for e in f.entities if e.label == "METASTASIS_UNCERTAIN"} == {"liver", "bone"}


def test_contradiction_keeps_both_facts() -> None:
    f = extract_findings("Lung adenocarcinoma cT2 cN2 M0. CT shows liver metastases.", "en")
    t = f.tumors[0]
    assert t.metastases == ("liver",)
    assert t.metastases_negated is True


def test_german_negation_of_nodes_and_metastases() -> None:
    text = "Rektumkarzinom, keine Lymphknotenmetastasen, Fernmetastasen ausgeschlossen."
    t = extract_findings(text, "de").tumors[0]
    assert (t.site, t.subsite) == ("colorectal", "rectum")
    assert t.nodes.negated is True
    assert t.metastases_negated is True and t.metastases == ()


def test_multiple_primaries() -> None:
    text = (
        "History of invasive ductal carcinoma of the right breast, treated 2015. "
        "Now newly diagnosed squamous cell carcinoma of the left lower lobe, 3.4 cm, with bone metastases."
    )
    f = extract_findings(text, "en")
    assert [t.site for t in f.tumors] == ["breast", "lung"] or [t.site for t in f.tumors] == [
        "lung",
        "breast",
    ]
    by_site = {t.site: t for t in f.tumors}
    assert by_site["breast"].histology == "invasive ductal carcinoma"
    assert by_site["lung"].histology == "squamous cell carcinoma"
    assert by_site["lung"].subsite == "left lower lobe"
    assert all(t.primary for t in f.tumors)
    # metastatic sites are not tumours of their own
    assert "bone" not in {t.site for t in f.tumors}


def test_structured_data_wins_over_text() -> None:
    structured = StructuredData(
        age=70, sex="female", ecog=2, labs={"creatinine_clearance_ml_min": 35.0}, medications=["Xarelto"]
    )
    f = extract_findings(LUNG_EN, "en", structured)
    assert (f.age, f.sex, f.ecog) == (70, "female", 2)
    assert f.labs["creatinine_clearance_ml_min"] == 35.0
    assert f.medications[0] == "rivaroxaban"
    assert "phenprocoumon" in f.medications


def test_conditions_pregnancy_autoimmune_and_karnofsky() -> None:
    text = (
        "Breast cancer, 34-year-old woman, currently pregnant (week 20). Active Crohn's disease. "
        "No history of heart failure. Karnofsky 70%. DPYD *2A heterozygous."
    )
    f = extract_findings(text, "en")
    assert f.pregnant is True
    assert "active_autoimmune_disease" in f.conditions and "autoimmune_disease" in f.conditions
    assert "heart_failure" not in f.conditions
    assert f.ecog == 2
    assert {b.name: b.status for b in f.biomarkers}["DPYD"] == "positive"
    assert "dpyd_deficiency" in f.conditions


def test_german_biomarkers_and_her2() -> None:
    text = (
        "Mammakarzinom links. Östrogenrezeptor 90 %, Progesteronrezeptor negativ, HER2 negativ (Score 1+). "
        "BRCA1/2 Wildtyp."
    )
    markers = {b.name: (b.result, b.status) for b in extract_findings(text, "de").biomarkers}
    assert markers["ER"] == ("90%", "positive")
    assert markers["PR"] == ("negative", "negative")
    assert markers["HER2"] == ("IHC 1+ (HER2-low)", "negative")
    assert markers["BRCA1"] == ("wild-type", "negative")
    assert markers["BRCA2"] == ("wild-type", "negative")


def test_vocabularies_are_respected() -> None:
    for text in (LUNG_EN, LUNG_DE, BREAST, RECTAL, HCC_DE, PANCREAS, PROSTATE, CUP_DE, UNCERTAIN):
        f = extract_findings(text, "en")
        assert set(f.conditions) <= CONDITION_TERMS
        assert set(f.labs) <= LAB_KEYS
        for t in f.tumors:
            assert set(t.extent) <= EXTENT_TERMS
            assert set(t.metastases) <= METASTASIS_SITES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Staging: pT2 pN1 M0.", ["pT2 pN1 M0"]),
        ("ypT2N1 after therapy", ["ypT2N1"]),
        ("T3N1M0", ["T3N1M0"]),
        ("pT2a pN0 (0/12) L0 V0", ["pT2a pN0 (0/12) L0 V0"]),
        ("T2-weighted MRI sequence", []),
        ("(G2, pT3, pNO 0/25 LO V0 R0)", ["pT3, pNO"]),
        ("Stage T2 N0 M0.", ["T2 N0 M0"]),
        ("cT1c cN0 cM0", ["cT1c cN0 cM0"]),
    ],
)
def test_stated_tnm_forms(text: str, expected: list[str]) -> None:
    assert [s.text for s in find_stated_tnm(text)] == expected


def test_sizes_take_the_largest_dimension_and_decimal_commas() -> None:
    sizes = [h.sizes_cm for h in find_sizes("26 mm; 3.1 x 2.4 x 2.0 cm; 6,2 cm; 4.2, 2.1 and 1.5 cm")]
    assert sizes == [(2.6,), (3.1,), (6.2,), (4.2, 2.1, 1.5)]


def test_phrase_matcher_handles_compounds_and_umlaut_spellings() -> None:
    m = PhraseMatcher([("leber*metastas*", "liver"), ("östrogenrezeptor", "ER"), ("lymph node", "LN")])
    hits = [(h.text, h.value) for h in m.find("Lebermetastasen; Oestrogenrezeptor; lymph-node")]
    assert hits == [("Lebermetastasen", "liver"), ("Oestrogenrezeptor", "ER"), ("lymph-node", "LN")]


def test_assertion_cues_in_both_languages() -> None:
    text = "Kein Nachweis von Lebermetastasen. V.a. Knochenmetastasen. Lungenrundherd nicht ausgeschlossen."
    ctx = TextContext(text)
    liver = text.index("Lebermetastasen")
    bone = text.index("Knochenmetastasen")
    nodule = text.index("Lungenrundherd")
    assert ctx.assertion(liver, liver + 15) == "negated"
    assert ctx.assertion(bone, bone + 17) == "uncertain"
    assert ctx.assertion(nodule, nodule + 14) == "uncertain"


def test_never_crashes_on_random_text() -> None:
    rnd = random.Random(7)
    alphabet = string.printable + "äöüßÄÖÜ×≥≤–—µ\u00a0\u200bİ"
    for _ in range(200):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 300)))
        f = extract_findings(text, rnd.choice(["en", "de"]))
        for e in f.entities:
            assert text[e.start : e.end] == e.text
    assert extract_findings("", "en").oncology is False


def test_ocr_noise_and_odd_whitespace() -> None:
    text = "ADENOCARCINOMA   OF THE\n  LUNG ,  RIGHT  UPPER\tLOBE .  TUMOR SIZE :  3.5 CM .  pT2a\u00a0 pN0 ."
    t = extract_findings(text, "en").tumors[0]
    assert (t.site, t.subsite, t.histology, t.size_cm) == ("lung", "right upper lobe", "adenocarcinoma", 3.5)
    assert t.stated_tnm is not None and t.stated_tnm.startswith("pT2a")


def test_large_text_is_read_whole() -> None:
    text = (LUNG_EN + "\n" + BREAST + "\n" + HCC_DE + "\n") * 600  # ~400 kB
    f = extract_findings(text, "en")
    assert f.oncology is True
    assert {t.site for t in f.tumors} >= {"lung", "breast", "liver"}
    assert f.entities[-1].start > len(text) - len(HCC_DE) - 2  # the last repetition was read too


def test_one_long_clause_stays_linear() -> None:
    # OCR output without sentence ends makes one clause of the whole text; no window may scan it all
    rnd = random.Random(3)
    words = [
        "lung",
        "adenocarcinoma",
        "liver",
        "metastases",
        "no",
        "EGFR",
        "positive",
        "2.5",
        "cm",
        "pT2",
        "N0",
        "lymph",
        "nodes",
        "3/12",
        "keine",
    ]
    text = " ".join(rnd.choice(words) for _ in range(20000))
    f = extract_findings(text, "en")
    assert f.oncology is True
    assert all(text[e.start : e.end] == e.text for e in f.entities)


def test_targetable_alterations() -> None:
    text = (
        "NSCLC. BRAF V600E mutation detected. NTRK fusion negative. MET exon 14 skipping detected. "
        "RET rearrangement not detected. EGFR L858R and T790M positive. PS 2."
    )
    f = extract_findings(text, "en")
    markers = {b.name: (b.result, b.status) for b in f.biomarkers}
    assert markers["BRAF"] == ("V600E", "positive")
    assert markers["NTRK"][1] == "negative"
    assert markers["MET"] == ("exon 14 skipping", "positive")
    assert markers["RET"][1] == "negative"
    assert markers["EGFR"] == ("L858R, T790M", "positive")
    assert f.ecog == 2
    assert f.tumors[0].histology == "non-small cell carcinoma"


def test_node_descriptors() -> None:
    text = (
        "Squamous cell carcinoma of the left upper lobe. Metastatic carcinoma in 2 of 12 lymph nodes "
        "(station 4R), contralateral mediastinal node involved, matted nodes. "
        "Supraclavicular lymph node metastasis."
    )
    nodes = extract_findings(text, "en").tumors[0].nodes
    assert (nodes.positive, nodes.examined) == (2, 12)
    assert nodes.contralateral and nodes.supraclavicular and nodes.fixed_or_matted
    assert {"mediastinal", "supraclavicular", "station 4R"} <= set(nodes.stations)
    assert nodes.negated is False


def test_a_tested_variant_inside_a_negative_list_stays_negative() -> None:
    # A variant named inside a list of tested markers must not leak onto its neighbours as a finding.
    text = "Lung adenocarcinoma. EGFR, ALK, ROS1, BRAF, KRAS G12C, MET and RET negative. PD-L1 TPS 80%."
    status = {b.name: b.status for b in extract_findings(text, "en").biomarkers}
    assert status == {
        "EGFR": "negative",
        "ALK": "negative",
        "ROS1": "negative",
        "BRAF": "negative",
        "KRAS": "negative",
        "MET": "negative",
        "RET": "negative",
        "PD-L1": "positive",
    }
    opened = {
        b.name: (b.result, b.status)
        for b in extract_findings("Lung adenocarcinoma. EGFR exon 19 deletion, ALK and ROS1 negative.", "en").biomarkers
    }
    assert opened["EGFR"] == ("exon 19 deletion", "positive") and opened["ALK"][1] == "negative"


# --------------------------------------------------------------------------- node status, spread, counts


def _tumour(text: str, lang: str = "en") -> TumorFinding:
    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    assert findings.tumors
    return findings.tumors[0]


def test_stated_categories_spread_over_a_sentence_are_combined() -> None:
    tumour = _tumour(
        "Rectal adenocarcinoma. MRI: cT3, four suspicious mesorectal lymph nodes (cN2a). CT: liver metastases (cM1)."
    )
    assert tumour.stated_tnm == "cT3 cN2a cM1"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Lung adenocarcinoma, 3 cm mass in the right upper lobe; no enlarged hilar or mediastinal lymph nodes.", "en"),
        ("Prostate adenocarcinoma, cT2a. PSMA-PET: no nodal or distant disease.", "en"),
        ("Adenokarzinom der Lunge, 2,5 cm Tumor im linken Oberlappen, keine vergrößerten Lymphknoten.", "de"),
        ("Plattenepithelkarzinom der Lunge im rechten Unterlappen ohne Lymphknotenvergrößerung.", "de"),
        ("Lung adenocarcinoma, 3 cm mass in the right upper lobe. No enlarged lymph nodes identified on CT.", "en"),
    ],
)
def test_negated_node_words_mean_nodes_free(text: str, lang: str) -> None:
    nodes = _tumour(text, lang).nodes
    assert nodes.negated and not nodes.stations


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Adenocarcinoma of the right upper lobe, 2 cm. No lymph nodes identified in the specimen.", "en"),
        ("Adenokarzinom der Lunge im rechten Oberlappen, 2 cm. Keine Lymphknoten untersucht.", "de"),
    ],
)
def test_nodes_not_examined_are_not_free(text: str, lang: str) -> None:
    assert not _tumour(text, lang).nodes.negated


@pytest.mark.parametrize(
    ("text", "lang", "positive", "station"),
    [
        ("Rectal adenocarcinoma. MRI: cT3, four suspicious mesorectal lymph nodes.", "en", 4, "mesorectal"),
        ("Sigmoid adenocarcinoma. CT: two enlarged pericolic lymph nodes.", "en", 2, "pericolic"),
        ("Rektumkarzinom. MRT: cT3, zwei suspekte mesorektale Lymphknoten.", "de", 2, "mesorectal"),
        ("Pankreaskarzinom, vergrößerte peripankreatische Lymphknoten (zwei).", "de", 2, "peripancreatic"),
    ],
)
def test_imaging_node_counts(text: str, lang: str, positive: int, station: str) -> None:
    nodes = _tumour(text, lang).nodes
    assert nodes.positive == positive
    assert station in nodes.stations and not nodes.negated


def test_a_node_count_is_not_the_examined_total() -> None:
    nodes = _tumour("Adenocarcinoma of the distal oesophagus. Two of 25 paraoesophageal lymph nodes positive.").nodes
    assert (nodes.positive, nodes.examined) == (2, 25)


def test_a_negated_station_beside_an_involved_one_is_left_out() -> None:
    text = (
        "Adenokarzinom der Lunge, 4 cm Tumor im rechten Oberlappen, FDG-positive hiläre Lymphknoten "
        "(Station 10R), keine mediastinalen Lymphknoten, keine Fernmetastasen."
    )
    stations = _tumour(text, "de").nodes.stations
    assert "hilar" in stations and "mediastinal" not in stations


@pytest.mark.parametrize(
    ("text", "lang", "sites"),
    [
        (
            "Lung adenocarcinoma: 6 cm mass in the right lower lobe without nodal enlargement, multiple liver "
            "metastases and a left adrenal metastasis.",
            "en",
            ("liver", "adrenal"),
        ),
        (
            "Prostatakarzinom cT3b, keine vergrößerten Lymphknoten, multiple Lungenmetastasen und Knochenmetastasen.",
            "de",
            ("lung", "bone"),
        ),
    ],
)
def test_a_negation_does_not_reach_past_a_new_listed_item(text: str, lang: str, sites: tuple[str, ...]) -> None:
    tumour = _tumour(text, lang)
    assert set(tumour.metastases) == set(sites)
    assert tumour.nodes.negated


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        (
            "Invasives duktales Mammakarzinom rechts, 3 cm. Multiple Knochenmetastasen, keine viszeralen Metastasen.",
            "de",
        ),
        ("Lung adenocarcinoma with malignant pleural effusion. No extrathoracic metastases on PET-CT.", "en"),
        ("Adenokarzinom der Lunge. MRT Schädel: solitäre Hirnmetastase. Keine weiteren Metastasen.", "de"),
    ],
)
def test_a_narrowed_negation_does_not_exclude_all_distant_spread(text: str, lang: str) -> None:
    tumour = _tumour(text, lang)
    assert tumour.metastases and not tumour.metastases_negated


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Pancreatic head adenocarcinoma, 3 cm. No enlarged lymph nodes, no metastases.", "en"),
        ("HCC 4 cm im rechten Leberlappen, keine extrahepatische Ausbreitung.", "de"),
        ("Hepatocellular carcinoma, 4 cm, no extrahepatic spread.", "en"),
    ],
)
def test_global_statements_exclude_distant_spread(text: str, lang: str) -> None:
    tumour = _tumour(text, lang)
    assert tumour.metastases_negated and not tumour.metastases
    assert tumour.nodes.negated


def test_a_second_primary_shares_the_global_negation() -> None:
    findings = extract_findings(
        "Two primaries: (1) sigmoid adenocarcinoma pT3 pN0. (2) Right upper lobe adenocarcinoma pT1b pN0. "
        "No distant metastases.",
        "en",
    )
    assert len(findings.tumors) == 2 and all(t.metastases_negated for t in findings.tumors)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Lung adenocarcinoma, right upper lobe, 4 cm. Operable, lobectomy planned.", "en"),
        ("Adenokarzinom der Lunge im rechten Oberlappen, 4 cm. Operabel, Lobektomie geplant.", "de"),
    ],
)
def test_a_planned_resection_is_not_a_resection(text: str, lang: str) -> None:
    assert "resected" not in extract_findings(text, lang).conditions  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "lang", "subsite"),
    [
        ("Tumour of the lower third of the oesophagus. Biopsy: adenocarcinoma.", "en", "distal esophagus"),
        ("Plattenepithelkarzinom des mittleren Drittels des Ösophagus, cT2 cN0.", "de", "middle esophagus"),
        (
            "Left breast-conserving surgery. Invasive ductal carcinoma (no special type) in the upper outer "
            "quadrant, 2.3 cm.",
            "en",
            "upper outer quadrant",
        ),
    ],
)
def test_subsites(text: str, lang: str, subsite: str) -> None:
    assert _tumour(text, lang).subsite == subsite


@pytest.mark.parametrize(
    ("text", "lang", "count"),
    [
        ("MRI: three hepatocellular carcinoma lesions measuring 7 cm, 3 cm and 2 cm.", "en", 3),
        ("MRT: drei HCC-Herde, größter 3 cm, keine Gefäßinvasion.", "de", 3),
        ("Lung adenocarcinoma: 6 cm mass in the right lower lobe.", "en", None),
    ],
)
def test_lesion_counts(text: str, lang: str, count: int | None) -> None:
    assert _tumour(text, lang).count == count


def test_german_breast_compound_gives_histology_and_size() -> None:
    tumour = _tumour("Invasives duktales Mammakarzinom rechts, 3 cm, ER positiv.", "de")
    assert (tumour.histology, tumour.size_cm) == ("invasive ductal carcinoma", 3.0)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        (
            "Ductal adenocarcinoma of the pancreatic head, 3 cm, no contact with the superior mesenteric artery, "
            "coeliac axis or common hepatic artery.",
            "en",
        ),
        ("Duktales Adenokarzinom des Pankreaskopfes, 3 cm, kein Kontakt zur Arteria mesenterica superior.", "de"),
    ],
)
def test_no_contact_with_vessels_is_negated(text: str, lang: str) -> None:
    assert _tumour(text, lang).extent == ()


def test_tumour_thrombus_in_a_portal_vein_branch() -> None:
    text = "Hepatozelluläres Karzinom, größter Herd 6 cm, mit Tumorthrombus im linken Pfortaderast."
    assert "portal_vein" in _tumour(text, "de").extent


def test_a_free_node_group_does_not_clear_an_involved_one() -> None:
    text = (
        "Radical prostatectomy: acinar adenocarcinoma. (A) Left pelvic lymph nodes: metastatic adenocarcinoma "
        "in 1 of 13 lymph nodes. (B) Right pelvic lymph nodes: 0/15."
    )
    nodes = _tumour(text).nodes
    assert nodes.positive == 1 and not nodes.negated


@pytest.mark.parametrize(
    ("text", "lang", "histology"),
    [
        (
            "Left breast, mastectomy: intraductal and infiltrating duct carcinoma; ductal carcinoma in situ "
            "comprising 20% of the tumour.",
            "en",
            "invasive ductal carcinoma",
        ),
        ("Mamma links: invasives duktales Karzinom mit begleitendem DCIS, 2,2 cm.", "de", "invasive ductal carcinoma"),
        (
            "Wide local excision: ductal carcinoma in situ, 1.5 cm, no invasive carcinoma.",
            "en",
            "ductal carcinoma in situ",
        ),
    ],
)
def test_an_invasive_carcinoma_outranks_its_in_situ_component(text: str, lang: str, histology: str) -> None:
    assert _tumour(text, lang).histology == histology


@pytest.mark.parametrize(
    ("text", "lang", "sites"),
    [
        ("Gastric adenocarcinoma. CT: metastatic liver lesions.", "en", ("liver",)),
        ("Prostate adenocarcinoma with metastatic bone disease.", "en", ("bone",)),
        ("Prostatakarzinom mit metastatischen Knochenläsionen.", "de", ("bone",)),
        ("Metastatic lung cancer, adenocarcinoma of the right upper lobe.", "en", ()),
    ],
)
def test_metastatic_organ_lesions(text: str, lang: str, sites: tuple[str, ...]) -> None:
    assert _tumour(text, lang).metastases == sites


@pytest.mark.parametrize(
    ("text", "positive", "examined"),
    [
        (
            "Adenocarcinoma of the sigmoid colon. Lymph Nodes: Number with metastasis: 11. "
            "Total number examined: 40. Tumor deposits: present.",
            11,
            40,
        ),
        ("Adenocarcinoma of the rectum. Regional lymph nodes: Number involved : 0. Number examined: 14.", 0, 14),
        ("Adenokarzinom des Magens. Lymphknoten: Anzahl befallener: 3. Anzahl untersuchter: 22.", 3, 22),
    ],
)
def test_synoptic_node_counts_under_a_heading(text: str, positive: int, examined: int) -> None:
    nodes = _tumour(text, "de" if "Magens" in text else "en").nodes
    assert (nodes.positive, nodes.examined) == (positive, examined)
    assert nodes.negated is (positive == 0)


def test_a_zero_count_clause_names_no_involved_station() -> None:
    text = (
        "Squamous carcinoma of the lung. Two subcarinal lymph nodes showed anthracosis. "
        "Lymph nodes: 0/2 positive for metastasis (subcarinal lymph nodes 0/2)."
    )
    nodes = _tumour(text).nodes
    assert (nodes.positive, nodes.examined, nodes.stations) == (0, 2, ())
    assert nodes.negated


def test_a_total_in_brackets_is_not_the_involved_count() -> None:
    text = "Invasive ductal carcinoma of the left breast. A single (of 23) left axillary lymph node is positive."
    nodes = _tumour(text).nodes
    assert nodes.positive != 23 and "axillary" in nodes.stations
