"""Traces: recorded events (payloads for attendings and chiefs) and hash-chain verification."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from app.api.deps import CurrentUser, ServiceDep
from app.api.schemas import ID_PATTERN, ErrorPublic, TraceEventPublic, TracePublic, VerifyPublic
from oncoboard.audit import TraceNotFound, load_trace, verify_trace
from oncoboard.crypto import CryptoError

router = APIRouter(prefix="/v1/traces", tags=["traces"])

TraceId = Annotated[str, Path(pattern=ID_PATTERN, description="The trace id of a report.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorPublic, "description": "No such trace."}}


@router.get(
    "/{trace_id}",
    response_model=TracePublic,
    responses={**_NOT_FOUND, 409: {"model": ErrorPublic, "description": "The trace fails authentication."}},
)
def get_trace(trace_id: TraceId, user: CurrentUser, service: ServiceDep) -> TracePublic:
    """The events of a trace in order."""
    try:
        events = load_trace(service.db, service.keyring, trace_id)
    except TraceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no trace {trace_id}") from exc
    except CryptoError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"trace {trace_id} cannot be authenticated ({exc}); see /verify"
        ) from exc
    payloads = user.can("attending")
    return TracePublic(
        trace_id=trace_id,
        n_events=len(events),
        events=[
            TraceEventPublic(
                seq=ev.seq,
                kind=ev.kind,
                name=ev.name,
                at=ev.at,
                duration_ms=ev.duration_ms,
                prev_hash=ev.prev_hash,
                hash=ev.hash,
                payload=ev.payload if payloads else None,
            )
            for ev in events
        ],
    )


@router.get("/{trace_id}/verify", response_model=VerifyPublic, responses=_NOT_FOUND)
def verify(trace_id: TraceId, user: CurrentUser, service: ServiceDep) -> VerifyPublic:
    """Recompute the trace's hash chain."""
    try:
        result = verify_trace(service.db, service.keyring, trace_id)
    except TraceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no trace {trace_id}") from exc
    return VerifyPublic(ok=result.ok, n_events=result.n_events, problems=result.problems)
