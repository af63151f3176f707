"""Server-sent events: formatting, and the streams of recorded traces and running jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from app.jobs import FINISHED, JobQueue
from graphs.service import ConsultService
from oncoboard.audit import TraceEvent

KEEPALIVE_S = 10.0
POLL_S = 0.2
MAX_STREAM_S = 1800.0


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """One event in the text/event-stream format."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def trace_stream(events: Iterable[TraceEvent], report: dict[str, Any], *, payloads: bool) -> Iterator[str]:
    """Replay of a recorded run, node by node, then the report."""
    for ev in events:
        data: dict[str, Any] = {
            "seq": ev.seq,
            "kind": ev.kind,
            "name": ev.name,
            "at": ev.at,
            "duration_ms": ev.duration_ms,
        }
        if payloads:
            data["payload"] = ev.payload
        yield sse(ev.kind, data, str(ev.seq))
    yield sse("report", report)


def job_stream(
    queue: JobQueue, service: ConsultService, job_id: str, *, max_seconds: float = MAX_STREAM_S
) -> Iterator[str]:
    """Live progress of a job (written by whichever worker runs it), then its report or error."""
    after = (0, -1)
    started = last_sent = time.monotonic()
    while time.monotonic() - started < max_seconds:
        job = queue.get(job_id)
        for ev in queue.events(job_id, after):
            after = (ev.attempt, ev.seq)
            last_sent = time.monotonic()
            data = {
                "attempt": ev.attempt,
                "seq": ev.seq,
                "kind": ev.kind,
                "name": ev.name,
                "at": ev.at,
                "duration_ms": ev.duration_ms,
            }
            yield sse(ev.kind, data, f"{ev.attempt}.{ev.seq}")
        if job.status in FINISHED:
            if job.status == "done" and job.case_id:
                yield sse("report", service.get_report(job.case_id).to_json_dict())
            else:
                yield sse("failed", {"job_id": job_id, "status": job.status, "error": job.error})
            return
        if time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        time.sleep(POLL_S)
    yield sse("timeout", {"job_id": job_id, "detail": f"stream closed after {max_seconds:.0f} s"})
