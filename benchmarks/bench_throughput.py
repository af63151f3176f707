"""Queued-consultation throughput: cases per minute with 1, 2 and 4 worker processes on loopback.

An API server (uvicorn, in this process) takes async submissions over HTTP; ``python -m app.jobs``
worker processes drain the Postgres queue. Each worker first runs one warm-up case (imports,
tables, indexes), then the clock runs from the first submission until every case is done.

    python benchmarks/bench_throughput.py [--cases 24] [--workers 1 2 4] [--full]

``--full`` adds the literature retriever and the graph verifier (rules only otherwise). Uses
ONCOBOARD_DATABASE_URL when set, else an embedded Postgres in a temporary folder. Prints numbers;
asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import uvicorn
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]


def _cases() -> list[str]:
    texts = []
    for path in sorted((ROOT / "examples").iterdir()):
        if path.suffix == ".txt":
            texts.append(path.read_text())
        elif path.suffix == ".json":
            texts.append(json.loads(path.read_text())["text"])
    return texts


def _database(tmp: Path) -> tuple[str, str]:
    """A fresh database for the run: (server URL, database name)."""
    from oncoboard.storage import embedded_url

    root = os.environ.get("ONCOBOARD_DATABASE_URL") or embedded_url(tmp)
    name = f"oncoboard_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(root, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return root, name


def _with_database(root: str, name: str) -> str:
    params = conninfo_to_dict(root)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


def _wait_all(client: httpx.Client, headers: dict[str, str], job_ids: list[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    failed = 0
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            status = client.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"]
            if status in {"done", "failed"}:
                pending.discard(job_id)
                failed += status == "failed"
        time.sleep(0.2)
    if pending:
        raise TimeoutError(f"{len(pending)} jobs still pending after {timeout:.0f} s")
    return failed


def main() -> None:
    """Run the benchmark and print cases per minute for each worker count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="oncoboard-bench-"))
    key = secrets.token_bytes(32)
    root, name = _database(tmp)
    url = _with_database(root, name)
    env = {
        **os.environ,
        "ONCOBOARD_DATABASE_URL": url,
        "ONCOBOARD_ENCRYPTION_KEY": base64.b64encode(key).decode(),
        "ONCOBOARD_DATA_DIR": str(tmp),
        "OMP_NUM_THREADS": "1",
    }
    os.environ.update({k: env[k] for k in ("ONCOBOARD_DATABASE_URL", "ONCOBOARD_ENCRYPTION_KEY")})

    from app.api import create_app
    from app.jobs import open_service
    from oncoboard.auth import add_user

    service = open_service(no_llm=True, rules_only=not args.full)
    _, token = add_user(service.db, "bench", "resident")
    headers = {"Authorization": f"Bearer {token}"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(lambda: service), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    texts = _cases()
    worker_cmd = [sys.executable, "-m", "app.jobs", "--no-llm"] + ([] if args.full else ["--rules-only"])
    results: list[tuple[int, float, float, int]] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

        def submit(n: int) -> list[str]:
            return [
                client.post(
                    "/v1/consultations",
                    json={"text": texts[i % len(texts)], "mode": "async"},
                    headers=headers,
                ).json()["job_id"]
                for i in range(n)
            ]

        for n_workers in args.workers:
            procs = [
                subprocess.Popen(worker_cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
                for _ in range(n_workers)
            ]
            try:
                _wait_all(client, headers, submit(n_workers), timeout=300)  # warm-up
                start = time.perf_counter()
                failed = _wait_all(client, headers, submit(args.cases), timeout=1800)
                elapsed = time.perf_counter() - start
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(30)
            results.append((n_workers, elapsed, args.cases / elapsed * 60, failed))

    server.should_exit = True
    with psycopg.connect(root, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    backends = "rules, retrieval and graph verifier" if args.full else "rules only"
    print(f"throughput over loopback: {args.cases} cases from examples/ ({backends}, no language model)")
    print(f"{'workers':>8} {'seconds':>9} {'cases/min':>10} {'failed':>7}")
    for n_workers, elapsed, per_min, failed in results:
        print(f"{n_workers:>8} {elapsed:>9.1f} {per_min:>10.1f} {failed:>7}")


if __name__ == "__main__":
    main()
