"""Guideline checker: scores the schemes against the guideline tables and decides whether to loop."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agents.base import ConsultContext, call_tool, run_settings
from graphs.state import ConsultState
from tools.guidelines import check_compliance


def guideline_checker(
    state: ConsultState, runtime: Runtime[ConsultContext]
) -> Command[Literal["planner", "safety_reviewer"]]:
    """Score the plan; under the threshold with iterations left, send the findings back to the planner."""
    plan = state["plan"]
    settings = run_settings(runtime)
    if not plan.schemes or all(s.limited_evidence for s in plan.schemes):
        # Nothing guideline-based to score: no loop can make evidence appear.
        return Command(goto="safety_reviewer")
    compliance = call_tool(
        runtime,
        "check_compliance",
        check_compliance,
        findings=state["findings"],
        tumors=list(state["staging"].tumors),
        schemes=list(plan.schemes),
        threshold=settings.compliance_threshold,
        iteration=plan.iteration,
    )
    compliance = compliance.model_copy(
        update={"iterations": plan.iteration, "threshold": settings.compliance_threshold}
    )
    if compliance.passed or plan.iteration >= settings.max_iterations:
        return Command(update={"compliance": compliance}, goto="safety_reviewer")
    return Command(update={"compliance": compliance}, goto="planner")
