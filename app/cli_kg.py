"""``oncoboard kg``: build the knowledge graph, show its counts, query it, train its embeddings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help="Knowledge graph: build, stats, query, embed.")


def _open_store() -> Any:
    from oncoboard.config import get_settings
    from tools.kg.store import GraphStoreBusy, open_graph_store

    try:
        return open_graph_store(get_settings())
    except GraphStoreBusy as exc:
        _fail(f"{exc}; stop the server or workers that hold it, or wait for them, and run again")


def _fail(reason: str) -> None:
    typer.echo(" ".join(reason.split()), err=True)  # one line, as the exit-code contract asks
    raise typer.Exit(code=2)


@app.command()
def build(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Clear the graph first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Load the ICD-10 neoplasm chapter and the knowledge/kg tables into the graph store."""
    from tools.kg.build import build_graph

    store = _open_store()
    try:
        if rebuild:
            store.clear()
        started = time.perf_counter()
        stats = build_graph(store)
        stats["seconds"] = round(time.perf_counter() - started, 2)
    finally:
        store.close()
    _print_stats(stats, as_json)


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False) -> None:
    """Counts of nodes by label and edges by type (an empty store is built first, as on first use)."""
    from tools.kg.build import ensure_built

    store = _open_store()
    try:
        ensure_built(store)
        result = store.stats()
    finally:
        store.close()
    _print_stats(result, as_json)


@app.command()
def query(
    cypher: Annotated[str, typer.Argument(help="One Cypher statement.")],
    params: Annotated[str, typer.Option("--params", help="Parameters as a JSON object.")] = "{}",
) -> None:
    """Run one Cypher statement and print its rows as JSON lines."""
    from tools.kg.store import GraphQueryError

    try:
        parameters = json.loads(params)
    except json.JSONDecodeError as exc:
        _fail(f"--params is not JSON: {exc}")
    if not isinstance(parameters, dict):
        _fail("--params must be a JSON object")
    store = _open_store()
    try:
        rows = store.query(cypher, parameters)
    except GraphQueryError as exc:
        _fail(f"query failed: {exc}")
    finally:
        store.close()
    for row in rows:
        typer.echo(json.dumps(row, ensure_ascii=False, default=str))


@app.command()
def embed(
    dim: Annotated[int, typer.Option(help="Embedding dimension.")] = 64,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 200,
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Also report held-out MRR/Hits@10.")
    ] = True,
) -> None:
    """Train TransE embeddings on the graph and save them into the data directory."""
    from oncoboard.config import get_settings
    from tools.kg.build import ensure_built
    from tools.kg.transe import (
        evaluate_link_prediction,
        graph_triples,
        split_triples,
        train_and_save,
        train_transe,
    )

    settings = get_settings()
    store = _open_store()
    try:
        ensure_built(store)
        report: dict[str, Any] = {}
        if evaluate:
            triples = graph_triples(store)
            train, test = split_triples(triples, 0.1, seed=0)
            held_out = train_transe(train, dim=dim, epochs=epochs)
            report.update(evaluate_link_prediction(held_out, test, triples))
        started = time.perf_counter()
        _, path = train_and_save(store, Path(settings.data_dir), dim=dim, epochs=epochs)
        report["train_seconds"] = round(time.perf_counter() - started, 2)
        report["path"] = str(path)
    finally:
        store.close()
    typer.echo(json.dumps(report, indent=2))


@app.command()
def bench(repeats: Annotated[int, typer.Option(help="Rounds over the benchmark nodes.")] = 20) -> None:
    """Latency of 1-hop and 2-hop queries (p50/p95 in ms)."""
    from tools.kg.build import ensure_built
    from tools.kg.queries import benchmark

    store = _open_store()
    try:
        ensure_built(store)
        result = benchmark(store, repeats=repeats)
    finally:
        store.close()
    typer.echo(json.dumps({k: round(v, 3) for k, v in result.items()}, indent=2))


def _print_stats(stats: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"knowledge graph ({stats.get('backend', '?')})")
    table.add_column("kind")
    table.add_column("type")
    table.add_column("count", justify="right")
    for label, count in stats["nodes"].items():
        table.add_row("node", label, str(count))
    for rel, count in stats["edges"].items():
        table.add_row("edge", rel, str(count))
    Console().print(table)
