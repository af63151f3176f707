"""Wording seen in real referral letters and reports, read through extraction, staging and coding."""

from __future__ import annotations

import pytest

from oncoboard.domain import Findings
from tools.extraction import extract_findings
from tools.icd10 import code_case
from tools.tnm import stage_tumor


def _staged(text: str, lang: str = "en") -> tuple[Findings, list[tuple[str, str | None, str | None, str | None]]]:
    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    rows = []
    for tumour in findings.tumors:
        tnm = stage_tumor(tumour, findings).tnm
        rows.append((tumour.site, tnm.t, tnm.n, tnm.m))
    return findings, rows


def _who(findings: Findings) -> list[str]:
    return [c.code for c in code_case(findings) if c.system == "ICD-10-WHO-2019"]


@pytest.mark.parametrize(
    ("text", "lang", "n"),
    [
        # post-noun negation of an imaging descriptor
        (
            "Adenokarzinom der Lunge li. UL, Tumor 38 mm. Mediastinale und hiläre LK nicht vergrößert. "
            "Keine Fernmetastasen.",
            "de",
            "N0",
        ),
        ("Adenokarzinom der Lunge re. OL, Tumor 2,5 cm. Keine suspekten LK. Keine Fernmetastasen.", "de", "N0"),
        # a sampled station reported positive, with no node word in its sentence
        (
            "Squamous cell carcinoma, right upper lobe, 2.8 cm. EBUS: station 4R fine-needle aspirate positive "
            "for metastatic squamous cell carcinoma; stations 7 and 4L negative. No distant metastases.",
            "en",
            "N2",
        ),
        # German side abbreviation does not end the sentence; "kein Befall" negates its station
        (
            "Adenokarzinom der Lunge, Tumor im re. ML 6,5 cm, hilärer LK re. (Station 10R) EBUS-positiv, "
            "mediastinal kein Befall. Keine Fernmetastasen.",
            "de",
            "N1",
        ),
    ],
)
def test_node_wording(text: str, lang: str, n: str) -> None:
    _, rows = _staged(text, lang)
    assert rows[0][2] == n


def test_german_sizes_after_an_abbreviated_lobe_are_read() -> None:
    _, rows = _staged("Adenokarzinom der Lunge. Tumor im li. Unterlappen 38 mm. Keine Fernmetastasen.", "de")
    assert rows[0][:2] == ("lung", "T2a")


def test_a_distance_from_the_incisors_is_not_a_size() -> None:
    findings = extract_findings("Adenokarzinom im dist. Ösophagus 35-39 cm ab Zahnreihe, uT3 uN1.", "de")
    tumour = findings.tumors[0]
    assert tumour.size_cm is None and tumour.subsite == "distal esophagus"
    tnm = stage_tumor(tumour, findings).tnm
    assert (tnm.prefix, tnm.t, tnm.n) == ("c", "T3", "N1")  # endosonographic staging is clinical
    assert _who(findings)[0] == "C15.5"


@pytest.mark.parametrize(
    ("text", "m", "secondary"),
    [
        (
            "Invasive ductal carcinoma of the left breast, 3 cm. Bone scan: multiple osteoblastic metastases (L3, L4).",
            "M1",
            "C79.5",
        ),
        ("Gastric adenocarcinoma, cT3. Staging laparoscopy: peritoneal nodules, cytology positive.", "M1", "C78.6"),
        (
            "Prostate adenocarcinoma, Gleason 9. Bone scan: more than 10 lesions in spine, pelvis and ribs.",
            "M1b",
            "C79.5",
        ),
    ],
)
def test_metastasis_wording(text: str, m: str, secondary: str) -> None:
    findings, rows = _staged(text)
    assert rows[0][3] == m
    assert secondary in _who(findings)


def test_benign_bone_scan_findings_are_not_metastases() -> None:
    _, rows = _staged("Prostate adenocarcinoma, cT2a. Bone scan: degenerative lesions in both knees.")
    assert rows[0][3] != "M1b"


def test_no_nodal_or_extrahepatic_disease_excludes_distant_spread() -> None:
    _, rows = _staged("Hepatocellular carcinoma, single 6 cm lesion. No nodal or extrahepatic disease.")
    assert rows[0][2:] == ("N0", "M0")


@pytest.mark.parametrize(
    ("text", "lang", "t"),
    [
        (
            "PSA 5.2 ng/ml, digital rectal examination unremarkable. Biopsy: acinar adenocarcinoma of the prostate, "
            "Gleason 3+3=6.",
            "en",
            "T1c",
        ),
        ("Prostate adenocarcinoma, Gleason 4+5. DRE: hard nodular prostate involving both lobes.", "en", "T2c"),
        ("Prostate cancer: palpable nodule in less than half of one lobe, Gleason 3+4.", "en", "T2a"),
        # pathological T2 is organ-confined disease, whatever the lobes involved
        (
            "Histologie nach radikaler Prostatektomie: azinäres Adenokarzinom, beidseits, organbegrenzt, 0/12 LK.",
            "de",
            "T2",
        ),
    ],
)
def test_prostate_t_from_examination_or_specimen(text: str, lang: str, t: str) -> None:
    _, rows = _staged(text, lang)
    assert rows[0][0] == "prostate" and rows[0][1] == t


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Biopsy: adenocarcinoma. Normal renal and hepatic function.", "en"),
        ("Histologie: Adenokarzinom. Leberwerte und Nierenfunktion normal.", "de"),
    ],
)
def test_organ_function_is_not_a_tumour_site(text: str, lang: str) -> None:
    findings = extract_findings(text, lang)  # type: ignore[arg-type]
    assert [t.site for t in findings.tumors] == ["other"]


def test_subsite_words_place_the_primary() -> None:
    gastric = extract_findings(
        "Gastroscopy: 5 cm ulcerated tumour on the lesser curvature; biopsy: adenocarcinoma.", "en"
    )
    assert _who(gastric)[0] == "C16.5"
    colon = extract_findings("Erweiterte Hemikolektomie re. bei Karzinom der re. Flexur. Adenokarzinom G3.", "de")
    assert _who(colon)[0] == "C18.3"


def test_a_note_about_two_primaries_keeps_both() -> None:
    text = (
        "Tumour board, two synchronous primaries. (1) Right upper lobe: 1.8 cm nodule, biopsy adenocarcinoma, "
        "no distant metastases. (2) Prostate: PSA 8.0 ng/ml, palpable nodule in less than half of one lobe, "
        "biopsy acinar adenocarcinoma Gleason 3+4=7; PSMA-PET: enlarged obturator lymph nodes."
    )
    findings, rows = _staged(text)
    assert [r[:2] for r in rows] == [("lung", "T1b"), ("prostate", "T2a")]
    # each primary reads the node findings of its own passage
    assert [r[2] for r in rows] == [None, "N1"]
    assert {"C34.1", "C61", "C97"} <= set(_who(findings))


@pytest.mark.parametrize(
    ("text", "lang", "region"),
    [
        ("Hepatozelluläres Karzinom, 5 cm. Hiläre LK 2/7 befallen.", "de", "C77.2"),
        ("Left renal cell carcinoma 6 cm, hilar lymph nodes positive (2/5).", "en", "C77.2"),
        ("Adenocarcinoma of the right upper lobe, 3 cm, hilar lymph node positive (1/4).", "en", "C77.1"),
    ],
)
def test_hilar_nodes_are_coded_by_the_primary(text: str, lang: str, region: str) -> None:
    assert region in _who(extract_findings(text, lang))  # type: ignore[arg-type]


def test_a_quoted_category_definition_is_not_a_finding() -> None:
    text = (
        "Adenocarcinoma of the right lower lobe, 2.5 cm. Primary tumor: pT1c: Tumor more than 2 cm but not more "
        "than 3 cm. For reference, pT3: Tumor which is >7 cm or invades chest wall, diaphragm or parietal pericardium."
    )
    tumour = extract_findings(text, "en").tumors[0]
    assert not {"chest_wall", "diaphragm", "pericardium"} & set(tumour.extent)


@pytest.mark.parametrize(
    ("text", "lang", "sites"),
    [
        (
            "Diagnosen: Adeno-Ca des Coecums. Familienanamnese: Vater mit 57 an Pankreas-Ca verstorben.",
            "de",
            ["colorectal"],
        ),
        (
            "Family history: mother with breast cancer at 45. Adenocarcinoma of the right upper lobe, 3 cm.",
            "en",
            ["lung"],
        ),
        ("Mammakarzinom bei der Schwester. Patientin: Adenokarzinom der Lunge re. OL.", "de", ["lung"]),
    ],
)
def test_a_relatives_cancer_is_not_the_patients(text: str, lang: str, sites: list[str]) -> None:
    assert [t.site for t in extract_findings(text, lang).tumors] == sites  # type: ignore[arg-type]


def test_a_relatives_mutation_is_not_the_patients() -> None:
    findings = extract_findings(
        "BRCA1 mutation in her mother. Invasive ductal carcinoma of the left breast, 2 cm, ER positive.", "en"
    )
    status = {b.name: b.status for b in findings.biomarkers}
    assert status.get("BRCA1") != "positive" and status["ER"] == "positive"


def test_rectal_mri_substage_is_staged_as_t3() -> None:
    text = (
        "Rektumkarzinom, Adenokarzinom G2. MRT Becken: Infiltration des mesorektalen Fettgewebes (cT3c), "
        "4 suspekte mesorektale LK. CT: kein Anhalt für Fernmetastasen."
    )
    findings, rows = _staged(text, "de")
    assert rows[0][1:] == ("T3", "N2a", "M0")
    assert stage_tumor(findings.tumors[0], findings).tnm.stage_group == "IIIB"


def test_a_biopsied_organ_lesion_with_metastatic_carcinoma_is_a_metastasis() -> None:
    text = (
        "Adenocarcinoma of the descending colon, cT4a cN1 cM0. CT-guided biopsy of a 2.3 cm lesion in liver "
        "segment VI shows metastatic adenocarcinoma, consistent with the colorectal primary."
    )
    findings, rows = _staged(text)
    assert rows[0][3] == "M1a" and "C78.7" in _who(findings)
    assert findings.tumors[0].size_cm is None  # the 2.3 cm measure the metastasis, not the primary


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Prostate adenocarcinoma, pT3a pN0 (0/14), Gleason 4+3. Bone scan negative.", "en"),
        (
            "Pancreatic adenocarcinoma of the head, 2.7 cm. No suspicious lymph nodes, no liver or peritoneal "
            "metastases.",
            "en",
        ),
        ("Prostatakarzinom, cT2a. Knochenszintigraphie und CT: keine LK- oder Knochenmetastasen.", "de"),
    ],
)
def test_negative_staging_of_the_usual_organs_gives_m0(text: str, lang: str) -> None:
    _, rows = _staged(text, lang)
    assert rows[0][3] == "M0"


def test_a_narrow_negation_beside_a_metastasis_stays_narrow() -> None:
    findings = extract_findings("Breast cancer, 3 cm. Multiple bone metastases. No visceral metastases.", "en")
    tumour = findings.tumors[0]
    assert tumour.metastases == ("bone",) and not tumour.metastases_negated


def test_located_nodes_decide_clinical_n_without_a_count() -> None:
    breast = _staged(
        "Invasive ductal carcinoma of the left breast, 3.5 cm on MRI. Ultrasound-guided core biopsy of a mobile "
        "ipsilateral level I axillary node: positive. No distant metastases."
    )[1]
    assert breast[0][1:3] == ("T2", "N1")
    kidney = _staged(
        "Klarzelliges Nierenzellkarzinom li. CT: Tumor li. Niere 11 x 9,5 x 8 cm mit Tumorthrombus in der "
        "V. renalis sinistra; paraaortaler LK 2,2 cm, suspekt.",
        "de",
    )[1]
    assert kidney[0][:3] == ("kidney", "T3a", "N1")


def test_biopsy_core_counts_are_not_node_counts() -> None:
    text = (
        "Prostatakarzinom, cT2a. Stanzbiopsie: azinäres Adenokarzinom, Gleason 3+4=7a, 4/12 Stanzen positiv. "
        "Keine LK-Metastasen."
    )
    tumour = extract_findings(text, "de").tumors[0]
    assert tumour.nodes.positive != 4 and tumour.nodes.negated


def test_a_recommended_resection_is_not_a_resection() -> None:
    text = (
        "Hepatozelluläres Karzinom, solitär 2,8 cm, keine Gefäßinvasion. Keine suspekten LK. "
        "Empfehlung: Resektion vs. Thermoablation."
    )
    findings, _ = _staged(text, "de")
    assert stage_tumor(findings.tumors[0], findings).tnm.prefix == "c"


def test_a_measured_ki67_is_not_negated_by_a_later_summary() -> None:
    findings = extract_findings(
        "Invasive ductal carcinoma of the right breast. ER 0%, PR 0%, HER2 1+, Ki-67 70% -> triple negative.", "en"
    )
    ki67 = next(b for b in findings.biomarkers if b.name == "Ki-67")
    assert ki67.result == "70%" and ki67.status != "negative"


def test_a_marker_positivity_is_not_a_node_count() -> None:
    text = (
        "Lumpectomy and sentinel nodes after neoadjuvant therapy for HER2-positive (IHC 3+) invasive ductal "
        "carcinoma of the left breast. Residual invasive carcinoma 4 mm. Sentinel lymph nodes 0/3. ypT1a ypN0."
    )
    nodes = extract_findings(text, "en").tumors[0].nodes
    assert (nodes.positive, nodes.examined, nodes.negated) == (0, 3, True)


def test_a_lone_category_after_imaging_words_is_stated() -> None:
    text = "Gastrektomie: Adenokarzinom des Antrums, pT3, Lymphknoten 4/32 positiv (pN2). CT präoperativ: M0."
    _, rows = _staged(text, "de")
    assert rows[0][1:] == ("T3", "N2", "M0")


def test_a_plan_heading_is_not_a_done_operation_nor_a_current_medication() -> None:
    text = "Hepatocellular carcinoma, single 3 cm lesion, Child-Pugh A. Plan: resection vs ablation, then sorafenib."
    findings, _ = _staged(text)
    assert stage_tumor(findings.tumors[0], findings).tnm.prefix == "c"
    assert "sorafenib" not in findings.medications
