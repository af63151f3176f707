"""Extraction + staging + ICD-10 coding latency per case over the dev case set (median, p95).

Single thread, no database and no graph: the deterministic specialists only. Run with
``.venv/bin/python benchmarks/bench_pipeline.py [--rounds N]``. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_case(text: str, lang: str) -> int:
    """Extract, stage every primary tumour and code one case; returns the number of codes."""
    from tools.extraction import extract_findings
    from tools.icd10 import code_case
    from tools.tnm import stage_tumor

    findings = extract_findings(text, "de" if lang == "de" else "en")
    for tumor in findings.tumors:
        if tumor.primary:
            stage_tumor(tumor, findings)
    return len(code_case(findings))


def bench(rounds: int) -> tuple[list[float], float, int]:
    """Per-case latencies over ``rounds`` passes of the case set, the warm-up time and the case count."""
    from evaluation.cases_eval import load_cases

    cases = load_cases()
    start = time.perf_counter()
    run_case(cases[0].text, cases[0].lang)  # first call loads the lexicons and tables
    warmup = time.perf_counter() - start
    latencies: list[float] = []
    for _ in range(rounds):
        for case in cases:
            t0 = time.perf_counter()
            run_case(case.text, case.lang)
            latencies.append(time.perf_counter() - t0)
    return latencies, warmup, len(cases)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the case set")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    latencies, warmup, count = bench(args.rounds)
    print(f"first case (loads lexicons and tables): {warmup * 1000:.0f} ms")
    print(
        f"extraction + staging + coding over {count} cases x {args.rounds} rounds (single thread): "
        f"median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p95 {_percentile(latencies, 0.95) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
