"""Report: assemble the ConsultReport from what each specialist wrote, and decide its status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.runtime import Runtime

from agents.base import ConsultContext
from oncoboard.domain import (
    LIMITED_EVIDENCE_TEXT,
    ConsultReport,
    Provenance,
    ReportStatus,
    Safety,
    Scheme,
    rejected_report,
)


def compose_report(state: Mapping[str, Any], *, llm_name: str = "none", trace_id: str | None = None) -> ConsultReport:
    """The report for the current state (also used for a locked run paused at its interrupt).

    Fail closed: a conflict, an exhausted loop, a suspicious note or missing evidence gives
    ``needs_review``; a critical safety finding without a chief's approval gives ``locked``.
    """
    intake = state["intake"]
    if not intake.accepted:
        report = rejected_report(intake.case_id, intake.error or "rejected", intake.language)
        return report.model_copy(update={"trace_id": trace_id})
    findings = state.get("findings")
    staging = state.get("staging")
    coding = state.get("coding")
    literature = state.get("literature")
    plan = state.get("plan")
    compliance = state.get("compliance")
    safety: Safety = state.get("safety") or Safety(status="ok")
    approval = state.get("approval")
    oncology = bool(findings and findings.oncology)
    schemes: list[Scheme] = list(plan.schemes) if plan and oncology else []
    limited = bool(schemes) and all(s.limited_evidence for s in schemes)

    reasons: list[str] = list(intake.review_reasons)
    if staging:
        reasons += [f"staging conflict: {c}" for c in staging.conflicts]
    if compliance is not None and not compliance.passed:
        reasons.append(
            f"guideline compliance {compliance.score} is under the threshold {compliance.threshold} "
            f"after {compliance.iterations} iteration(s)"
        )
    if limited:
        reasons.append(LIMITED_EVIDENCE_TEXT)
    if oncology and not schemes:
        reasons.append("no treatment scheme could be drafted")
    if oncology and staging and not staging.tumors:
        reasons.append("an oncology case without an identifiable tumour site")

    status: ReportStatus
    if safety.status == "emergency_stop" and (approval is None or approval.decision != "approved"):
        status = "locked"
    elif reasons:
        status = "needs_review"
    else:
        status = "final"

    fields_from_llm = list(findings.fields_from_llm) if findings else []
    if plan:
        fields_from_llm += list(plan.fields_from_llm)
    return ConsultReport(
        case_id=intake.case_id,
        status=status,
        language=intake.language,
        oncology=oncology,
        tumors=list(staging.tumors) if staging and oncology else [],
        icd10=list(coding.codes) if coding and oncology else [],
        biomarkers=list(findings.biomarkers) if findings else [],
        entities=list(findings.entities) if findings else [],
        evidence=list(literature.hits) if literature else [],
        kg=state.get("kg") or ConsultReport.model_fields["kg"].default,
        compliance=compliance,
        safety=safety,
        schemes=schemes,
        limited_evidence=limited,
        provenance=Provenance(llm=llm_name if fields_from_llm else "none", fields_from_llm=fields_from_llm),
        trace_id=trace_id,
        review_reasons=reasons,
        approval=approval,
    )


def make_report(llm_name: str):  # noqa: ANN201 - returns a LangGraph node
    """The node, knowing which model backend the run used."""

    def report(state: Mapping[str, Any], runtime: Runtime[ConsultContext]) -> dict:
        """Write the final report into the state."""
        recorder = runtime.context.recorder if runtime is not None and runtime.context is not None else None
        trace_id = recorder.trace_id if recorder is not None else None
        return {"report": compose_report(state, llm_name=llm_name, trace_id=trace_id)}

    return report
