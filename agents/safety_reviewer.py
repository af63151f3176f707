"""Safety reviewer: contraindications, organ function, interactions and dose limits; a critical
finding is an emergency stop that locks the report until a chief physician decides."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import ValidationError

from agents.base import ConsultContext, call_tool
from graphs.state import ConsultState
from oncoboard.domain import Approval
from tools.safety import review_safety


class ApprovalError(ValueError):
    """A resume value that is not a valid chief decision."""


def safety_reviewer(
    state: ConsultState, runtime: Runtime[ConsultContext]
) -> Command[Literal["locked", "report"]]:
    """Review every scheme against the patient's findings."""
    schemes = list(state["plan"].schemes) if state.get("plan") else []
    safety = call_tool(runtime, "review_safety", review_safety, findings=state["findings"], schemes=schemes)
    goto: Literal["locked", "report"] = "locked" if safety.status == "emergency_stop" else "report"
    return Command(update={"safety": safety}, goto=goto)


def locked(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
    """Pause the run until a chief physician approves or rejects (a LangGraph interrupt)."""
    decision = interrupt(
        {
            "reason": "emergency stop",
            "critical": [
                f.model_dump(mode="json") for f in state["safety"].findings if f.severity == "critical"
            ],
        }
    )
    try:
        approval = Approval.model_validate(decision)
    except ValidationError as exc:
        raise ApprovalError(f"invalid approval decision: {exc}") from exc
    recorder = runtime.context.recorder if runtime is not None and runtime.context is not None else None
    if recorder is not None:
        recorder.record("decision", "chief_approval", approval.model_dump(mode="json"))
    return {"approval": approval}
