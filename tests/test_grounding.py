"""Model text is checked against the scheme it explains before it may enter a report."""

from __future__ import annotations

from agents.grounding import ungrounded_statements, unsupported_by_facts
from oncoboard.domain import Scheme, Treatment

SCHEME = Scheme(
    kind="evidence_priority",
    title="Osimertinib",
    treatments=[Treatment(name="osimertinib", drugs=["osimertinib"], dose="80 mg", schedule="once daily")],
    rationale="r",
)


def test_grounded_explanation_passes() -> None:
    text = "Osimertinib 80 mg once daily targets the EGFR exon 19 deletion found in this tumour."
    assert ungrounded_statements(text, SCHEME) == []


def test_other_drug_brand_or_dose_is_refused() -> None:
    assert any(
        "outside the scheme" in p for p in ungrounded_statements("Give Keytruda with osimertinib daily.", SCHEME)
    )
    assert any("dose" in p for p in ungrounded_statements("Osimertinib 160 mg once daily is the standard.", SCHEME))
    assert "explanation is empty or too short" in ungrounded_statements("ok", SCHEME)


def test_off_topic_or_degenerate_text_is_refused() -> None:
    assert any("does not mention" in p for p in ungrounded_statements("This is a good plan for the patient.", SCHEME))
    looping = "osimertinib is good " * 6
    assert "repeats the same phrase" in ungrounded_statements(looping, SCHEME)


CAPOX = Scheme(
    kind="evidence_priority",
    title="Adjuvant CAPOX",
    treatments=[
        Treatment(
            name="CAPOX", drugs=["capecitabine", "oxaliplatin"], dose="oxaliplatin 130 mg/m2; capecitabine 1000 mg/m2"
        ),
    ],
    rationale="r",
)


def test_dose_must_match_a_whole_amount_of_the_scheme() -> None:
    assert ungrounded_statements("CAPOX gives oxaliplatin 130 mg/m2 with capecitabine 1000 mg/m2.", CAPOX) == []
    # 100 is a substring of 1000 but not an amount the scheme carries.
    problems = ungrounded_statements("CAPOX gives oxaliplatin 130 mg and capecitabine 100 mg twice daily.", CAPOX)
    assert any("100 mg" in p for p in problems)


def test_invented_drug_or_chemical_names_are_refused() -> None:
    text = "Capecitabine with oxaliplatin and cabrocarboxyltrimethylamine for three months."
    assert any("cabrocarboxyltrimethylamine" in p for p in ungrounded_statements(text, CAPOX))
    assert any("Zorvatinib" in p for p in ungrounded_statements("Osimertinib, later Zorvatinib if needed.", SCHEME))


def test_class_description_must_fit_the_drugs() -> None:
    wrong = "Osimertinib is a monoclonal antibody that targets EGFR in this tumour."
    assert any("monoclonal antibody" in p for p in ungrounded_statements(wrong, SCHEME))
    right = "Osimertinib is a tyrosine kinase inhibitor that targets the EGFR mutation in this tumour."
    assert ungrounded_statements(right, SCHEME) == []
    assert (
        ungrounded_statements("CAPOX is a chemotherapy of capecitabine and oxaliplatin after resection.", CAPOX) == []
    )
    pembro = Scheme(
        kind="innovative",
        title="Pembrolizumab",
        treatments=[Treatment(name="pembrolizumab", drugs=["pembrolizumab"], dose="200 mg")],
        rationale="r",
    )
    assert ungrounded_statements("Pembrolizumab is a monoclonal antibody against PD-1 for this tumour.", pembro) == []
    assert any(
        "chemotherapy" in p for p in ungrounded_statements("Pembrolizumab is a chemotherapy given here.", pembro)
    )


def test_chat_rephrasing_adds_no_drug_substance_or_number() -> None:
    facts = "Biomarkers:\n- PD-L1: TPS 30% (positive)\nScheme: pembrolizumab 200 mg every 3 weeks"
    assert unsupported_by_facts("PD-L1 is positive with a TPS of 30%; pembrolizumab 200 mg every 3 weeks.", facts) == []
    assert any("nivolumab" in p.lower() for p in unsupported_by_facts("Nivolumab could replace pembrolizumab.", facts))
    assert any("45" in p for p in unsupported_by_facts("The TPS is 45%.", facts))
    assert unsupported_by_facts("   ", facts) == ["answer is empty"]
