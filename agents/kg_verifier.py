"""Knowledge-graph verifier: links mentions to graph nodes and reports what the graph contradicts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from langgraph.runtime import Runtime

from agents.base import ConsultContext, call_tool
from graphs.state import ConsultState
from oncoboard.domain import Findings, KGResult, Scheme, Tumor


class Verifier(Protocol):
    """Grounds findings (and optionally schemes) in the knowledge graph."""

    def verify(self, findings: Findings, tumors: Sequence[Tumor], schemes: Sequence[Scheme] | None = None) -> KGResult:
        """Links, conflicts with their graph paths, and context lines for the planner."""
        ...


def make_kg_verifier(verifier: Verifier | None) -> Callable[..., dict]:
    """The node, bound to its graph store (``None``: no graph configured, recorded as such)."""

    def kg_verifier(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
        """Link the findings and check patient-level consistency before planning."""
        findings = state["findings"]
        if verifier is None or not findings.oncology:
            return {"kg": KGResult()}
        result = call_tool(
            runtime,
            "kg_verify",
            verifier.verify,
            findings=findings,
            tumors=list(state["staging"].tumors),
            schemes=None,
        )
        return {"kg": result}

    return kg_verifier
