"""De-identification: exact spans on small EN/DE letters, pseudonym consistency, clinical content kept."""

from __future__ import annotations

import random
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from evaluation.deid_eval import evaluate_grascco, read_inception_json
from oncoboard.deid import (
    DeidResult,
    Pseudonymizer,
    deidentify,
    detect_language,
    extract_patient_id,
    find_phi,
)

GRASCCO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "grascco_phi"
KEY = b"0123456789abcdef0123456789abcdef"

GERMAN_LETTER = """Städtisches Klinikum Musterhausen
Klinik für Innere Medizin und Onkologie
Lindenallee 17, 34567 Musterhausen
Tel.: 0561 / 980-2231, Fax 0561 980-2299, onkologie@klinikum-musterhausen.de

Patienten-ID: 88231045   Fall-Nr. 2021-55731

Sehr geehrter Herr Kollege Brandtner,

wir berichten über Ihren Patienten Herrn Lothar Wendisch, geb. am 14.02.1958, wohnhaft Birkenweg 4, \
34590 Felsberg, der sich vom 03.03.2021 bis 12. März 2021 in unserer stationären Behandlung befand.

Diagnosen:
Adenokarzinom der Lunge rechts, ED 01/2021, pT2a pN1 (2/14) M0, Stadium IIB, EGFR-Mutation (Exon 19), \
KRAS G12C negativ, ICD-10 C34.1
ECOG 1, Kreatinin 1,2 mg/dl, Hb 11,4 g/dl, Z.n. Cholezystektomie 2009.

Therapie: Cisplatin 75 mg/m2 und Vinorelbin 25 mg/m2 d1, d8; 4 Zyklen ab 22.03.2021.
Die Mutter des Patienten verstarb mit 94 Jahren. Herr Wendisch ist 63 Jahre alt.
Rückfragen gerne an Frau Dr. Seidenfaden (Durchwahl 0561 980-2240).

Mit freundlichen Grüßen

Prof. Dr. med. Ansgar Thielemann     Dr. med. Wiebke Ortlepp
Chefarzt                             Oberärztin
"""

GERMAN_EXPECTED = [
    ("Städtisches Klinikum Musterhausen", "institution"),
    ("Lindenallee 17", "address"),
    ("34567", "address"),
    ("Musterhausen", "location"),
    ("0561 / 980-2231", "phone"),
    ("0561 980-2299", "phone"),
    ("onkologie@klinikum-musterhausen.de", "email"),
    ("88231045", "id"),
    ("2021-55731", "id"),
    ("Brandtner", "name"),
    ("Lothar Wendisch", "name"),
    ("14.02.1958", "date"),
    ("Birkenweg 4", "address"),
    ("34590", "address"),
    ("Felsberg", "location"),
    ("03.03.2021", "date"),
    ("12. März 2021", "date"),
    ("01/2021", "date"),
    ("2009", "date"),
    ("22.03.2021", "date"),
    ("94", "age"),
    ("Wendisch", "name"),
    ("Seidenfaden", "name"),
    ("0561 980-2240", "phone"),
    ("Ansgar Thielemann", "name"),
    ("Wiebke Ortlepp", "name"),
]

ENGLISH_LETTER = """Riverside General Hospital
Department of Medical Oncology
1420 Maple Avenue, Springfield, IL 62704
Phone (217) 555-0142 | www.riverside-oncology.example.org

MRN: 00482913
Date of visit: March 9, 2022

Dear Dr. Okonkwo,

I saw Mrs. Evelyn Hartwell (DOB 07/04/1931), a 91-year-old woman, in clinic on 03/09/2022. She was \
referred by Dr. Raymond Castellano.
Her daughter, Margaret, accompanied her; contact at m.hartwell@example.com.

Diagnosis: invasive ductal carcinoma of the left breast, cT2 cN1 M0, ER positive, HER2 negative, \
Ki-67 30%, diagnosed in January 2022.
Labs: creatinine 1.1 mg/dL, ANC 2.4, ECOG 2. Prior history of stroke in 2015.
Plan: letrozole 2.5 mg daily; follow-up on 4/20/2022. Her husband died at 88.

Sincerely,

Jonathan Whitfield, MD
Attending Physician, Medical Oncology
"""

ENGLISH_EXPECTED = [
    ("Riverside General Hospital", "institution"),
    ("1420 Maple Avenue", "address"),
    ("Springfield", "location"),
    ("IL 62704", "address"),
    ("(217) 555-0142", "phone"),
    ("www.riverside-oncology.example.org", "url"),
    ("00482913", "id"),
    ("March 9, 2022", "date"),
    ("Okonkwo", "name"),
    ("Evelyn Hartwell", "name"),
    ("07/04/1931", "date"),
    ("91", "age"),
    ("03/09/2022", "date"),
    ("Raymond Castellano", "name"),
    ("Margaret", "name"),
    ("m.hartwell@example.com", "email"),
    ("January 2022", "date"),
    ("2015", "date"),
    ("4/20/2022", "date"),
    ("Jonathan Whitfield", "name"),
]


def _expected_offsets(text: str, expected: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """Offsets of the expected surfaces, each searched after the previous one."""
    out = []
    pos = 0
    for surface, kind in expected:
        start = text.index(surface, pos)
        out.append((start, start + len(surface), kind))
        pos = start + len(surface)
    return out


@pytest.mark.parametrize(
    ("text", "expected", "lang"),
    [(GERMAN_LETTER, GERMAN_EXPECTED, "de"), (ENGLISH_LETTER, ENGLISH_EXPECTED, "en")],
    ids=["german", "english"],
)
def test_letter_spans_are_exact(text: str, expected: list[tuple[str, str]], lang: str) -> None:
    result = deidentify(text, pseudonymizer=Pseudonymizer(KEY))
    assert result.language == lang
    assert [(s.start, s.end, s.kind) for s in result.spans] == _expected_offsets(text, expected)
    for span in result.spans:
        assert text[span.start : span.end] == span.surface
    # No surface of a name, id, phone or address survives in the output.
    for span in result.spans:
        if span.kind in ("name", "id", "phone", "email", "address", "institution", "url"):
            assert span.surface not in result.text


def test_output_text_is_rebuilt_from_spans() -> None:
    result = deidentify(GERMAN_LETTER, pseudonymizer=Pseudonymizer(KEY))
    rebuilt, last = [], 0
    for span in result.spans:
        rebuilt.append(GERMAN_LETTER[last : span.start] + span.replacement)
        last = span.end
    rebuilt.append(GERMAN_LETTER[last:])
    assert "".join(rebuilt) == result.text
    assert isinstance(result, DeidResult)


CLINICAL_TEXTS = [
    "pT2 pN1 (2/15) M0 L1 V0 Pn0 R0, G2, UICC 2017 Stadium IIB",
    "Kreatinin 1,2 mg/dl, GFR 58 ml/min, Hb 11.4 g/dl, Leukozyten 7,3/nl, CRP 12 mg/l",
    "ECOG 1, Karnofsky 80 %, BMI 24,3 kg/m2",
    "ICD-10 C34.1, C78.0, ICD-O 8140/3, AJCC 8th edition 2017",
    "EGFR exon 19 deletion, KRAS G12C, ALK negative, PD-L1 TPS 60 %, BRAF V600E, HER2 3+",
    "Carboplatin AUC 5 d1 + Pemetrexed 500 mg/m2 q21d, 4 Zyklen; Pembrolizumab 200 mg alle 3 Wochen",
    "Osimertinib 80 mg 1-0-0, Dexamethason 4 mg 1-1-0, Ondansetron 8 mg bei Bedarf",
    "CT Thorax: Rundherd 2,6 x 1,8 cm im rechten Oberlappen, 3/12 Lymphknoten befallen",
    "Ki-67 30%, ER 90%, PR 10%, Gleason 3+4=7, PSA 12,4 ng/ml, CEA 4.2 ng/mL",
    "Staging according to TNM 8, WHO 2021 classification; RECIST 1.1 partial response",
    "Radiatio mit 60 Gy in 30 Fraktionen; Blutdruck 135/85 mmHg, Puls 78/min",
    "The 67-year-old patient with stage IV NSCLC received nivolumab 240 mg every 2 weeks.",
    "Die 75-jährige Patientin mit Mammakarzinom, Morbus Crohn und Morbus Alzheimer.",
    # node and core counts that look like month/year must survive: shifting them changes the staging
    "Rektumkarzinom, LK 3/12, MRF frei.",
    "Lymph nodes: 2/24 periesophageal nodes positive; 4/12 Stanzen positiv.",
    "EBUS-TBNA: Station 10R positiv für Adenokarzinom, stations 7 and 4L negative.",
]


@pytest.mark.parametrize("text", CLINICAL_TEXTS)
def test_clinical_content_is_not_redacted(text: str) -> None:
    assert find_phi(text) == []


def test_ages_over_89_are_aggregated_and_younger_ages_kept() -> None:
    result = deidentify("Die 92-jährige Patientin, ihr Mann (78 Jahre); a 103-year-old man; aged 95.")
    ages = [(s.surface, s.replacement) for s in result.spans if s.kind == "age"]
    assert ages == [("92", "90+"), ("103", "90+"), ("95", "90+")]
    assert "78 Jahre" in result.text


def test_date_formats() -> None:
    text = (
        "am 12.03.2021, 03/12/2021, 2021-03-12, 12. März 2021, March 12, 2021, 12/2020, "
        "12 March 2021, Juni 2024, vom 2.11. bis 24.11.2028"
    )
    spans = [(s[0], s[1]) for s in find_phi(text, lang="de") if s[2] == "date"]
    surfaces = [text[a:b] for a, b in spans]
    assert surfaces == [
        "12.03.2021",
        "03/12/2021",
        "2021-03-12",
        "12. März 2021",
        "March 12, 2021",
        "12/2020",
        "12 March 2021",
        "Juni 2024",
        "2.11.",
        "24.11.2028",
    ]


def test_date_shift_keeps_intervals_and_format() -> None:
    pseudo = Pseudonymizer(KEY)
    result = deidentify("Aufnahme am 01.03.2021, Entlassung am 15.03.2021, Kontrolle 2021-04-15.", pseudonymizer=pseudo)
    reps = [s.replacement for s in result.spans]
    assert re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", reps[0]) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", reps[2])
    d1 = date(int(reps[0][6:]), int(reps[0][3:5]), int(reps[0][:2]))
    d2 = date(int(reps[1][6:]), int(reps[1][3:5]), int(reps[1][:2]))
    d3 = date.fromisoformat(reps[2])
    assert (d2 - d1).days == 14 and (d3 - d1).days == 45
    assert (d1 - date(2021, 3, 1)).days == pseudo.date_shift_days
    assert -730 <= pseudo.date_shift_days <= -365
    # Deterministic per key, different for another key.
    again = deidentify("Aufnahme am 01.03.2021", pseudonymizer=Pseudonymizer(KEY))
    assert again.spans[0].replacement == reps[0]
    shifts = {Pseudonymizer(bytes([i]) * 32).date_shift_days for i in range(8)}
    assert len(shifts) > 1 and all(-730 <= d <= -365 for d in shifts)
    tagged = deidentify("am 01.03.2021 und am 01.03.2021", pseudonymizer=Pseudonymizer(KEY, date_mode="tag"))
    assert [s.replacement for s in tagged.spans] == ["[DATE-1]", "[DATE-1]"]


def test_partial_dates_take_context_from_their_range() -> None:
    pseudo = Pseudonymizer(KEY)
    result = deidentify("stationär vom 2.11. – 24.11.28, Radiatio (13. - 24.10.2023)", pseudonymizer=pseudo)
    assert [s.surface for s in result.spans] == ["2.11.", "24.11.28", "13.", "24.10.2023"]
    start, end, day, range_end = (s.replacement for s in result.spans)
    assert re.fullmatch(r"\d{1,2}\.\d{1,2}\.", start) and re.fullmatch(r"\d{2}\.\d{2}\.\d{2}", end)
    shifted_end = date(2000 + int(end[6:]), int(end[3:5]), int(end[:2]))
    shifted_start = date(shifted_end.year, int(start.split(".")[1]), int(start.split(".")[0]))
    assert (shifted_end - shifted_start).days == 22
    assert int(range_end[:2]) - int(day.rstrip(".")) == 11


def test_pseudonyms_are_consistent_within_a_document_and_across_calls() -> None:
    pseudo = Pseudonymizer(KEY)
    first = deidentify(
        "Patientin Anna Beispielfrau kam. Frau Beispielfrau berichtet. Dr. Kernig sah sie.",
        pseudonymizer=pseudo,
    )
    names = {s.surface: s.replacement for s in first.spans if s.kind == "name"}
    assert names["Anna Beispielfrau"] == names["Beispielfrau"] == "[NAME-1]"
    assert names["Kernig"] == "[NAME-2]"
    second = deidentify("Kontrolle bei Frau Beispielfrau, Rückruf Dr. Kernig.", pseudonymizer=pseudo)
    assert [s.replacement for s in second.spans] == ["[NAME-1]", "[NAME-2]"]
    mapping = pseudo.mapping()
    assert mapping["Kernig"] == "[NAME-2]"
    restored = Pseudonymizer(KEY, mapping=mapping)
    third = deidentify("Herr Neuling und Dr. Kernig", pseudonymizer=restored)
    assert [s.replacement for s in third.spans] == ["[NAME-3]", "[NAME-2]"]


def test_pseudonymous_case_id() -> None:
    pseudo = Pseudonymizer(KEY)
    a = pseudo.pseudonymous_case_id("MRN-4711-0815")
    b = pseudo.pseudonymous_case_id("MRN-4711-0815")
    assert re.fullmatch(r"P-[0-9a-f]{10}-[a-z2-9]{6}", a)
    assert a.split("-")[1] == b.split("-")[1] and a != b
    assert "4711" not in a and "0815" not in a
    assert Pseudonymizer(b"k" * 32).pseudonymous_case_id("MRN-4711-0815").split("-")[1] != a.split("-")[1]
    anonymous = pseudo.pseudonymous_case_id(None)
    assert re.fullmatch(r"P-[0-9a-f]{10}-[a-z2-9]{6}", anonymous)
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


def test_extract_patient_id() -> None:
    assert extract_patient_id(GERMAN_LETTER) == "88231045"
    assert extract_patient_id("Fallnummer: 2021-55731\nName: Muster") == "2021-55731"
    assert extract_patient_id("Case No. 77-1234, MRN: 00482913") == "00482913"
    assert extract_patient_id("Versichertennummer A123456789") == "A123456789"
    assert extract_patient_id("Keine Nummer, nur NCT01234567 und ECOG 1") is None
    assert extract_patient_id("") is None


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Herrn\nKarl-Otto Zimmermann\nHauptstr. 5", ["Karl-Otto Zimmermann"]),
        ("Zimmermann, Anna\nAufnahme am 3.4.2021", ["Zimmermann, Anna"]),
        ("Sehr geehrte Frau Dr. von Hohenfels,", ["von Hohenfels"]),
        ("Befund: OA Dr. Gruber / Dr. med. K. Fink", ["Gruber", "K. Fink"]),
        ("Name: Meier, Hans   Geb.-Datum: 01.02.1950", ["Meier, Hans"]),
        ("Her daughter, Margaret, called. Seen with Ms Lee and Dr Patel.", ["Margaret", "Lee", "Patel"]),
        ("Werte Frau Kollegin, werter Herr Kollege, die Patientin kam.", []),
    ],
)
def test_name_cues(text: str, names: list[str]) -> None:
    assert [text[a:b] for a, b, kind in find_phi(text) if kind == "name"] == names


def test_language_detection() -> None:
    assert detect_language(GERMAN_LETTER) == "de"
    assert detect_language(ENGLISH_LETTER) == "en"


def test_never_crashes_on_arbitrary_strings() -> None:
    rng = random.Random(7)
    alphabet = "aAäÄzZ0123456789 .,:;/-()*+#@\n\t'’|DrHerFauProf.MRN\ud800\U0001f600ß€"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        result = deidentify(text)
        for span in result.spans:
            assert text[span.start : span.end] == span.surface
    assert deidentify("").text == ""
    with pytest.raises(TypeError):
        deidentify(None)  # type: ignore[arg-type]


def test_a_100kb_letter_is_handled_whole() -> None:
    """Size is no reason to skip text: every repeated letter's PHI is found (speed: benchmarks/bench_deid.py)."""
    unit = GERMAN_LETTER + ENGLISH_LETTER
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    result = deidentify(text)
    single = len(deidentify(unit).spans)
    assert len(result.spans) >= single * (100_000 // len(unit))
    assert all(text[s.start : s.end] == s.surface for s in result.spans)


def test_evaluation_on_one_grascco_letter(tmp_path: Path) -> None:
    letter = GRASCCO_DIR / "Gebauer.inception.json"
    if not letter.is_file():
        pytest.skip(f"GraSCCo PHI dev letters not found at {GRASCCO_DIR}")
    shutil.copy(letter, tmp_path / letter.name)
    gold = read_inception_json(tmp_path / letter.name)
    assert gold.text and any(s.label == "NAME_PATIENT" for s in gold.spans)
    report = evaluate_grascco(tmp_path)
    assert report["letters"] == 1
    per_kind = report["per_kind"]
    assert per_kind["name"]["recall"] >= 0.9
    assert per_kind["date"]["recall"] >= 0.9
    assert report["overall"]["precision"] >= 0.9
    assert set(report["overall"]) >= {"recall", "precision", "recall_exact", "precision_exact"}


def test_evaluation_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        evaluate_grascco(tmp_path)


def test_wards_and_line_end_dates_are_still_found() -> None:
    text = "Aufnahme auf Station 3B.\nZ.n. Nachexzision 4/27\nSeit 3/24 Husten."
    found = {(kind, text[start:end]) for start, end, kind in find_phi(text)}
    assert ("id", "3B") in found
    assert {("date", "4/27"), ("date", "3/24")} <= found
