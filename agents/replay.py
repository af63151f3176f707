"""Exact replay: answer every tool and model call of a run from a recorded trace.

A replayed run goes through the same graph and the same node code, but each tool call returns the
output recorded for it (in recording order, per tool), rehydrated into its domain type, so the
report it composes can be compared with the recorded one. A difference means the recorded report
does not follow from its own recorded steps.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from oncoboard.audit import TraceEvent
from oncoboard.domain import Compliance, EvidenceHit, Findings, ICD10Code, KGResult, Safety, Scheme


class ReplayMismatch(RuntimeError):
    """The run asked for a tool call the trace does not hold."""


@lru_cache(maxsize=1)
def _adapters() -> dict[str, TypeAdapter[Any]]:
    from tools.tnm.engine import StagingResult

    kg = TypeAdapter(KGResult)
    return {
        "extract_findings": TypeAdapter(Findings),
        "stage_tumor": TypeAdapter(StagingResult),
        "code_case": TypeAdapter(list[ICD10Code]),
        "search_literature": TypeAdapter(tuple[str, list[EvidenceHit]]),
        "kg_verify": kg,
        "kg_verify_schemes": kg,
        "draft_schemes": TypeAdapter(list[Scheme]),
        "check_compliance": TypeAdapter(Compliance),
        "review_safety": TypeAdapter(Safety),
    }


class RecordedCalls:
    """The recorded outputs of a trace, handed out per tool in recording order."""

    def __init__(self, events: Iterable[TraceEvent]) -> None:
        self._tools: dict[str, deque[Any]] = defaultdict(deque)
        self._models: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        for event in events:
            if event.kind == "tool_call" and event.name in _adapters():
                self._tools[event.name].append(event.payload.get("outputs"))
            elif event.kind == "model_call":
                self._models[event.name].append(str(event.payload.get("output", "")))

    def replays(self, tool: str) -> bool:
        """Whether calls of ``tool`` are answered from the trace."""
        return tool in _adapters()

    def tool_output(self, tool: str) -> Any:
        """The next recorded output of ``tool`` as its domain type."""
        with self._lock:
            queue = self._tools.get(tool)
            if not queue:
                raise ReplayMismatch(f"the trace holds no further call of {tool}")
            raw = queue.popleft()
        return _adapters()[tool].validate_python(raw)

    def has_model_calls(self, name: str) -> bool:
        """Whether the recorded run asked the model for ``name`` at all."""
        return bool(self._models.get(name))

    def model_output(self, name: str) -> str:
        """The next recorded model reply for the prompt ``name``."""
        with self._lock:
            queue = self._models.get(name)
            if not queue:
                raise ReplayMismatch(f"the trace holds no further model call {name}")
            return queue.popleft()
