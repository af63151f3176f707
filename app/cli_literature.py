"""``oncoboard literature``: ingest evidence, refresh registered sources, show counts, search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Literature evidence store: ingest, update, stats, search.")
_out = Console()
_err = Console(stderr=True)


def _open_store() -> Any:
    from oncoboard.config import get_settings
    from oncoboard.storage import Database
    from tools.literature.store import LiteratureStore

    settings = get_settings()
    db = Database.from_settings(settings.database_url, settings.data_dir)
    db.migrate()
    return LiteratureStore(db)


def _fail(reason: str) -> typer.Exit:
    _err.print(reason, markup=False)
    return typer.Exit(code=2)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    counts = ", ".join(f"{k} {summary[k]}" for k in ("read", "inserted", "updated", "unchanged", "chunks"))
    _out.print(f"{summary['source']} ({summary['kind']}): {counts}", markup=False)
    for dup in summary["duplicates"]:
        _out.print(f"  duplicate: {dup}", markup=False)
    for err in summary["errors"]:
        _err.print(f"  malformed: {err}", markup=False)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="A JSONL file of evidence cards or a PubMed/MEDLINE XML file.")],
    no_register: Annotated[
        bool, typer.Option("--no-register", help="Do not remember the file for `literature update`.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ingest a file; malformed records are reported with their line or article number, the rest is loaded."""
    from tools.literature.ingest import IngestError
    from tools.literature.ingest import ingest as run_ingest

    store = _open_store()
    try:
        summary = run_ingest(store, path, register=not no_register)
    except IngestError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    _print_summary(summary.as_dict(), as_json)


@app.command()
def update(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON.")] = False,
) -> None:
    """Re-ingest the shipped cards and every registered source that changed since it was last read."""
    from tools.literature.ingest import update as run_update

    store = _open_store()
    try:
        summaries = [s.as_dict() for s in run_update(store)]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(summaries, ensure_ascii=False))
        return
    if not summaries:
        _out.print("all sources are up to date")
    for summary in summaries:
        _print_summary(summary, False)


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False) -> None:
    """Counts of documents and chunks by year and evidence level (loads the shipped cards on first use)."""
    store = _open_store()
    try:
        store.ensure_seeded()
        result = store.stats()
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    _out.print(f"documents {result['documents']}, chunks {result['chunks']}")
    for key in ("by_level", "by_tumour_type", "by_year"):
        table = Table(title=key.replace("_", " "))
        table.add_column(key.split("_", 1)[1])
        table.add_column("documents", justify="right")
        for name, count in result[key].items():
            table.add_row(str(name), str(count))
        _out.print(table)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Query text, English or German.")],
    site: Annotated[str | None, typer.Option("--site", help="Tumour site filter, e.g. lung.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the text: en or de.")] = "en",
    k: Annotated[int, typer.Option("--k", min=1, max=20, help="Number of hits.")] = 5,
    recency_years: Annotated[int, typer.Option("--recency-years", min=0, help="Recency window; 0 disables.")] = 3,
) -> None:
    """Search the evidence and print the hits with their scores as JSON lines."""
    from pydantic import ValidationError

    from tools.literature.query import LiteratureQuery
    from tools.literature.retrieve import search_literature

    try:
        query = LiteratureQuery(text=text, site=site, language=lang)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _fail(f"bad query: {exc.errors()[0]['msg']}") from exc
    store = _open_store()
    try:
        store.ensure_seeded()
        hits = search_literature(store, query, k, recency_years=recency_years)
    finally:
        store.close()
    for hit in hits:
        typer.echo(json.dumps(hit.model_dump(mode="json"), ensure_ascii=False))


@app.command()
def vectors() -> None:
    """Re-embed the shipped cards into knowledge/literature/cards.vectors.npz (after editing cards.jsonl)."""
    from tools.literature.ingest import build_shipped_vectors

    _out.print(f"{build_shipped_vectors()} passages embedded")
