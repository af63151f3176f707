"""Language-model backends: local transformers, the OpenAI-compatible server and client over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from oncoboard.llm import LLMError, Message, NoModel, generate_structured
from oncoboard.llm.base import _first_json_object
from oncoboard.llm.openai_backend import OpenAIChatModel
from oncoboard.llm.server import create_model_server
from oncoboard.llm.transformers_backend import TransformersModel
from tests.servers import free_port, serving


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> TransformersModel:
    return TransformersModel(tiny_model_dir)


def test_transformers_backend_generates_and_streams(tiny: TransformersModel) -> None:
    text = tiny.generate([Message("user", "Stage?")], max_tokens=8)
    assert isinstance(text, str)
    pieces = list(tiny.stream([Message("user", "Stage?")], max_tokens=8))
    assert "".join(pieces).strip() == text  # greedy decoding is deterministic
    assert tiny.describe.startswith("transformers/")


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="not found"):
        TransformersModel(tmp_path / "nope")


def test_no_model_refuses() -> None:
    with pytest.raises(LLMError):
        NoModel().generate([Message("user", "x")])


class Verdict(BaseModel):
    answer: str = Field(description="yes or no")


class ScriptedModel:
    """A scripted stand-in for the language model (the only component tests may swap)."""

    describe = "scripted"

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.calls = 0

    def generate(self, messages, *, max_tokens=256, temperature=0.0):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.replies.pop(0)

    def stream(self, messages, *, max_tokens=256, temperature=0.0):  # type: ignore[no-untyped-def]
        yield self.generate(messages)


def test_structured_generation_retries_then_validates() -> None:
    model = ScriptedModel(["no json here", 'Sure: ```{"answer": "yes"}```'])
    assert generate_structured(model, [Message("user", "q")], Verdict).answer == "yes"
    assert model.calls == 2


def test_structured_generation_gives_up() -> None:
    model = ScriptedModel(['{"wrong": 1}'] * 3)
    with pytest.raises(LLMError, match="did not validate"):
        generate_structured(model, [Message("user", "q")], Verdict, retries=2)
    assert model.calls == 3


def test_first_json_object_handles_braces_in_strings() -> None:
    assert _first_json_object('x {"a": "}{", "b": {"c": 1}} y') == '{"a": "}{", "b": {"c": 1}}'
    assert _first_json_object("none") is None


@pytest.fixture(scope="module")
def served(tiny: TransformersModel) -> Iterator[str]:
    with serving(create_model_server(tiny, "oncoboard"), start_timeout=20) as url:
        yield url


def test_openai_client_against_local_server(served: str, tiny: TransformersModel) -> None:
    client = OpenAIChatModel(served, "oncoboard", timeout=30)
    assert client.models() == ["oncoboard"]
    messages = [Message("user", "Stage?")]
    remote = client.generate(messages, max_tokens=8)
    assert remote == tiny.generate(messages, max_tokens=8)
    assert "".join(client.stream(messages, max_tokens=8)).strip() == remote


def test_openai_client_errors_are_clear(served: str) -> None:
    with pytest.raises(LLMError, match="404"):
        OpenAIChatModel(served, "other-model").generate([Message("user", "x")])
    with pytest.raises(LLMError, match="unreachable"):
        OpenAIChatModel(f"http://127.0.0.1:{free_port()}", "m", timeout=2).generate([Message("user", "x")])
