"""The consult graph, built by a factory that takes its backends.

intake -> extractor -> (tnm_stager || icd10_coder) -> literature_searcher -> kg_verifier
-> planner -> guideline_checker --(score < threshold, iterations left)--> planner
                                --(passed or exhausted)--> safety_reviewer
-> safety_reviewer --(critical)--> locked (interrupt until a chief decides) -> report
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from agents.base import ConsultContext, to_jsonable
from agents.extractor import extractor
from agents.guideline_checker import guideline_checker
from agents.icd10_coder import icd10_coder
from agents.intake import intake
from agents.kg_verifier import Verifier, make_kg_verifier
from agents.literature_searcher import Retriever, make_literature_searcher
from agents.planner import Drafter, make_planner
from agents.report import make_report
from agents.safety_reviewer import locked, make_safety_reviewer
from agents.tnm_stager import tnm_stager
from graphs.state import ConsultInput, ConsultState
from oncoboard.llm import LanguageModel, NoModel

Node = Callable[[Any, Runtime[ConsultContext]], Any]


def traced(name: str, fn: Node) -> Any:
    """Wrap a node so its start and end (with its update and duration) are trace events."""

    def node(state: ConsultState, runtime: Runtime[ConsultContext]) -> Any:
        recorder = runtime.context.recorder if runtime.context is not None else None
        if recorder is not None:
            recorder.record("node_start", name, {"state_keys": sorted(k for k in state if state.get(k) is not None)})
        started = time.perf_counter()
        result = fn(state, runtime)
        if recorder is not None:
            if isinstance(result, Command):
                payload = {"update": to_jsonable(result.update), "goto": to_jsonable(result.goto)}
            else:
                payload = {"update": to_jsonable(result)}
            recorder.record("node_end", name, payload, (time.perf_counter() - started) * 1000)
        return result

    node.__name__ = name
    node.__doc__ = fn.__doc__
    return node


def build_consult_graph(
    *,
    llm: LanguageModel | None = None,
    retriever: Retriever | None = None,
    verifier: Verifier | None = None,
    checkpointer: Any = None,
    drafter: Drafter | None = None,
) -> CompiledStateGraph[ConsultState, ConsultContext, ConsultInput, ConsultState]:
    """Compile the consult graph over the given backends.

    Tests and the CLI wire the same graph differently: no model (``NoModel``), a tiny in-process
    model or a served one; retrieval and graph verification switched off (``None``) or real.
    A checkpointer is required for the emergency-stop lock to be resumable. ``drafter`` replaces
    the guideline-table scheme drafter (evaluation of alternative planners, loop tests).
    """
    model = llm if llm is not None else NoModel()
    builder = StateGraph(ConsultState, context_schema=ConsultContext, input_schema=ConsultInput)
    builder.add_node("intake", traced("intake", intake), destinations=("extractor", "report"))
    builder.add_node("extractor", traced("extractor", extractor))
    builder.add_node("tnm_stager", traced("tnm_stager", tnm_stager))
    builder.add_node("icd10_coder", traced("icd10_coder", icd10_coder))
    builder.add_node("literature_searcher", traced("literature_searcher", make_literature_searcher(retriever)))
    builder.add_node("kg_verifier", traced("kg_verifier", make_kg_verifier(verifier)))
    builder.add_node("planner", traced("planner", make_planner(model, drafter) if drafter else make_planner(model)))
    builder.add_node(
        "guideline_checker",
        traced("guideline_checker", guideline_checker),
        destinations=("planner", "safety_reviewer"),
    )
    builder.add_node(
        "safety_reviewer", traced("safety_reviewer", make_safety_reviewer(verifier)), destinations=("locked", "report")
    )
    builder.add_node("locked", traced("locked", locked))
    builder.add_node("report", traced("report", make_report(model.describe)))

    builder.add_edge(START, "intake")
    builder.add_edge("extractor", "tnm_stager")
    builder.add_edge("extractor", "icd10_coder")
    builder.add_edge(["tnm_stager", "icd10_coder"], "literature_searcher")
    builder.add_edge("literature_searcher", "kg_verifier")
    builder.add_edge("kg_verifier", "planner")
    builder.add_edge("planner", "guideline_checker")
    builder.add_edge("locked", "report")
    builder.add_edge("report", END)
    return builder.compile(checkpointer=checkpointer, name="oncoboard-consult")
