"""Scheme explanations by the language model: how many pass the rule checks, why the rest fail, and cost.

The planner shows a model's explanation only when it passes ``agents.grounding.ungrounded_statements``.
This evaluation drafts the schemes of dev cases without a model, asks each configured model for the
explanation the planner would ask for, and counts what the rule checks accept. It is how the project
decides whether a model (or an adapter) earns its place in the planner: an explanation that is always
dropped only costs time.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.grounding import ungrounded_statements
from agents.planner import REASONING_TOKENS, patient_summary, reasoning_prompt
from oncoboard.config import RunContext
from oncoboard.domain import CaseInput, ConsultReport
from oncoboard.llm import LanguageModel, LLMError, Message
from tools.extraction import extract_findings

logger = logging.getLogger(__name__)


def draft_reports(service: Any, cases: Sequence[CaseInput]) -> list[tuple[ConsultReport, str]]:
    """Consult each case without a model (``service`` is a ``graphs.service.ConsultService``).

    Returns each report with the patient summary the planner would have given the model.
    """
    drafted = []
    for case in cases:
        report = service.consult(case, RunContext(use_llm=False))
        findings = extract_findings(case.text, report.language)
        drafted.append((report, patient_summary(findings, list(report.tumors))))
    return drafted


def _reason_kind(problem: str) -> str:
    """A problem line reduced to its rule (the part before a colon or quoted detail)."""
    return problem.split(":")[0].split("'")[0].strip()


def evaluate_explanations(
    models: Mapping[str, LanguageModel], reports: Sequence[tuple[ConsultReport, str]]
) -> dict[str, Any]:
    """For each named model: share of scheme explanations accepted, rejection reasons, latency per call."""
    prompts: list[tuple[str, str]] = []
    for report, summary in reports:
        for scheme in report.schemes:
            if scheme.treatments:
                prompts.append((reasoning_prompt(scheme, summary, report.language), report.case_id))
    schemes = [s for r, _ in reports for s in r.schemes if s.treatments]
    result: dict[str, Any] = {"cases": len(reports), "explanations": len(prompts), "models": {}}
    for name, llm in models.items():
        accepted = 0
        reasons: Counter[str] = Counter()
        latencies: list[float] = []
        examples: list[dict[str, Any]] = []
        for (prompt, case_id), scheme in zip(prompts, schemes, strict=True):
            started = time.perf_counter()
            try:
                text = llm.generate([Message("user", prompt)], max_tokens=REASONING_TOKENS)
            except LLMError as exc:
                text, problems = "", [f"model error: {exc}"]
            else:
                problems = ungrounded_statements(text, scheme)
            latencies.append(time.perf_counter() - started)
            accepted += not problems
            reasons.update({_reason_kind(p) for p in problems})
            if len(examples) < 6:
                examples.append({"case": case_id, "scheme": scheme.kind, "text": text, "problems": problems})
            logger.info("%s %s %s: %s", name, case_id, scheme.kind, problems or "accepted")
        result["models"][name] = {
            "model": llm.describe,
            "accepted": accepted,
            "acceptance_rate": round(accepted / len(prompts), 3) if prompts else None,
            "rejection_reasons": dict(reasons.most_common()),
            "median_latency_s": round(statistics.median(latencies), 2) if latencies else None,
            "examples": examples,
        }
    return result


def evaluate_on_dev_cases(
    models: Mapping[str, LanguageModel], folder: Path | None = None, *, limit: int = 15, service: Any = None
) -> dict[str, Any]:
    """``evaluate_explanations`` over the first ``limit`` dev cases that have a gold treatment."""
    from evaluation.cases_eval import CASES_DIR, load_cases

    cases = [c for c in load_cases(folder or CASES_DIR) if c.gold.acceptable_first_drugs][:limit]
    if service is None:
        from app.wiring import build_service

        service = build_service(no_llm=True)
    return evaluate_explanations(models, draft_reports(service, [CaseInput(text=c.text, lang=c.lang) for c in cases]))
