"""Safety reviewer: contraindications, organ function, interactions and dose limits; a critical
finding is an emergency stop that locks the report until a chief physician decides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import ValidationError

from agents.base import ConsultContext, call_tool
from agents.kg_verifier import Verifier
from graphs.state import ConsultState
from oncoboard.domain import Approval, KGResult, Safety, SafetyFinding, Scheme
from tools.safety import review_safety


class ApprovalError(ValueError):
    """A resume value that is not a valid chief decision."""


# Graph conflicts that concern a drug's safety for this patient; indication and setting mismatches
# are the guideline checker's business.
_GRAPH_SAFETY_KINDS = frozenset({"contraindication", "interaction", "biomarker_mismatch", "biomarker_exclusion"})


def graph_safety_findings(graph: KGResult, schemes: list[Scheme], safety: Safety) -> list[SafetyFinding]:
    """Warnings for graph conflicts on a scheme drug that the safety rule tables did not already flag.

    The rule tables decide severity; the graph adds what they do not cover (an interaction with a
    co-medication, a targeted drug without its target) as a warning with the graph path as basis.
    """
    drugs = {d.lower() for s in schemes for t in s.treatments for d in t.drugs}
    covered = [(f"{f.drug or ''}".lower(), f"{f.basis} {f.reason}".lower()) for f in safety.findings]
    seen: set[tuple[str, str]] = set()
    extra: list[SafetyFinding] = []
    for conflict in graph.conflicts:
        subject = conflict.subject.lower()
        partner = (conflict.path[-1] if len(conflict.path) > 2 else conflict.detail).lower()
        if conflict.kind not in _GRAPH_SAFETY_KINDS or subject not in drugs or (subject, partner) in seen:
            continue
        # Already said by a rule about the same drug and the same partner (a co-medication, a condition).
        if any(drug == subject and partner in text for drug, text in covered):
            continue
        seen.add((subject, partner))
        extra.append(
            SafetyFinding(
                severity="warning",
                drug=conflict.subject,
                reason=f"knowledge graph {conflict.kind.replace('_', ' ')}: {conflict.detail}",
                basis=" -> ".join(conflict.path) or conflict.detail,
                rule_id=f"KG-{conflict.kind}",
            )
        )
    return extra


def make_safety_reviewer(verifier: Verifier | None) -> Callable[..., Command[Literal["locked", "report"]]]:
    """The node, bound to the graph verifier that also checks the drafted schemes (``None``: rules only)."""

    def safety_reviewer(state: ConsultState, runtime: Runtime[ConsultContext]) -> Command[Literal["locked", "report"]]:
        """Review every scheme against the patient's findings: rule tables first, then the graph."""
        findings = state["findings"]
        schemes = list(state["plan"].schemes) if state.get("plan") else []
        tumors = list(state["staging"].tumors) if state.get("staging") else []
        # the extractor's spans point into the de-identified text: the reviewer reads a condition's
        # sentence there to tell treated varices from untreated ones
        text = state["intake"].text if state.get("intake") else None
        safety = call_tool(
            runtime, "review_safety", review_safety, findings=findings, schemes=schemes, tumors=tumors, text=text
        )
        if verifier is not None and schemes and findings.oncology:
            graph = call_tool(
                runtime,
                "kg_verify_schemes",
                verifier.verify,
                findings=findings,
                tumors=tumors,
                schemes=schemes,
            )
            extra = graph_safety_findings(graph, schemes, safety)
            if extra:
                status = "warning" if safety.status == "ok" else safety.status
                safety = Safety(status=status, findings=[*safety.findings, *extra])
        goto: Literal["locked", "report"] = "locked" if safety.status == "emergency_stop" else "report"
        return Command(update={"safety": safety}, goto=goto)

    return safety_reviewer


def locked(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
    """Pause the run until a chief physician approves or rejects (a LangGraph interrupt)."""
    decision = interrupt(
        {
            "reason": "emergency stop",
            "critical": [f.model_dump(mode="json") for f in state["safety"].findings if f.severity == "critical"],
        }
    )
    try:
        approval = Approval.model_validate(decision)
    except ValidationError as exc:
        raise ApprovalError(f"invalid approval decision: {exc}") from exc
    if approval.role != "chief":
        # The lock is released by a chief only, whichever entry point resumed the run.
        raise ApprovalError(f"a {approval.role} cannot release an emergency stop")
    recorder = runtime.context.recorder if runtime is not None and runtime.context is not None else None
    if recorder is not None:
        recorder.record("decision", "chief_approval", approval.model_dump(mode="json"))
    return {"approval": approval}
