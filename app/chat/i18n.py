"""Interface text in English and German, shared by the page (``static/i18n.json``) and the chat engine."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

Lang = Literal["en", "de"]
I18N_PATH = Path(__file__).resolve().parent / "static" / "i18n.json"


@lru_cache(maxsize=1)
def messages() -> dict[str, dict[str, str]]:
    """All interface strings by language (read once, on first use)."""
    data: dict[str, dict[str, str]] = json.loads(I18N_PATH.read_text(encoding="utf-8"))
    return data


def text(key: str, lang: str, **values: object) -> str:
    """The string ``key`` in ``lang`` (English when missing), with ``{placeholders}`` filled."""
    table = messages()
    template = table.get(lang, {}).get(key) or table["en"][key]
    return template.format(**values) if values else template
