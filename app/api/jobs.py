"""Jobs: the state of a queued consultation and its live progress."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentUser, QueueDep, ServiceDep
from app.api.schemas import ID_PATTERN, ErrorPublic, JobPublic
from app.api.sse import job_stream
from app.jobs import Job, JobNotFound, JobQueue

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=ID_PATTERN, description="The id returned by an async submission.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorPublic, "description": "No such job."}}


def _job(queue: JobQueue, job_id: str) -> Job:
    try:
        return queue.get(job_id)
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from exc


@router.get("/{job_id}", response_model=JobPublic, responses=_NOT_FOUND)
def get_job(job_id: JobId, user: CurrentUser, queue: QueueDep, service: ServiceDep) -> JobPublic:
    """A job's status, with the report once it is done."""
    job = _job(queue, job_id)
    report = service.get_report(job.case_id) if job.status == "done" and job.case_id else None
    return JobPublic(
        job_id=job.job_id,
        status=job.status,
        case_id=job.case_id,
        error=job.error,
        attempts=job.attempts,
        created_at=job.created_at,
        finished_at=job.finished_at,
        report=report,
    )


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_NOT_FOUND},
)
def job_events(job_id: JobId, user: CurrentUser, queue: QueueDep, service: ServiceDep) -> StreamingResponse:
    """Live progress of a job as server-sent events, then ``event: report`` (or ``event: failed``)."""
    _job(queue, job_id)
    return StreamingResponse(
        job_stream(queue, service, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
