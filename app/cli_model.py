"""Model commands: ``serve-model``, ``finetune``, ``instructions build`` and ``model convert``.

Everything heavy (torch, transformers, peft, uvicorn) is imported inside the command functions so
``oncoboard --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

EXIT_BAD_INPUT = 2

instructions_app = typer.Typer(no_args_is_help=True, help="Instruction sets for fine-tuning.")
model_app = typer.Typer(no_args_is_help=True, help="The local language model: convert the packaged default.")


def _fail(reason: str) -> typer.Exit:
    typer.echo(f"error: {' '.join(reason.split())}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _default_data_dir() -> Path:
    from oncoboard.config import get_settings

    return get_settings().data_dir


def build_model_app(model: Path | None, adapter: Path | None, name: str) -> FastAPI:
    """The OpenAI-compatible app over a local transformers model (the converted default when ``model`` is None)."""
    from oncoboard.llm.convert import ensure_default_model
    from oncoboard.llm.server import create_model_server
    from oncoboard.llm.transformers_backend import TransformersModel

    model_dir = model if model is not None else ensure_default_model(_default_data_dir())
    llm = TransformersModel(model_dir, adapter, threads=2)
    return create_model_server(llm, name)


def serve_model(
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8001,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model directory; the converted default model when unset.")
    ] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="PEFT LoRA adapter directory.")] = None,
    name: Annotated[str, typer.Option("--name", help="Model name served under /v1/models.")] = "oncoboard",
) -> None:
    """Serve a local model over an OpenAI-compatible API (/v1/chat/completions, /v1/models)."""
    import uvicorn

    from oncoboard.llm.base import LLMError

    try:
        app = build_model_app(model, adapter, name)
    except (LLMError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    uvicorn.run(app, host=host, port=port, log_level="info")


def finetune_command(
    base: Annotated[Path, typer.Option("--base", help="Causal LM directory (transformers format).")],
    data: Annotated[Path, typer.Option("--data", help="Instruction JSONL (objects with 'messages').")],
    out: Annotated[Path, typer.Option("--out", help="Adapter output directory (manifest.json beside it).")],
    epochs: Annotated[float, typer.Option("--epochs", min=0.01, help="Passes over the data (unless --steps).")] = 1.0,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Optimizer steps; overrides --epochs.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per step.")] = 4,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate.")] = 2e-4,
    rank: Annotated[int, typer.Option("--rank", min=1, help="LoRA rank r.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed for initialisation and batch order.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out.")] = False,
    eval_data: Annotated[
        Path | None, typer.Option("--eval-data", help="Held-out instruction JSONL for the evaluation loss.")
    ] = None,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Tokens per sequence.")] = 256,
    save_every: Annotated[int, typer.Option("--save-every", min=1, help="Steps between checkpoints.")] = 50,
    top_layers: Annotated[
        int | None, typer.Option("--top-layers", min=1, help="Adapt only the top N decoder layers.")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, max=2, help="torch threads (at most 2).")] = 2,
) -> None:
    """LoRA fine-tuning with a progress bar; writes the adapter and manifest.json to --out."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from oncoboard.llm.finetune import FinetuneError, LoraSettings, ProgressEvent, finetune

    try:
        settings = LoraSettings(
            rank=rank,
            learning_rate=lr,
            batch_size=batch_size,
            epochs=epochs,
            steps=steps,
            seed=seed,
            max_length=max_length,
            save_every=save_every,
            top_layers=top_layers,
            threads=threads,
        )
    except ValidationError as exc:
        raise _fail(f"invalid settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]finetune"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=None, status="loading")

        def on_progress(event: ProgressEvent) -> None:
            status = f"loss {event.loss:.4f}" if event.loss is not None else "starting"
            if event.eval_loss is not None:
                status += f" eval {event.eval_loss:.4f}"
            bar.update(task, total=event.total_steps, completed=event.step, status=status)

        try:
            result = finetune(
                base, data, out, settings, eval_data=eval_data, resume=resume, command=sys.argv, progress=on_progress
            )
        except (FinetuneError, OSError, ValueError) as exc:
            raise _fail(str(exc)) from exc
    summary = {
        "adapter": result.adapter_dir,
        "steps": result.total_steps,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        "eval_loss_base": result.eval_loss_base,
        "steps_per_s": result.steps_per_s,
        "wall_time_s": result.wall_time_s,
    }
    typer.echo(json.dumps(summary))


@instructions_app.command("build")
def instructions_build(
    out: Annotated[Path, typer.Option("--out", help="Output folder (train.jsonl, heldout.jsonl, manifest.json).")],
    ncbi: Annotated[Path | None, typer.Option("--ncbi", help="NCBI-Disease training split (PubTator).")] = None,
    bc5cdr: Annotated[Path | None, typer.Option("--bc5cdr", help="BC5CDR training split (PubTator).")] = None,
    german_max: Annotated[
        int, typer.Option("--german-max", min=0, help="German training items (all tasks together).")
    ] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Seed for sampling and the held-out split.")] = 0,
) -> None:
    """Build the bilingual instruction set (entity tagging, TNM, extraction, ICD-10) with a held-out split."""
    from evaluation.instruction_data import build_instruction_set

    for path in (ncbi, bc5cdr):
        if path is not None and not path.is_file():
            raise _fail(f"file not found: {path}")
    try:
        manifest = build_instruction_set(out, ncbi=ncbi, bc5cdr=bc5cdr, german_max=german_max, seed=seed)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps({"out": str(out), "totals": manifest.totals, "counts": manifest.counts}))


@model_app.command("convert")
def model_convert(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory; ONCOBOARD_DATA_DIR when unset.")
    ] = None,
) -> None:
    """Convert the packaged SmolLM2-135M-Instruct into the data directory (once) and print its path."""
    from oncoboard.llm.base import LLMError
    from oncoboard.llm.convert import ensure_default_model

    try:
        path = ensure_default_model(data_dir if data_dir is not None else _default_data_dir())
    except (LLMError, OSError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add the model commands to the main CLI."""
    app.command("serve-model")(serve_model)
    app.command("finetune")(finetune_command)
    app.add_typer(instructions_app, name="instructions", help="Instruction sets for fine-tuning.")
    app.add_typer(model_app, name="model", help="The local language model: convert the packaged default.")
