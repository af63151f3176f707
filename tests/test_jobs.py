"""The Postgres job queue: claiming, progress events, stale re-claims and exactly-once completion."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.jobs import _ADVISORY_NAMESPACE, JobQueue, Worker, WorkerSettings
from graphs.service import ConsultService
from oncoboard.crypto import Keyring
from oncoboard.domain import CaseInput, StructuredData
from oncoboard.llm import NoModel
from oncoboard.storage import Database

ROOT = Path(__file__).resolve().parents[1]
LVEF_CASE = (ROOT / "examples" / "breast_her2_lvef_en.txt").read_text()
LUNG_CASE = (ROOT / "examples" / "lung_egfr_en.txt").read_text()
LOW_CRCL = StructuredData(labs={"creatinine_clearance_ml_min": 25})
FAST = WorkerSettings(heartbeat_s=0.2, stale_after_s=1.0, poll_s=0.05)


@pytest.fixture(scope="module")
def key() -> bytes:
    """The data-at-rest key shared with worker subprocesses."""
    return secrets.token_bytes(32)


@pytest.fixture(scope="module")
def service(database: Database, key: bytes) -> ConsultService:
    """A rules-only consult service on the test database."""
    return ConsultService(db=database, keyring=Keyring(key), llm=NoModel())


@pytest.fixture(scope="module")
def queue(service: ConsultService) -> JobQueue:
    """The queue over the test database."""
    return JobQueue(service.db, service.keyring)


def _count(db: Database, sql: str, *params: object) -> int:
    with db.connect() as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(next(iter(row.values())))


def _stale(db: Database, job_id: str, *, trace_id: str | None, attempts: int = 1) -> None:
    """Make a job look like its worker died while running it."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE jobs SET status = 'running', locked_by = 'lost-worker', attempts = %s,"
            " heartbeat_at = now() - interval '1 hour', trace_id = %s, case_id = NULL, finished_at = NULL"
            " WHERE job_id = %s",
            (attempts, trace_id, job_id),
        )


def test_worker_runs_a_job_and_streams_its_progress(queue: JobQueue, service: ConsultService) -> None:
    job_id = queue.submit(CaseInput(text=LUNG_CASE, structured=LOW_CRCL), run={"language": "en"})
    assert queue.get(job_id).status == "queued"
    assert Worker(queue, service, FAST).run(once=True) >= 1
    job = queue.get(job_id)
    assert job.status == "done", job.error
    assert job.attempts == 1 and job.case_id and job.trace_id
    report = service.get_report(job.case_id)
    assert report.trace_id == job.trace_id
    assert report.case_id == job.case_id and report.oncology
    events = queue.events(job_id)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert "node_start" in kinds
    assert [e.seq for e in events] == list(range(len(events)))


def test_submit_refuses_unknown_run_settings(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="unknown run settings"):
        queue.submit(CaseInput(text="x"), run={"compliance_threshold": 0})


def test_claims_are_exclusive(queue: JobQueue, service: ConsultService) -> None:
    ids = {queue.submit(CaseInput(text=f"Routine check-up {i}, no complaints.")) for i in range(4)}
    workers = [Worker(queue, service, FAST) for _ in range(3)]
    claims = [w._claim() for w in workers]
    try:
        taken = [c.job_id for c in claims if c is not None]
        assert len(taken) == len(set(taken)) == 3
        assert set(taken) <= ids
    finally:
        for w in workers:
            w.close()
    # Released claims are stale-but-unlocked rows now: a worker with a short timeout drains them all.
    Worker(queue, service, FAST).run(once=True)
    time.sleep(FAST.stale_after_s + 0.2)
    Worker(queue, service, FAST).run(once=True)
    assert {queue.get(j).status for j in ids} == {"done"}


def test_a_living_owner_keeps_its_job(queue: JobQueue, service: ConsultService, database: Database) -> None:
    job_id = queue.submit(CaseInput(text="Routine check-up, no complaints."))
    _stale(database, job_id, trace_id=None)
    with database.connect(autocommit=True) as owner:
        owner.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_ADVISORY_NAMESPACE, job_id))
        worker = Worker(queue, service, FAST)
        try:
            # The heartbeat is an hour old, but the owner's connection is alive: not re-claimed.
            claim = worker._claim()
            assert claim is None or claim.job_id != job_id
            assert queue.get(job_id).locked_by == "lost-worker"
        finally:
            worker.close()
    assert Worker(queue, service, FAST).run(once=True) >= 1
    assert queue.get(job_id).status == "done"


def test_committed_run_is_completed_not_run_again(
    queue: JobQueue, service: ConsultService, database: Database
) -> None:
    job_id = queue.submit(CaseInput(text=LVEF_CASE))
    Worker(queue, service, FAST).run(once=True)
    first = queue.get(job_id)
    assert first.status == "done"
    # The worker died after the report was committed but before the job was marked done.
    _stale(database, job_id, trace_id=first.trace_id)
    cases_before = _count(database, "SELECT count(*) FROM cases")
    Worker(queue, service, FAST).run(once=True)
    job = queue.get(job_id)
    assert job.status == "done" and job.case_id == first.case_id
    assert job.attempts == 1
    assert _count(database, "SELECT count(*) FROM cases") == cases_before


def test_worker_lost_too_often_fails_the_job(
    queue: JobQueue, service: ConsultService, database: Database
) -> None:
    job_id = queue.submit(CaseInput(text="Routine check-up, no complaints."), max_attempts=2)
    _stale(database, job_id, trace_id="tr-never-committed", attempts=2)
    Worker(queue, service, FAST).run(once=True)
    job = queue.get(job_id)
    assert job.status == "failed"
    assert job.error and "lost 2 times" in job.error


def test_sigkilled_worker_job_is_reclaimed_and_completes_once(
    queue: JobQueue, service: ConsultService, database: Database, key: bytes, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "ONCOBOARD_DATABASE_URL": database.url,
        "ONCOBOARD_ENCRYPTION_KEY": base64.b64encode(key).decode(),
        "ONCOBOARD_DATA_DIR": str(tmp_path),
        "ONCOBOARD_LLM_BACKEND": "none",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "app.jobs",
        "--rules-only",
        "--no-llm",
        "--heartbeat",
        "0.2",
        "--stale-after",
        "2",
    ]
    job_id = queue.submit(CaseInput(text=LVEF_CASE))
    cases_before = _count(database, "SELECT count(*) FROM cases")
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            # Mid-case: the run has started (its trace id is on the job) and nothing is committed.
            if queue.events(job_id):
                break
            time.sleep(0.005)
        else:
            pytest.fail("the first worker never started the job")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed = queue.get(job_id)
    if killed.status == "done":
        pytest.skip("the case finished before the worker could be killed")
    assert killed.status == "running"

    # Another worker (this process, already warm) re-claims the job once its heartbeat is stale.
    worker = Worker(queue, service, WorkerSettings(heartbeat_s=0.2, stale_after_s=1.5, poll_s=0.1))
    deadline = time.monotonic() + 30
    while queue.get(job_id).status == "running" and time.monotonic() < deadline:
        worker.run_one()
        time.sleep(0.1)
    worker.close()
    job = queue.get(job_id)
    assert job.status == "done", job.error
    assert job.attempts == 2
    assert {e.attempt for e in queue.events(job_id)} == {1, 2}
    assert _count(database, "SELECT count(*) FROM cases") == cases_before + 1
    assert _count(database, "SELECT count(*) FROM reports WHERE case_id = %s", job.case_id) == 1
