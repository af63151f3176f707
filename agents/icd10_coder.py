"""ICD-10 coder: WHO ICD-10 2019 codes with the multi-site rules, plus ICD-10-CM renderings."""

from __future__ import annotations

from langgraph.runtime import Runtime

from agents.base import ConsultContext, call_tool
from graphs.state import Coding, ConsultState
from tools.icd10 import code_case


def icd10_coder(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
    """Code the case from the extractor's findings."""
    codes = call_tool(runtime, "code_case", code_case, findings=state["findings"])
    return {"coding": Coding(codes=tuple(codes))}
