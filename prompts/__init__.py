"""Prompt templates as files (``<name>.<lang>.txt``) with named ``{placeholders}``."""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent


class PromptError(KeyError):
    """A template is missing or a placeholder was not supplied."""


@lru_cache(maxsize=64)
def load_prompt(name: str, lang: str = "en") -> str:
    """The raw template ``name`` in ``lang`` (falls back to English)."""
    for candidate in (PROMPTS_DIR / f"{name}.{lang}.txt", PROMPTS_DIR / f"{name}.en.txt"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise PromptError(f"no prompt template named {name!r}")


def placeholders(name: str, lang: str = "en") -> set[str]:
    """The placeholder names a template expects."""
    return {field for _, field, _, _ in string.Formatter().parse(load_prompt(name, lang)) if field}


def render_prompt(name: str, lang: str = "en", **values: object) -> str:
    """The template filled with ``values``; every placeholder must be given."""
    missing = placeholders(name, lang) - values.keys()
    if missing:
        raise PromptError(f"prompt {name!r} needs {sorted(missing)}")
    return load_prompt(name, lang).format(**values)
