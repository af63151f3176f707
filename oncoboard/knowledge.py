"""Access to the versioned data tables shipped in ``knowledge/``.

Every table carries a header naming its source and edition; loading refuses a table without one,
so no clinical fact enters the system without provenance.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"


class KnowledgeError(ValueError):
    """A knowledge table is missing or malformed."""


def knowledge_path(*parts: str) -> Path:
    """Path of a file or folder inside ``knowledge/``."""
    return KNOWLEDGE_DIR.joinpath(*parts)


@lru_cache(maxsize=256)
def load_table(relative: str) -> dict[str, Any]:
    """Load a YAML table from ``knowledge/`` and check its ``source`` and ``edition`` header."""
    path = knowledge_path(relative)
    if not path.is_file():
        raise KnowledgeError(f"knowledge table not found: {relative}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise KnowledgeError(f"{relative}: top level must be a mapping")
    for key in ("source", "edition"):
        if not data.get(key):
            raise KnowledgeError(f"{relative}: header field '{key}' is missing")
    return data


def load_jsonl(relative: str) -> list[dict[str, Any]]:
    """Load a JSONL table; the first line is the header object with ``source`` and ``edition``."""
    path = knowledge_path(relative)
    if not path.is_file():
        raise KnowledgeError(f"knowledge table not found: {relative}")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise KnowledgeError(f"{relative}: empty")
    header = json.loads(lines[0])
    if not (isinstance(header, dict) and header.get("source") and header.get("edition")):
        raise KnowledgeError(f"{relative}: first line must be a header with source and edition")
    return [json.loads(ln) for ln in lines[1:]]
