"""Sub-command groups mounted on the main CLI (each imports its heavy parts lazily)."""

from __future__ import annotations

import importlib
import importlib.util

import typer

_GROUPS = {
    "literature": ("app.cli_literature", "Literature store: ingest, update, stats."),
    "kg": ("app.cli_kg", "Knowledge graph: build, stats, query, embed."),
}
_MODULES = ("app.cli_eval", "app.cli_service", "app.cli_model", "app.cli_chat")


def register(app: typer.Typer) -> None:
    """Mount the groups and commands that exist in this installation."""
    for name, (module, help_text) in _GROUPS.items():
        if importlib.util.find_spec(module) is None:
            continue
        sub = importlib.import_module(module)
        app.add_typer(sub.app, name=name, help=help_text)
    for module in _MODULES:
        if importlib.util.find_spec(module) is None:
            continue
        mod = importlib.import_module(module)
        mod.register(app)
