"""The language-model interface the agents call, and structured generation on top of it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str


class LLMError(RuntimeError):
    """The model could not produce a usable answer (timeout, backend failure, invalid output)."""


@runtime_checkable
class LanguageModel(Protocol):
    """A chat model backend."""

    @property
    def describe(self) -> str:
        """``backend/model/adapter`` for provenance."""
        ...

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        """The model's reply to a conversation."""
        ...

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        """The reply as text pieces, for chat."""
        ...


def generate_structured(
    llm: LanguageModel,
    messages: Sequence[Message],
    schema: type[T],
    *,
    retries: int = 2,
    max_tokens: int = 384,
) -> T:
    """Ask for JSON matching ``schema``; validate; retry with the validation error a bounded number of times.

    The JSON schema is part of the prompt so any backend (local or served) can follow it. Output that
    never validates raises :class:`LLMError`; callers turn that into ``needs_review``, never a guess.
    """
    schema_text = json.dumps(schema.model_json_schema(), ensure_ascii=False)
    convo = [
        *messages,
        Message(
            "system",
            f"Answer with one JSON object that matches this JSON schema, nothing else:\n{schema_text}",
        ),
    ]
    last_error = "no attempt made"
    for attempt in range(retries + 1):
        raw = llm.generate(convo, max_tokens=max_tokens, temperature=0.0)
        candidate = _first_json_object(raw)
        if candidate is None:
            last_error = "the reply held no JSON object"
        else:
            try:
                return schema.model_validate_json(candidate)
            except ValidationError as exc:
                last_error = str(exc).splitlines()[0]
        logger.info("structured output attempt %d failed: %s", attempt + 1, last_error)
        convo = [
            *convo,
            Message("assistant", raw),
            Message("user", f"Invalid: {last_error}. Reply with valid JSON only."),
        ]
    raise LLMError(f"model output did not validate against {schema.__name__}: {last_error}")


def _first_json_object(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text`` (models often wrap JSON in prose or fences)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        in_string = False
        escaped = False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


class NoModel:
    """The ``none`` backend: nothing is generated; callers record that no model was used."""

    describe = "none"

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        """Always refuses: callers must check for NoModel before asking."""
        raise LLMError("no language model is configured (backend 'none')")

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        """Always refuses."""
        raise LLMError("no language model is configured (backend 'none')")
