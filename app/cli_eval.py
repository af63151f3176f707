"""``oncoboard eval SUITE``: the project's evaluation suites over the dev corpora.

Each suite prints its metrics as JSON (``--out`` also writes them to a file). Suites that need
the shared corpora exit 2 with a clear message when the data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

DATA = Path("../shared/data")

eval_app = typer.Typer(no_args_is_help=True, help="Evaluation suites (dev corpora; numbers as JSON).")

OutOption = Annotated[Path | None, typer.Option("--out", help="Also write the metrics JSON to this file.")]


def _emit(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=2, default=str, ensure_ascii=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


def _need(path: Path) -> Path:
    if not path.exists():
        typer.echo(f"error: evaluation data not found at {path} (pass --data)", err=True)
        raise typer.Exit(2)
    return path


@eval_app.command("ner")
def ner(
    data: Annotated[Path, typer.Option("--data", help="PubTator file with gold Disease mentions.")] = DATA
    / "ncbi_disease/dev.pubtator",
    method: Annotated[str, typer.Option("--method", help="lexicon, model, ensemble, best or all.")] = "all",
    out: OutOption = None,
) -> None:
    """Disease NER: exact-span precision, recall and F1 per method."""
    from evaluation.ner_eval import evaluate_ner
    from tools.ner import METHODS

    path = _need(data)
    methods = sorted(METHODS) if method == "all" else [method]
    _emit({m: evaluate_ner(path, m) for m in methods}, out)


@eval_app.command("tnm")
def tnm(
    data: Annotated[Path, typer.Option("--data", help="TCGA reports JSONL.")] = DATA / "tcga_reports/dev.jsonl",
    out: OutOption = None,
) -> None:
    """TNM: T/N/M accuracy against the registry labels of the TCGA reports."""
    from evaluation.pipeline_eval import evaluate_tnm_pipeline
    from evaluation.tnm_eval import evaluate_tcga

    path = _need(data)
    _emit({"stated_tnm_parser": evaluate_tcga(path), "extractor_and_stager": evaluate_tnm_pipeline(path)}, out)


@eval_app.command("icd10")
def icd10(
    data: Annotated[Path, typer.Option("--data", help="CodiEsp JSONL.")] = DATA / "codiesp_en/train.jsonl",
    out: OutOption = None,
) -> None:
    """ICD-10 coding against CodiEsp gold (category and WHO-prefix-of-CM levels)."""
    from evaluation.icd10_eval import evaluate_codiesp

    _emit(evaluate_codiesp(_need(data)), out)


@eval_app.command("deid")
def deid(
    data: Annotated[Path, typer.Option("--data", help="Folder of GraSCCo INCEpTION JSON letters.")] = DATA
    / "grascco_phi",
    out: OutOption = None,
) -> None:
    """De-identification recall and precision per PHI kind."""
    from evaluation.deid_eval import evaluate_grascco

    _emit(evaluate_grascco(_need(data)), out)


@eval_app.command("retrieval")
def retrieval(out: OutOption = None) -> None:
    """Retrieval: recall@5/@20, nDCG@10, MRR for BM25, dense, hybrid, hybrid+recency (EN and DE)."""
    from app.wiring import open_database
    from evaluation.retrieval_eval import evaluate_retrieval

    _emit(evaluate_retrieval(open_database()), out)


@eval_app.command("kg")
def kg(
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="TransE epochs.")] = 200,
    out: OutOption = None,
) -> None:
    """Knowledge graph: TransE link prediction, mention linking, planted conflicts."""
    from evaluation.kg_eval import evaluate_kg

    _emit(evaluate_kg(epochs=epochs), out)


@eval_app.command("consult")
def consult(
    examples: Annotated[Path, typer.Option("--examples", help="Folder of cases.")] = Path("examples"),
    out: OutOption = None,
) -> None:
    """The whole graph over a folder of cases: status, compliance and contract checks per case."""
    from evaluation.pipeline_eval import evaluate_consultations

    _emit(evaluate_consultations(_need(examples)), out)


@eval_app.command("cases")
def cases(
    data: Annotated[Path, typer.Option("--data", help="Folder of gold-labelled case YAML files.")] = Path(
        "knowledge/cases"
    ),
    out: OutOption = None,
) -> None:
    """Dev case set through the graph: field accuracy, ICD-10, treatment concordance, safety, compliance."""
    from evaluation.cases_eval import evaluate_cases

    _emit(evaluate_cases(_need(data)), out)


@eval_app.command("rag")
def rag(
    data: Annotated[Path | None, typer.Option("--data", help="Folder of dev case YAML files.")] = None,
    out: OutOption = None,
) -> None:
    """Consult the dev cases with and without retrieval: recency, level-1 share, feature match of citations."""
    from evaluation.rag_eval import evaluate_rag

    _emit(evaluate_rag(_need(data)) if data else evaluate_rag(), out)


def _named_paths(values: list[str]) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            typer.echo(f"error: --adapter takes NAME=PATH, got {value!r}", err=True)
            raise typer.Exit(2)
        named[name] = _need(Path(path))
    return named


@eval_app.command("model")
def model(
    heldout: Annotated[
        Path, typer.Option("--heldout", help="Held-out instruction JSONL (from `oncoboard instructions build`).")
    ],
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", help="NAME=PATH of a LoRA adapter to compare with the base model (repeatable)."),
    ] = None,
    german_only: Annotated[
        list[str] | None,
        typer.Option("--german-only", help="Adapter NAME scored on German items only (repeatable)."),
    ] = None,
    base: Annotated[
        Path | None, typer.Option("--model", help="Base model directory; the converted default when unset.")
    ] = None,
    per_group: Annotated[int, typer.Option("--per-group", min=1, help="Items per task and language.")] = 10,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="New tokens per reply.")] = 48,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per forward pass.")] = 8,
    out: OutOption = None,
) -> None:
    """Base model versus LoRA adapters on held-out instruction items: exact match and F1 per task/language.

    Adapters named ``with_de`` and ``without_de`` also yield the German cross-lingual effect.
    """
    from evaluation.model_eval import compare_adapters

    adapters = _named_paths(adapter or [])
    unknown = sorted(set(german_only or []) - set(adapters))
    if unknown:
        typer.echo(f"error: --german-only names no given adapter: {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
    if base is None:
        from oncoboard.config import get_settings
        from oncoboard.llm.convert import ensure_default_model

        base = ensure_default_model(get_settings().data_dir)
    result = compare_adapters(
        _need(base),
        _need(heldout),
        adapters,
        per_group=per_group,
        german_only=german_only or [],
        max_tokens=max_tokens,
        batch_size=batch_size,
    )
    _emit(result, out)


@eval_app.command("explain")
def explain(
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", help="NAME=PATH of a LoRA adapter to compare with the base model (repeatable)."),
    ] = None,
    base: Annotated[
        Path | None, typer.Option("--model", help="Base model directory; the converted default when unset.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Folder of dev case YAML files.")] = None,
    limit: Annotated[int, typer.Option("--cases", min=1, help="Dev cases with a gold treatment to use.")] = 15,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch CPU threads.")] = 1,
    out: OutOption = None,
) -> None:
    """Scheme explanations by the model (and adapters): share the rule checks accept, why others fail, latency."""
    from evaluation.explanation_eval import evaluate_on_dev_cases
    from oncoboard.llm.transformers_backend import TransformersModel

    adapters = _named_paths(adapter or [])
    if base is None:
        from oncoboard.config import get_settings
        from oncoboard.llm.convert import ensure_default_model

        base = ensure_default_model(get_settings().data_dir)
    models = {"base": TransformersModel(_need(base), threads=threads)}
    models |= {name: TransformersModel(base, path, threads=threads) for name, path in adapters.items()}
    _emit(evaluate_on_dev_cases(models, _need(data) if data else None, limit=limit), out)


def register(app: typer.Typer) -> None:
    """Mount ``eval`` on the main CLI."""
    app.add_typer(eval_app, name="eval")
