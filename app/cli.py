"""The ``oncoboard`` command line. Heavy imports happen inside commands so ``--help`` stays fast."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="oncoboard",
    help="Tumour-board assistant: consult oncology cases (EN/DE), replay audited traces, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_BAD_INPUT = 2
EXIT_EMERGENCY_STOP = 3

LangOption = Annotated[str, typer.Option("--lang", help="Language of the case text: auto, en or de.")]
NoLLM = Annotated[bool, typer.Option("--no-llm", help="Run without the language model (rules and retrieval only).")]


def _fail(reason: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    typer.echo(f"error: {reason}", err=True)
    return typer.Exit(code)


def _setup_logging(verbose: bool) -> None:
    import os
    import warnings

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # Models and data load only from installed packages; library progress bars and the embedded
    # server's runtime-dir notice are noise on a clinician's terminal.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if not verbose:
        warnings.filterwarnings("ignore", module="platformdirs")
        warnings.filterwarnings("ignore", category=DeprecationWarning)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    _setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as pkg_version

    typer.echo(pkg_version("oncoboard"))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the ConsultReport."""
    from oncoboard.domain import ConsultReport

    typer.echo(json.dumps(ConsultReport.model_json_schema(), indent=2))


@app.command()
def prepare(
    as_json: Annotated[bool, typer.Option("--json", help="Print what the stores hold as JSON.")] = False,
) -> None:
    """Prepare the embedded stores (database schema, evidence store, knowledge graph); idempotent."""
    from app.wiring import prepare as prepare_stores

    summary = prepare_stores()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    lit, kg = summary["literature"], summary["kg"]
    typer.echo(
        f"stores ready: {lit.get('documents', '?')} evidence documents, {lit.get('chunks', '?')} passages; "
        f"knowledge graph with {kg.get('nodes_total', kg.get('total_nodes', '?'))} nodes"
    )


@app.command()
def consult(
    file: Annotated[str | None, typer.Argument(help="Case file (plain text or JSON case), or - for stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ConsultReport JSON.")] = False,
    lang: LangOption = "auto",
    no_llm: NoLLM = False,
    batch: Annotated[Path | None, typer.Option("--batch", help="JSONL file, one case per line.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="JSONL output for --batch.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="Parallel cases in --batch.")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Skip cases already written to --out.")] = False,
) -> None:
    """Consult one case (FILE or -) or a batch (--batch IN.jsonl --out OUT.jsonl)."""
    if lang not in {"auto", "en", "de"}:
        raise _fail(f"--lang must be auto, en or de, not {lang!r}")
    if batch is not None:
        if out is None:
            raise _fail("--batch needs --out OUT.jsonl")
        from app.batch import run_batch

        try:
            summary = run_batch(batch, out, workers=workers, resume=resume, lang=lang, no_llm=no_llm)
        except (OSError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        typer.echo(json.dumps(summary), err=True)
        return
    if file is None:
        raise _fail("give a case FILE, - for stdin, or --batch IN.jsonl --out OUT.jsonl")
    from app.caseio import CaseFormatError, parse_case_bytes, read_case_source

    try:
        raw = read_case_source(file)
        case = parse_case_bytes(raw, lang=lang)
    except (OSError, CaseFormatError) as exc:
        raise _fail(str(exc)) from exc

    from app.render import render_report
    from app.wiring import build_service
    from oncoboard.config import RunContext, get_settings

    service = build_service(no_llm=no_llm)
    report = service.consult(case, RunContext.from_settings(get_settings(), use_llm=not no_llm, language=lang))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        render_report(report)
    if report.status == "rejected":
        raise _fail(report.error or "case rejected")
    if report.status == "locked":
        typer.echo("emergency stop: report locked until a chief physician approves", err=True)
        raise typer.Exit(EXIT_EMERGENCY_STOP)


@app.command()
def replay(
    trace_id: Annotated[str, typer.Argument(help="Trace id from a report.")],
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain; exit 1 on tampering.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the events as JSON lines.")] = False,
    rerun: Annotated[
        str | None,
        typer.Option(
            "--rerun",
            help="exact: re-run on the recorded tool and model outputs (exit 1 if the report differs); "
            "live: re-run on today's components and show what changed.",
        ),
    ] = None,
) -> None:
    """Show a recorded consultation step by step, verify it, or re-run it for audit."""
    if rerun is not None:
        _rerun(trace_id, rerun)
        return
    from app.wiring import open_database, open_keyring
    from oncoboard.audit import TraceNotFound, load_trace, verify_trace
    from oncoboard.crypto import CryptoError

    db, keyring = open_database(), open_keyring()
    try:
        if verify:
            result = verify_trace(db, keyring, trace_id)
            if result.ok:
                typer.echo(f"trace {trace_id}: {result.n_events} events, hash chain intact")
                return
            for problem in result.problems:
                typer.echo(f"tampered: {problem}", err=True)
            raise typer.Exit(1)
        events = load_trace(db, keyring, trace_id)
    except TraceNotFound as exc:
        raise _fail(f"no trace {exc}") from exc
    except CryptoError as exc:
        typer.echo(f"tampered: {exc}", err=True)
        raise typer.Exit(1) from exc
    from app.render import render_trace

    if as_json:
        for ev in events:
            typer.echo(json.dumps(ev.body() | {"hash": ev.hash}, ensure_ascii=False))
    else:
        render_trace(events)


def _rerun(trace_id: str, mode: str) -> None:
    if mode not in {"exact", "live"}:
        raise _fail("--rerun must be exact or live")
    from app.wiring import build_service
    from graphs.replay import rerun_trace
    from graphs.service import ReportNotFound

    try:
        result = rerun_trace(build_service(no_llm=mode == "exact"), trace_id, mode)  # type: ignore[arg-type]
    except ReportNotFound as exc:
        raise _fail(f"no recorded report for trace {exc}") from exc
    if result.identical:
        typer.echo(f"{mode} re-run of {trace_id}: the report is reproduced")
        return
    for line in result.differences:
        typer.echo(f"differs: {line}")
    if mode == "exact":
        raise typer.Exit(1)


@app.command()
def deid(
    file: Annotated[str, typer.Argument(help="Clinical text file, or - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print text and spans as JSON.")] = False,
    lang: LangOption = "auto",
) -> None:
    """De-identify one clinical text (EN/DE)."""
    from app.caseio import CaseFormatError, decode_text, read_case_source
    from oncoboard.deid import deidentify

    try:
        text = decode_text(read_case_source(file))
    except (OSError, CaseFormatError) as exc:
        raise _fail(str(exc)) from exc
    result = deidentify(text, lang=None if lang == "auto" else lang)
    if as_json:
        payload: dict[str, Any] = {
            "text": result.text,
            "spans": [
                {
                    "start": s.start,
                    "end": s.end,
                    "kind": s.kind,
                    "surface": s.surface,
                    "replacement": s.replacement,
                }
                for s in result.spans
            ],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        typer.echo(result.text)


@app.command()
def ner(
    file: Annotated[str, typer.Argument(help="PubTator file (title/abstract records), or - for stdin.")],
    method: Annotated[str, typer.Option("--method", help="best, lexicon, model or ensemble.")] = "best",
) -> None:
    """Disease-mention recognition: print the records back with one annotation line per mention."""
    from tools.ner import METHODS
    from tools.ner.recognise import run_ner

    if method != "best" and method not in METHODS:
        raise _fail(f"--method must be best or one of {', '.join(sorted(METHODS))}")
    path: Any
    if file == "-":
        path = sys.stdin.read().splitlines()
    else:
        if not Path(file).is_file():
            raise _fail(f"no such file: {file}")
        path = file
    try:
        run_ner(path, sys.stdout, method=method)
    except ValueError as exc:
        raise _fail(f"not a PubTator file: {exc}") from exc


def main() -> None:
    """Console-script entry point."""
    from app.subcommands import register

    register(app)
    app()


if __name__ == "__main__":
    main()
