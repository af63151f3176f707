"""Consult latency over the shipped examples (median, p95) and CLI start-up time.

Run with ``make bench``. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def bench_cli_startup(runs: int = 5) -> list[float]:
    """Wall time of ``oncoboard --help`` in a fresh process."""
    exe = Path(sys.executable).with_name("oncoboard")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(exe), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def bench_consult(rounds: int = 3) -> tuple[list[float], float]:
    """Per-case latency of the full graph on the embedded defaults (no language model)."""
    from app.caseio import parse_case_bytes
    from app.wiring import build_service
    from oncoboard.config import RunContext

    start = time.perf_counter()
    service = build_service(no_llm=True)
    warmup = time.perf_counter() - start
    cases = [
        parse_case_bytes(p.read_bytes()) for p in sorted((ROOT / "examples").iterdir()) if p.suffix in {".txt", ".json"}
    ]
    service.consult(cases[0], RunContext(use_llm=False))  # first call loads models and indexes
    latencies = []
    for _ in range(rounds):
        for case in cases:
            t0 = time.perf_counter()
            service.consult(case, RunContext(use_llm=False))
            latencies.append(time.perf_counter() - t0)
    return latencies, warmup


def main() -> None:
    """Print the figures."""
    startup = bench_cli_startup()
    median, worst = statistics.median(startup), max(startup)
    print(f"cli --help start-up: median {median:.2f} s, max {worst:.2f} s ({len(startup)} runs)")
    latencies, warmup = bench_consult()
    print(f"service start (embedded Postgres, stores): {warmup:.2f} s")
    print(
        f"consult latency over {len(latencies)} runs of the shipped examples (no LLM): "
        f"median {statistics.median(latencies) * 1000:.0f} ms, p95 {_percentile(latencies, 0.95) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
