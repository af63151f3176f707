"""Reading cases from files, stdin and JSON lines, with one-line reasons for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from oncoboard.domain import CaseInput

MAX_READ_BYTES = 50_000_000


class CaseFormatError(ValueError):
    """The input is not a readable case."""


def read_case_source(source: str) -> bytes:
    """Bytes from a path or ``-`` (stdin)."""
    if source == "-":
        return sys.stdin.buffer.read(MAX_READ_BYTES + 1)
    path = Path(source)
    if not path.is_file():
        raise CaseFormatError(f"no such file: {source}")
    with path.open("rb") as handle:
        return handle.read(MAX_READ_BYTES + 1)


def decode_text(raw: bytes) -> str:
    """UTF-8 text (a BOM is dropped); binary or other encodings are refused."""
    if len(raw) > MAX_READ_BYTES:
        raise CaseFormatError(f"input is larger than {MAX_READ_BYTES} bytes")
    if b"\x00" in raw:
        raise CaseFormatError("input is binary (contains NUL bytes), not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaseFormatError(f"input is not valid UTF-8 (byte {exc.start})") from exc


def parse_case_text(text: str, *, lang: str = "auto") -> CaseInput:
    """A JSON case object, or plain text treated as ``{"text": ...}``."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CaseFormatError(
                f"invalid JSON case: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
        return case_from_obj(data, lang=lang)
    return CaseInput(text=text, lang=lang)  # type: ignore[arg-type]


def case_from_obj(data: object, *, lang: str = "auto") -> CaseInput:
    """A CaseInput from a decoded JSON value."""
    if not isinstance(data, dict):
        raise CaseFormatError("a JSON case must be an object with a 'text' field")
    if "text" not in data:
        raise CaseFormatError("JSON case has no 'text' field")
    if lang != "auto" and data.get("lang", "auto") == "auto":
        data = {**data, "lang": lang}
    try:
        return CaseInput.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CaseFormatError(f"invalid case field '{where}': {first['msg']}") from exc


def parse_case_bytes(raw: bytes, *, lang: str = "auto") -> CaseInput:
    """Decode and parse one case."""
    return parse_case_text(decode_text(raw), lang=lang)
