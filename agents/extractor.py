"""Extractor: findings (site, histology, size, nodes, metastases, biomarkers, fitness, organ function,
comorbidities, medications) with character spans as evidence."""

from __future__ import annotations

from langgraph.runtime import Runtime

from agents.base import ConsultContext, call_tool
from graphs.state import ConsultState
from tools.extraction import extract_findings


def extractor(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
    """Run the deterministic bilingual extractor on the de-identified text."""
    intake = state["intake"]
    findings = call_tool(
        runtime,
        "extract_findings",
        extract_findings,
        text=intake.text,
        lang=intake.language,
        structured=state["case"].structured,
    )
    return {"findings": findings}
