"""De-identification throughput on GraSCCo-sized German letters (prints numbers, asserts nothing)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from oncoboard.deid import deidentify

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "grascco_phi"


def main() -> None:
    """Median CPU time per 100 kB over five runs."""
    from evaluation.deid_eval import read_inception_json

    letters = [read_inception_json(p).text for p in sorted(SHARED.glob("*.json"))]
    if not letters:
        print(f"no letters at {SHARED}")
        return
    text = ("\n\n".join(letters) * 10)[:100_000]
    deidentify(letters[0])  # compile the patterns once
    times = []
    for _ in range(5):
        start = time.process_time()
        deidentify(text)
        times.append(time.process_time() - start)
    print(f"deid: 100 kB of clinical letters in median {statistics.median(times):.2f} s CPU (5 runs)")


if __name__ == "__main__":
    main()
