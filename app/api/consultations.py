"""Consultations: submit (sync or queued), read, stream, decide, modify a scheme."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.deps import AttendingUser, ChiefUser, CurrentUser, QueueDep, ServiceDep
from app.api.schemas import (
    ID_PATTERN,
    ConsultationCreate,
    DecisionCreate,
    ErrorPublic,
    JobAccepted,
    SchemeChangeCreate,
)
from app.api.sse import job_stream, trace_stream
from app.jobs import JobNotFound
from app.modifications import (
    ReportLocked,
    ReportMissing,
    SchemeChange,
    SchemeMissing,
    UnsafeModification,
    modify_scheme,
)
from graphs.service import NotLocked, ReportNotFound
from oncoboard.audit import load_trace
from oncoboard.config import RunContext, get_settings
from oncoboard.domain import Approval, ConsultReport, SchemeKind

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/consultations", tags=["consultations"])

CaseId = Annotated[str, Path(pattern=ID_PATTERN, description="The report's pseudonymous case id.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No report for this case id."}
}


@router.post(
    "",
    response_model=ConsultReport,
    responses={202: {"model": JobAccepted, "description": "Queued (mode async)."}},
)
def create_consultation(
    body: ConsultationCreate, request: Request, user: CurrentUser, service: ServiceDep, queue: QueueDep
) -> ConsultReport | JSONResponse:
    """Consult a case: the report now (sync, the default) or a job id to follow (async)."""
    case = body.to_case()
    if body.mode == "async":
        job_id = queue.submit(case, run={"language": case.lang}, submitted_by=user.user_id)
        request.state.job_id = job_id
        return JSONResponse(JobAccepted(job_id=job_id).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    report = service.consult(case, RunContext.from_settings(get_settings(), language=case.lang))
    request.state.case_id = report.case_id
    return report


def _report(service: ServiceDep, case_id: str) -> ConsultReport:
    try:
        return service.get_report(case_id)
    except ReportNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report for case {case_id}") from exc


@router.get("/{case_id}", response_model=ConsultReport, responses=_NOT_FOUND)
def get_consultation(case_id: CaseId, user: CurrentUser, service: ServiceDep) -> ConsultReport:
    """The stored report of a case."""
    return _report(service, case_id)


@router.get("/{case_id}/identity", response_model=dict[str, str], responses=_NOT_FOUND)
def case_identity(case_id: CaseId, user: ChiefUser, service: ServiceDep) -> dict[str, str]:
    """Re-identification (chief only): the case's pseudonym -> original mapping, access-logged."""
    _report(service, case_id)
    return service.identity_mapping(case_id, user.role)


@router.get(
    "/{case_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_NOT_FOUND},
)
def consultation_events(case_id: CaseId, user: CurrentUser, service: ServiceDep, queue: QueueDep) -> StreamingResponse:
    """A consultation as server-sent events (``event: <kind>``), then ``event: report``.

    For a recorded case: a replay of its trace. Event data: ``{seq, kind, name, at, duration_ms}``;
    attendings and chiefs also get ``payload``. A case still queued or running has no case id yet:
    pass its job id here (or use ``GET /v1/jobs/{job_id}/events``) to follow it live.
    """
    try:
        report = service.get_report(case_id)
    except ReportNotFound:
        try:
            queue.get(case_id)
        except JobNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report or job {case_id}") from exc
        return StreamingResponse(
            job_stream(queue, service, case_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    if report.trace_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"case {case_id} has no recorded trace")
    events = load_trace(service.db, service.keyring, report.trace_id)
    return StreamingResponse(
        trace_stream(events, report.to_json_dict(), payloads=user.can("attending")),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


@router.post(
    "/{case_id}/decision",
    response_model=ConsultReport,
    responses={**_NOT_FOUND, 409: {"model": ErrorPublic, "description": "The report is not locked."}},
)
def decide(case_id: CaseId, body: DecisionCreate, user: ChiefUser, service: ServiceDep) -> ConsultReport:
    """A chief's approval or rejection of a locked report."""
    approval = Approval(
        decision=body.decision,
        by=user.name,
        role=user.role,
        reason=body.reason,
        at=datetime.now(UTC).isoformat(),
    )
    try:
        return service.decide(case_id, approval)
    except ReportNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report for case {case_id}") from exc
    except NotLocked as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post(
    "/{case_id}/schemes/{kind}",
    response_model=ConsultReport,
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorPublic, "description": "The report is locked."},
        422: {"description": "Invalid change, or the changed scheme fails the safety rules."},
    },
)
def change_scheme(
    case_id: CaseId, kind: SchemeKind, body: SchemeChangeCreate, user: AttendingUser, service: ServiceDep
) -> ConsultReport:
    """Replace one scheme's treatments (attending or chief), with a mandatory reason."""
    change = SchemeChange(treatments=body.treatments, reason=body.reason, title=body.title, rationale=body.rationale)
    try:
        return modify_scheme(service.db, service.keyring, case_id, kind, change, by=user.name, role=user.role)
    except (ReportMissing, SchemeMissing) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ReportLocked as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except UnsafeModification as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
