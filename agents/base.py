"""What every specialist node shares: the run context and tool-call recording."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langgraph.runtime import Runtime
from pydantic import BaseModel

from agents.replay import RecordedCalls
from oncoboard.audit import TraceRecorder
from oncoboard.config import RunContext

R = TypeVar("R")


@dataclass(frozen=True)
class ConsultContext:
    """Per-run context handed to every node: run settings plus the run's trace recorder."""

    run: RunContext = field(default_factory=RunContext)
    recorder: TraceRecorder | None = None
    pseudonym_key: bytes | None = None
    """Secret behind pseudonymous case ids and pseudonyms, so one patient's cases stay linkable."""
    phi_sink: dict[str, Any] | None = None
    """Where intake leaves the pseudonymisation mapping for encrypted storage (never state or trace)."""
    replay: RecordedCalls | None = None
    """When set, tool calls are answered from a recorded trace (exact audit replay)."""


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for a trace payload (pydantic models, tuples, sets and dataclasses included)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: to_jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def call_tool(runtime: Runtime[ConsultContext] | None, name: str, fn: Callable[..., R], /, **inputs: Any) -> R:
    """Call a tool with keyword inputs and record the call (inputs, outputs, duration) in the trace."""
    started = time.perf_counter()
    replay = runtime.context.replay if runtime is not None and runtime.context is not None else None
    result = replay.tool_output(name) if replay is not None and replay.replays(name) else fn(**inputs)
    recorder = runtime.context.recorder if runtime is not None and runtime.context is not None else None
    if recorder is not None:
        recorder.tool(name, to_jsonable(inputs), to_jsonable(result), started)
    return result


def run_settings(runtime: Runtime[ConsultContext] | None) -> RunContext:
    """The run's settings (defaults when a node is called outside a graph, e.g. in a unit test)."""
    if runtime is None or runtime.context is None:
        return RunContext()
    return runtime.context.run
