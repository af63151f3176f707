"""State of the consult graph.

Each key has exactly one writer (the node named in its docstring); values are frozen domain models,
so a reader can never change what another specialist decided. No key has a reducer: the parallel
branch (tnm_stager || icd10_coder) writes disjoint keys, and the planner/checker loop overwrites
its own keys on each iteration by design (the trace keeps every iteration).
"""

from __future__ import annotations

from typing import Literal, TypedDict

from pydantic import Field

from oncoboard.domain import (
    Approval,
    CaseInput,
    Compliance,
    ConsultReport,
    EvidenceHit,
    Findings,
    Frozen,
    ICD10Code,
    KGResult,
    Language,
    Safety,
    Scheme,
    Tumor,
)


class Intake(Frozen):
    """What intake accepted (or why it refused)."""

    case_id: str
    language: Language
    text: str = Field(description="The de-identified case text every later node reads.")
    accepted: bool
    error: str | None = None
    review_reasons: tuple[str, ...] = ()
    phi_spans: int = 0


class Staging(Frozen):
    """The stager's output: one staged tumour per finding, and conflicts that need review."""

    tumors: tuple[Tumor, ...] = ()
    conflicts: tuple[str, ...] = ()


class Coding(Frozen):
    """The coder's output."""

    codes: tuple[ICD10Code, ...] = ()


class Literature(Frozen):
    """The literature searcher's output."""

    hits: tuple[EvidenceHit, ...] = ()
    query: str = ""


class Plan(Frozen):
    """The planner's latest draft."""

    schemes: tuple[Scheme, ...] = ()
    iteration: int = 0
    fields_from_llm: tuple[str, ...] = ()


class ConsultInput(TypedDict):
    """What a caller passes in: the raw case."""

    case: CaseInput


class ConsultState(TypedDict, total=False):
    """Full state of one consultation."""

    case: CaseInput
    """The submitted case (written by the caller only)."""
    intake: Intake
    """Written by intake: validation, language, de-identified text, pseudonymous case id."""
    findings: Findings
    """Written by extractor."""
    staging: Staging
    """Written by tnm_stager."""
    coding: Coding
    """Written by icd10_coder."""
    literature: Literature
    """Written by literature_searcher."""
    kg: KGResult
    """Written by kg_verifier."""
    plan: Plan
    """Written by planner (once per loop iteration)."""
    compliance: Compliance
    """Written by guideline_checker (once per loop iteration)."""
    safety: Safety
    """Written by safety_reviewer."""
    approval: Approval
    """Written by locked, from the chief physician's decision."""
    report: ConsultReport
    """Written by report."""


NodeName = Literal[
    "intake",
    "extractor",
    "tnm_stager",
    "icd10_coder",
    "literature_searcher",
    "kg_verifier",
    "planner",
    "guideline_checker",
    "safety_reviewer",
    "locked",
    "report",
]
