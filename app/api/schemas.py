"""Request (create) and response (public) schemas of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from oncoboard.domain import CaseInput, ConsultReport, StructuredData, Treatment

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,199}$"
"""Case, job and trace ids: what the service issues, and nothing a database would choke on."""


class ConsultationCreate(BaseModel):
    """A case submitted for consultation (the case input of CONTRACT.md plus a mode)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(
        default=None, max_length=200, description="The caller's reference; never echoed into the report."
    )
    text: str = Field(description="Free-text notes, English or German.")
    lang: Literal["auto", "en", "de"] = Field(default="auto", description="Language of the text or auto.")
    structured: StructuredData = Field(
        default_factory=StructuredData, description="Structured data; wins over the text."
    )
    mode: Literal["sync", "async"] = Field(
        default="sync", description="sync: answer with the report; async: answer 202 with a job id."
    )

    def to_case(self) -> CaseInput:
        """The case input without the transport fields."""
        return CaseInput(id=self.id, text=self.text, lang=self.lang, structured=self.structured)


class JobAccepted(BaseModel):
    """An asynchronous submission was queued."""

    job_id: str
    status: Literal["queued"] = "queued"


class JobPublic(BaseModel):
    """A job's state, and its report once done."""

    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    case_id: str | None = None
    error: str | None = None
    attempts: int = 0
    created_at: datetime
    finished_at: datetime | None = None
    report: ConsultReport | None = None


class DecisionCreate(BaseModel):
    """A chief's decision on a locked report."""

    decision: Literal["approved", "rejected"]
    reason: str | None = Field(default=None, max_length=4000, description="Why (kept in the trace).")


class SchemeChangeCreate(BaseModel):
    """A clinician's replacement of one scheme's treatments."""

    treatments: list[Treatment] = Field(min_length=1, max_length=20, description="The new treatments.")
    title: str | None = Field(default=None, max_length=300, description="A new title (kept if absent).")
    rationale: str | None = Field(
        default=None, max_length=8000, description="A new rationale (kept if absent)."
    )
    reason: str = Field(
        min_length=3, max_length=4000, pattern=r"\S", description="Why the scheme is changed (mandatory)."
    )


class TraceEventPublic(BaseModel):
    """One recorded step of a consultation."""

    seq: int
    kind: str
    name: str
    at: str
    duration_ms: float | None = None
    prev_hash: str
    hash: str
    payload: dict[str, Any] | None = Field(
        default=None, description="Inputs and outputs; only shown to attendings and chiefs."
    )


class TracePublic(BaseModel):
    """A recorded trace."""

    trace_id: str
    n_events: int
    events: list[TraceEventPublic]


class VerifyPublic(BaseModel):
    """Outcome of a hash-chain verification."""

    ok: bool
    n_events: int
    problems: list[str]


class HealthPublic(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    detail: str | None = None


class ErrorPublic(BaseModel):
    """An error with a one-line reason."""

    detail: str
