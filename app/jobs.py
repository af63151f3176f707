"""A Postgres-backed job queue for asynchronous consultations, and the workers that drain it.

Design
------
A job row holds the encrypted case input and its state (``queued`` -> ``running`` -> ``done`` or
``failed``). Workers claim jobs with ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent workers
never take the same row, and write a heartbeat while a case runs.

Liveness. Besides the heartbeat, a worker holds a session-level advisory lock on every job it
runs, on a connection that lives as long as the worker. Postgres drops that lock the moment the
worker's connection goes away (a SIGKILLed process included). A ``running`` job is re-claimed only
when its heartbeat is older than ``stale_after_s`` *and* its advisory lock can be taken, so a slow
but living worker (heartbeat thread starved of CPU) never loses its job to a second one.

Exactly-once completion. ``ConsultService.consult`` records the case, its report and its trace in
one transaction, under a case id and trace id it chooses itself. A worker learns the trace id from
the run's first event and writes it onto the job row *before* the graph runs (fenced by
``locked_by``: a worker that no longer owns the job aborts there). Re-claiming a stale job first
looks for a report with that trace id:

- found: the previous attempt committed and died before marking the job; the job is completed
  with that report's case id and the case is not run again;
- not found: the previous attempt's transaction never committed (it is all or nothing), so running
  the case again cannot record it twice.

Just before the service persists (its ``run_end`` event), the worker checks once more that it
still owns the job and aborts otherwise. With the advisory lock this leaves no window in which two
attempts of one job can both commit a report.

Progress events (kind, name, timing; never payloads) are written to ``job_events`` as they happen,
so an event stream in any process can follow a job run by a worker in another process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import psycopg

from oncoboard.audit import TraceEvent
from oncoboard.crypto import Keyring
from oncoboard.domain import CaseInput, ConsultReport
from oncoboard.storage import Database

if TYPE_CHECKING:
    from graphs.service import ConsultService

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed"]
FINISHED: Final[frozenset[str]] = frozenset({"done", "failed"})
_ADVISORY_NAMESPACE: Final = 0x0C0B0B10
_RUN_KEYS: Final[frozenset[str]] = frozenset({"use_llm", "language"})


class JobNotFound(LookupError):
    """No job with this id."""


class LostOwnership(RuntimeError):
    """The worker no longer owns the job it is running (it was re-claimed); the run is abandoned."""


@dataclass(frozen=True)
class Job:
    """A job as stored (without its payload)."""

    job_id: str
    status: JobStatus
    attempts: int
    max_attempts: int
    locked_by: str | None
    heartbeat_at: datetime | None
    trace_id: str | None
    case_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class JobEvent:
    """One progress event of a job attempt."""

    attempt: int
    seq: int
    kind: str
    name: str
    at: str
    duration_ms: float | None


@dataclass(frozen=True)
class WorkerSettings:
    """Timing of a worker."""

    heartbeat_s: float = 2.0
    """How often a running job's heartbeat is written."""
    stale_after_s: float = 30.0
    """A running job whose heartbeat is older than this may be re-claimed (if its owner is gone)."""
    poll_s: float = 0.5
    """Pause between claims when the queue is empty."""


_JOB_COLUMNS = (
    "job_id, status, attempts, max_attempts, locked_by, heartbeat_at, trace_id, case_id, error,"
    " created_at, started_at, finished_at"
)


class JobQueue:
    """Submitting and inspecting jobs."""

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring

    def submit(
        self,
        case: CaseInput,
        *,
        run: dict[str, Any] | None = None,
        submitted_by: int | None = None,
        max_attempts: int = 3,
    ) -> str:
        """Queue one case; returns the job id. ``run`` may set ``use_llm`` and ``language``."""
        unknown = set(run or {}) - _RUN_KEYS
        if unknown:
            raise ValueError(f"unknown run settings: {', '.join(sorted(unknown))}")
        job_id = f"job-{uuid.uuid4().hex}"
        blob, key_id = self.keyring.encrypt(case.model_dump_json().encode(), job_id.encode())
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (job_id, status, payload, key_id, run, submitted_by, max_attempts)"
                " VALUES (%s, 'queued', %s, %s, %s, %s, %s)",
                (job_id, blob, key_id, json.dumps(run or {}), submitted_by, max_attempts),
            )
        logger.info("queued %s", job_id)
        return job_id

    def get(self, job_id: str) -> Job:
        """The job's current state."""
        with self.db.connect() as conn:
            row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = %s", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return Job(**row)

    def events(self, job_id: str, after: tuple[int, int] = (0, -1)) -> list[JobEvent]:
        """Progress events after ``(attempt, seq)``, in order."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT attempt, seq, kind, name, at, duration_ms FROM job_events"
                " WHERE job_id = %s AND (attempt, seq) > (%s, %s) ORDER BY attempt, seq",
                (job_id, *after),
            ).fetchall()
        return [JobEvent(**row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs by status."""
        with self.db.connect() as conn:
            rows = conn.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status").fetchall()
        return {row["status"]: row["n"] for row in rows}


@dataclass(frozen=True)
class _Claim:
    job_id: str
    attempt: int
    payload: bytes
    key_id: str
    run: dict[str, Any]


def new_worker_id(label: str = "") -> str:
    """A unique, readable worker id (host, process, label)."""
    suffix = f":{label}" if label else ""
    return f"{socket.gethostname()}:{os.getpid()}{suffix}:{uuid.uuid4().hex[:6]}"


@dataclass
class Worker:
    """Claims jobs one at a time and runs them through a ConsultService."""

    queue: JobQueue
    service: ConsultService
    settings: WorkerSettings = field(default_factory=WorkerSettings)
    worker_id: str = field(default_factory=new_worker_id)
    _conn: psycopg.Connection[dict[str, Any]] | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ connection

    def _lock_conn(self) -> psycopg.Connection[dict[str, Any]]:
        """The worker's long-lived connection: it holds the advisory locks of running jobs."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self.queue.db.connect(autocommit=True)
        return self._conn

    def close(self) -> None:
        """Close the worker's connection (releasing any advisory lock it holds)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def _unlock(self, job_id: str) -> None:
        self._lock_conn().execute(
            "SELECT pg_advisory_unlock(%s, hashtext(%s))", (_ADVISORY_NAMESPACE, job_id)
        )

    # ------------------------------------------------------------------ claiming

    def _claim(self) -> _Claim | None:
        """Take the oldest queued job, or a stale running one whose worker is gone."""
        conn = self._lock_conn()
        with conn.transaction():
            candidates = conn.execute(
                "SELECT job_id, status, attempts, max_attempts, trace_id FROM jobs"
                " WHERE status = 'queued' OR (status = 'running'"
                "  AND heartbeat_at < now() - make_interval(secs => %s))"
                " ORDER BY created_at LIMIT 8 FOR UPDATE SKIP LOCKED",
                (self.settings.stale_after_s,),
            ).fetchall()
            for cand in candidates:
                got = conn.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS ok",
                    (_ADVISORY_NAMESPACE, cand["job_id"]),
                ).fetchone()
                if not got or not got["ok"]:
                    # Its worker is alive (connection open) though its heartbeat lags; or, rarely, a
                    # running job whose id hashes alike holds the key: either way, wait.
                    continue
                if cand["status"] == "running" and self._settle_abandoned(conn, cand):
                    self._unlock(cand["job_id"])
                    continue
                row = conn.execute(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = %s,"
                    " heartbeat_at = now(), started_at = coalesce(started_at, now()), trace_id = NULL,"
                    " error = NULL WHERE job_id = %s RETURNING job_id, attempts, payload, key_id, run",
                    (self.worker_id, cand["job_id"]),
                ).fetchone()
                assert row is not None  # the row is locked FOR UPDATE by this transaction
                if cand["status"] == "running":
                    logger.warning("re-claimed stale job %s (attempt %d)", row["job_id"], row["attempts"])
                return _Claim(
                    job_id=row["job_id"],
                    attempt=row["attempts"],
                    payload=bytes(row["payload"]),
                    key_id=row["key_id"],
                    run=dict(row["run"] or {}),
                )
        return None

    def _settle_abandoned(self, conn: psycopg.Connection[dict[str, Any]], cand: dict[str, Any]) -> bool:
        """Finish a stale job without running it when that is the right outcome; True if settled."""
        if cand["trace_id"]:
            done = conn.execute(
                "SELECT case_id FROM reports WHERE trace_id = %s", (cand["trace_id"],)
            ).fetchone()
            if done is not None:
                # The lost attempt committed its report before dying: complete, never run again.
                conn.execute(
                    "UPDATE jobs SET status = 'done', case_id = %s, locked_by = %s, finished_at = now()"
                    " WHERE job_id = %s",
                    (done["case_id"], self.worker_id, cand["job_id"]),
                )
                logger.info("job %s had completed before its worker was lost", cand["job_id"])
                return True
        if cand["attempts"] >= cand["max_attempts"]:
            conn.execute(
                "UPDATE jobs SET status = 'failed', locked_by = %s, finished_at = now(), error = %s"
                " WHERE job_id = %s",
                (
                    self.worker_id,
                    f"abandoned: its worker was lost {cand['attempts']} times",
                    cand["job_id"],
                ),
            )
            logger.warning("job %s failed: worker lost %d times", cand["job_id"], cand["attempts"])
            return True
        return False

    # ------------------------------------------------------------------ running

    def run_one(self) -> str | None:
        """Claim and run one job; returns its id, or None when nothing was claimable."""
        claim = self._claim()
        if claim is None:
            return None
        try:
            self._run(claim)
        finally:
            try:
                self._unlock(claim.job_id)
            except psycopg.Error:
                # The connection is gone, and with it the lock.
                self.close()
        return claim.job_id

    def _run(self, claim: _Claim) -> None:
        from oncoboard.config import RunContext, get_settings

        lost = threading.Event()
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(claim.job_id, stop, lost), daemon=True, name="job-heartbeat"
        )
        beat.start()
        try:
            case = CaseInput.model_validate_json(
                self.queue.keyring.decrypt(claim.payload, claim.key_id, claim.job_id.encode())
            )
            run = RunContext.from_settings(get_settings(), **claim.run)
            report = self.service.consult(case, run, on_event=self._listener(claim, lost))
            self._finish(claim.job_id, report)
        except LostOwnership as exc:
            logger.warning("abandoned job %s: %s", claim.job_id, exc)
        except Exception as exc:
            # The worker outlives any one case: the failure is logged in full and stored on the job.
            logger.exception("job %s failed", claim.job_id)
            self._fail(claim.job_id, f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()
            beat.join()

    def _listener(self, claim: _Claim, lost: threading.Event) -> Callable[[TraceEvent], None]:
        conn = self._lock_conn()

        def on_event(event: TraceEvent) -> None:
            if event.seq == 0:
                cur = conn.execute(
                    "UPDATE jobs SET trace_id = %s"
                    " WHERE job_id = %s AND locked_by = %s AND status = 'running'",
                    (event.trace_id, claim.job_id, self.worker_id),
                )
                if cur.rowcount != 1:
                    raise LostOwnership(f"job {claim.job_id} was re-claimed before it started")
            conn.execute(
                "INSERT INTO job_events (job_id, attempt, seq, kind, name, at, duration_ms)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (claim.job_id, claim.attempt, event.seq, event.kind, event.name, event.at, event.duration_ms),
            )
            if event.kind == "run_end":
                # The last chance to stop before the service commits the report.
                row = conn.execute(
                    "SELECT locked_by, status FROM jobs WHERE job_id = %s", (claim.job_id,)
                ).fetchone()
                if lost.is_set() or row is None or row["locked_by"] != self.worker_id:
                    raise LostOwnership(f"job {claim.job_id} is now owned by another worker")

        return on_event

    def _heartbeat(self, job_id: str, stop: threading.Event, lost: threading.Event) -> None:
        try:
            with self.queue.db.connect(autocommit=True) as conn:
                while not stop.wait(self.settings.heartbeat_s):
                    cur = conn.execute(
                        "UPDATE jobs SET heartbeat_at = now()"
                        " WHERE job_id = %s AND locked_by = %s AND status = 'running'",
                        (job_id, self.worker_id),
                    )
                    if cur.rowcount != 1:
                        lost.set()
                        return
        except psycopg.Error:
            logger.exception("heartbeat of job %s stopped", job_id)

    def _finish(self, job_id: str, report: ConsultReport) -> None:
        with self.queue.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'done', case_id = %s, trace_id = %s, finished_at = now(),"
                " heartbeat_at = now() WHERE job_id = %s AND locked_by = %s",
                (report.case_id, report.trace_id, job_id, self.worker_id),
            )
        logger.info("job %s done: %s (%s)", job_id, report.case_id, report.status)

    def _fail(self, job_id: str, error: str) -> None:
        with self.queue.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'failed', error = %s, finished_at = now()"
                " WHERE job_id = %s AND locked_by = %s",
                (error[:2000], job_id, self.worker_id),
            )

    def run(self, stop: threading.Event | None = None, *, once: bool = False) -> int:
        """Process jobs until ``stop`` is set (or, with ``once``, until the queue is empty).

        Returns the number of jobs processed.
        """
        stop = stop or threading.Event()
        done = 0
        try:
            while not stop.is_set():
                job_id = self.run_one()
                if job_id is not None:
                    done += 1
                    continue
                if once:
                    break
                stop.wait(self.settings.poll_s)
        finally:
            self.close()
        return done


class WorkerPool:
    """Worker threads inside one process (``oncoboard serve --workers N``, ``worker --concurrency N``)."""

    def __init__(
        self,
        queue: JobQueue,
        service: ConsultService,
        n: int,
        settings: WorkerSettings | None = None,
    ) -> None:
        self.stop_event = threading.Event()
        self.workers = [
            Worker(queue, service, settings or WorkerSettings(), worker_id=new_worker_id(f"t{i}"))
            for i in range(n)
        ]
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self._lock = threading.Lock()

    def start(self, *, once: bool = False) -> None:
        """Start one thread per worker."""
        for worker in self.workers:
            thread = threading.Thread(
                target=self._loop, args=(worker, once), daemon=True, name=f"worker-{worker.worker_id}"
            )
            thread.start()
            self._threads.append(thread)

    def _loop(self, worker: Worker, once: bool) -> None:
        n = worker.run(self.stop_event, once=once)
        with self._lock:
            self.processed += n

    def join(self, timeout: float | None = None) -> None:
        """Wait for the threads to end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the workers to stop after their current job and wait for them."""
        self.stop_event.set()
        self.join(timeout)


def open_service(*, no_llm: bool = False, rules_only: bool = False) -> ConsultService:
    """The process's ConsultService; ``rules_only`` leaves out the literature retriever and graph verifier."""
    from app.wiring import build_service, open_database, open_keyring, open_llm

    if not rules_only:
        return build_service(no_llm=no_llm)
    from graphs.service import ConsultService

    return ConsultService(db=open_database(), keyring=open_keyring(), llm=open_llm(no_llm=no_llm))


def _main(argv: list[str] | None = None) -> int:
    """``python -m app.jobs``: a worker process (the same as ``oncoboard worker``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.jobs", description="Run a consultation worker.")
    parser.add_argument("--once", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--no-llm", action="store_true")
    parser.add_argument("--rules-only", action="store_true", help="no literature retriever or graph verifier")
    parser.add_argument("--heartbeat", type=float, default=WorkerSettings.heartbeat_s)
    parser.add_argument("--stale-after", type=float, default=WorkerSettings.stale_after_s)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    service = open_service(no_llm=args.no_llm, rules_only=args.rules_only)
    queue = JobQueue(service.db, service.keyring)
    pool = WorkerPool(
        queue,
        service,
        args.concurrency,
        WorkerSettings(heartbeat_s=args.heartbeat, stale_after_s=args.stale_after),
    )
    pool.start(once=args.once)
    try:
        pool.join()
    except KeyboardInterrupt:
        pool.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
