"""Batch consultation: one JSON case a line in, one report a line out, in the same order.

A broken line becomes a ``rejected`` report for that line; the batch goes on. Output lines are
appended and flushed in input order, so ``--resume`` after an interruption skips exactly the
lines already written (a torn last line is dropped and redone).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.caseio import CaseFormatError, case_from_obj
from oncoboard.config import RunContext, get_settings
from oncoboard.domain import ConsultReport, rejected_report

logger = logging.getLogger(__name__)


def _completed_lines(out: Path) -> int:
    """Number of complete report lines in ``out``; a torn trailing line is cut off."""
    if not out.exists():
        return 0
    data = out.read_bytes()
    if not data:
        return 0
    keep = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    if len(keep) != len(data):
        out.write_bytes(keep)
    return keep.count(b"\n")


def run_batch(
    batch: Path,
    out: Path,
    *,
    workers: int = 1,
    resume: bool = False,
    lang: str = "auto",
    no_llm: bool = False,
) -> dict[str, int]:
    """Consult every line of ``batch`` into ``out``; returns counts by status."""
    from app.wiring import build_service

    if not batch.is_file():
        raise OSError(f"no such file: {batch}")
    lines = batch.read_bytes().splitlines()
    done = _completed_lines(out) if resume else 0
    if done > len(lines):
        raise ValueError(f"{out} has more reports ({done}) than {batch} has cases ({len(lines)})")
    service = build_service(no_llm=no_llm)
    run = RunContext.from_settings(get_settings(), use_llm=not no_llm, language=lang)
    counts: dict[str, int] = {"skipped": done}

    def one(number: int, raw: bytes) -> ConsultReport:
        try:
            text = raw.decode("utf-8")
            case = case_from_obj(json.loads(text), lang=lang)
        except UnicodeDecodeError:
            return rejected_report(f"line-{number}", f"line {number}: not valid UTF-8")
        except json.JSONDecodeError as exc:
            return rejected_report(f"line-{number}", f"line {number}: invalid JSON ({exc.msg})")
        except CaseFormatError as exc:
            return rejected_report(f"line-{number}", f"line {number}: {exc}")
        return service.consult(case, run)

    todo = list(enumerate(lines, start=1))[done:]
    mode = "a" if resume else "w"
    with (
        out.open(mode, encoding="utf-8") as sink,
        ThreadPoolExecutor(max_workers=workers) as pool,
        Progress(
            TextColumn("consulting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("cases", total=len(lines), completed=done)
        futures: list[Future[ConsultReport]] = [pool.submit(one, n, raw) for n, raw in todo]
        for future in futures:  # in input order, whatever order they finish in
            report = future.result()
            sink.write(report.model_dump_json() + "\n")
            sink.flush()
            counts[report.status] = counts.get(report.status, 0) + 1
            progress.advance(task)
    return counts
