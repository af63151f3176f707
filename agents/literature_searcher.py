"""Literature searcher: hybrid retrieval of evidence that matches this patient's features."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from langgraph.runtime import Runtime

from agents.base import ConsultContext, call_tool, run_settings
from graphs.state import ConsultState, Literature
from oncoboard.domain import EvidenceHit, Findings, Tumor


class Retriever(Protocol):
    """Finds evidence for a patient."""

    def retrieve(
        self, findings: Findings, tumors: Sequence[Tumor], *, k: int, recency_years: int
    ) -> tuple[str, list[EvidenceHit]]:
        """The query text used and the ranked hits."""
        ...


def make_literature_searcher(retriever: Retriever | None) -> Callable[..., dict]:
    """The node, bound to its retriever (``None`` means retrieval is switched off for this graph)."""

    def literature_searcher(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
        """Retrieve evidence for an oncology case; nothing for a non-oncology case."""
        findings = state["findings"]
        if retriever is None or not findings.oncology:
            return {"literature": Literature()}
        settings = run_settings(runtime)
        query, hits = call_tool(
            runtime,
            "search_literature",
            retriever.retrieve,
            findings=findings,
            tumors=list(state["staging"].tumors),
            k=settings.retrieval_k,
            recency_years=settings.recency_years,
        )
        return {"literature": Literature(hits=tuple(hits), query=query)}

    return literature_searcher
