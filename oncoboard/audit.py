"""Hash-chained audit trace of a consultation.

Every node start/end, tool call and model call becomes an event carrying the hash of the event
before it. Events are buffered during a run and persisted, together with the case and its report,
in one transaction, so a case is either fully recorded or not at all. Payloads are encrypted at
rest; the hash covers the plaintext, so both a changed ciphertext (authentication fails) and a
changed or removed row (chain breaks) are detected by :func:`verify_trace`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from oncoboard.crypto import CryptoError, Keyring
from oncoboard.storage import Database

logger = logging.getLogger(__name__)

EventKind = Literal["run_start", "node_start", "node_end", "tool_call", "model_call", "decision", "run_end"]
GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """Deterministic JSON used for hashing (sorted keys, no whitespace, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class TraceEvent:
    """One recorded step."""

    trace_id: str
    seq: int
    kind: str
    name: str
    at: str
    duration_ms: float | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """The hashed content of the event."""
        return {
            "trace_id": self.trace_id,
            "seq": self.seq,
            "kind": self.kind,
            "name": self.name,
            "at": self.at,
            "duration_ms": self.duration_ms,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }


def event_hash(body: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of an event body."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@dataclass
class TraceRecorder:
    """Collects the events of one run; thread-safe because parallel branches record concurrently."""

    case_id: str
    trace_id: str = field(default_factory=lambda: f"tr-{uuid.uuid4().hex}")
    events: list[TraceEvent] = field(default_factory=list)
    listeners: list[Callable[[TraceEvent], None]] = field(default_factory=list)
    """Called with every new event (live progress for the API's event stream); must not raise."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self, kind: EventKind, name: str, payload: dict[str, Any], duration_ms: float | None = None
    ) -> TraceEvent:
        """Append an event to the chain."""
        # Round-trip through JSON so the stored payload is exactly what was hashed.
        clean = json.loads(canonical_json(payload))
        with self._lock:
            prev = self.events[-1].hash if self.events else GENESIS
            seq = len(self.events)
            at = datetime.now(UTC).isoformat()
            body = {
                "trace_id": self.trace_id,
                "seq": seq,
                "kind": kind,
                "name": name,
                "at": at,
                "duration_ms": duration_ms,
                "payload": clean,
                "prev_hash": prev,
            }
            event = TraceEvent(**body, hash=event_hash(body))  # type: ignore[arg-type]
            self.events.append(event)
            # Listeners run under the lock so they see events in sequence order even when parallel
            # nodes record at once: a live reader that resumes "after seq n" must never skip one.
            for listener in self.listeners:
                listener(event)
        return event

    def tool(self, name: str, inputs: dict[str, Any], outputs: Any, started: float) -> None:
        """Record a tool call that started at ``time.perf_counter()`` value ``started``."""
        self.record(
            "tool_call", name, {"inputs": inputs, "outputs": outputs}, (time.perf_counter() - started) * 1000
        )

    @property
    def head(self) -> str:
        """Hash of the last event."""
        return self.events[-1].hash if self.events else GENESIS


def persist_events(conn: Any, recorder: TraceRecorder, keyring: Keyring) -> None:
    """Write the recorder's events inside the caller's transaction."""
    if not recorder.events:
        return
    rows = []
    for ev in recorder.events:
        blob, key_id = keyring.encrypt(canonical_json(ev.payload).encode(), ev.trace_id.encode())
        rows.append(
            (
                ev.trace_id,
                ev.seq,
                ev.kind,
                ev.name,
                ev.at,
                ev.duration_ms,
                blob,
                key_id,
                ev.prev_hash,
                ev.hash,
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO trace_events (trace_id, seq, kind, name, at, duration_ms, payload, key_id, prev_hash, hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    conn.execute(
        "INSERT INTO traces (trace_id, case_id, started_at, head_hash, n_events) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (trace_id) DO UPDATE SET head_hash = EXCLUDED.head_hash, n_events = EXCLUDED.n_events",
        (
            recorder.trace_id,
            recorder.case_id,
            recorder.events[0].at,
            recorder.head,
            recorder.events[-1].seq + 1,
        ),
    )


class TraceNotFound(LookupError):
    """No trace with this id."""


def load_trace(db: Database, keyring: Keyring, trace_id: str) -> list[TraceEvent]:
    """The events of a trace in order, decrypted (raises CryptoError on tampered payloads)."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT * FROM trace_events WHERE trace_id = %s ORDER BY seq", (trace_id,)
        ).fetchall()
    if not rows:
        raise TraceNotFound(trace_id)
    events = []
    for r in rows:
        payload = json.loads(keyring.decrypt(r["payload"], r["key_id"], trace_id.encode()))
        events.append(
            TraceEvent(
                trace_id=r["trace_id"],
                seq=r["seq"],
                kind=r["kind"],
                name=r["name"],
                at=r["at"],
                duration_ms=r["duration_ms"],
                payload=payload,
                prev_hash=r["prev_hash"],
                hash=r["hash"],
            )
        )
    return events


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain verification."""

    ok: bool
    n_events: int
    problems: list[str]


def verify_trace(db: Database, keyring: Keyring, trace_id: str) -> VerifyResult:
    """Recompute the hash chain of a stored trace and compare it with the recorded head."""
    problems: list[str] = []
    with db.connect() as conn:
        head = conn.execute(
            "SELECT head_hash, n_events FROM traces WHERE trace_id = %s", (trace_id,)
        ).fetchone()
        rows = conn.execute(
            "SELECT * FROM trace_events WHERE trace_id = %s ORDER BY seq", (trace_id,)
        ).fetchall()
    if head is None and not rows:
        raise TraceNotFound(trace_id)
    prev = GENESIS
    for expected_seq, r in enumerate(rows):
        if r["seq"] != expected_seq:
            problems.append(f"event {expected_seq} is missing (found seq {r['seq']})")
        try:
            payload = json.loads(keyring.decrypt(r["payload"], r["key_id"], trace_id.encode()))
        except CryptoError as exc:
            problems.append(f"event {r['seq']}: payload cannot be authenticated ({exc})")
            prev = r["hash"]
            continue
        body = {
            "trace_id": trace_id,
            "seq": r["seq"],
            "kind": r["kind"],
            "name": r["name"],
            "at": r["at"],
            "duration_ms": r["duration_ms"],
            "payload": payload,
            "prev_hash": r["prev_hash"],
        }
        if r["prev_hash"] != prev:
            problems.append(f"event {r['seq']}: link to the previous event is broken")
        if event_hash(body) != r["hash"]:
            problems.append(f"event {r['seq']} ({r['kind']} {r['name']}): content does not match its hash")
        prev = r["hash"]
    if head is None:
        problems.append("trace header is missing")
    else:
        if head["n_events"] != len(rows):
            problems.append(f"trace header says {head['n_events']} events, {len(rows)} stored")
        if head["head_hash"] != prev:
            problems.append("last event does not match the recorded head hash")
    return VerifyResult(ok=not problems, n_events=len(rows), problems=problems)
