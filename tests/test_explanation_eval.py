"""The explanation evaluation counts what the rule checks accept from a real (tiny) model."""

from __future__ import annotations

from pathlib import Path

from agents.grounding import ungrounded_statements
from evaluation.explanation_eval import evaluate_explanations
from oncoboard.domain import ConsultReport, Scheme, Treatment


def _report() -> ConsultReport:
    scheme = Scheme(
        kind="evidence_priority",
        title="Osimertinib",
        treatments=[Treatment(name="osimertinib", drugs=["osimertinib"], dose="80 mg", schedule="once daily")],
        rationale="r",
    )
    empty = Scheme(kind="innovative", title="Clinical trial", treatments=[], rationale="r")
    return ConsultReport(case_id="c1", status="final", oncology=True, schemes=[scheme, empty])


def test_every_treated_scheme_is_asked_and_judged_by_the_rule_checks(tiny_model_dir: Path) -> None:
    from oncoboard.llm.transformers_backend import TransformersModel

    model = TransformersModel(tiny_model_dir, threads=1)
    result = evaluate_explanations({"tiny": model}, [(_report(), "lung adenocarcinoma; EGFR exon 19 deletion")])
    assert result["explanations"] == 1  # the scheme without treatments is not explained
    scored = result["models"]["tiny"]
    (example,) = scored["examples"]
    # The verdict is the rule checks' verdict on the very text the model wrote.
    assert example["problems"] == ungrounded_statements(example["text"], _report().schemes[0])
    assert scored["accepted"] == (0 if example["problems"] else 1)
    assert sum(scored["rejection_reasons"].values()) >= (1 - scored["accepted"])
