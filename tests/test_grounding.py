"""Model text is checked against the scheme it explains before it may enter a report."""

from __future__ import annotations

from agents.grounding import ungrounded_statements
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
