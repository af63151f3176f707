"""Audit re-runs of a recorded consultation, compared with the recorded report.

``exact``: the same graph, every tool and model call answered from the trace; the report must come
out the same, or the record does not hold together. ``live``: the recorded (de-identified) case
through today's components; the difference shows what changed since (tables, models, code).
Neither re-run is stored: an audit never alters what it audits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from agents.base import ConsultContext
from agents.replay import RecordedCalls
from agents.report import compose_report
from graphs.consult import build_consult_graph
from graphs.service import ConsultService, ReportNotFound
from oncoboard.audit import TraceRecorder, load_trace
from oncoboard.config import RunContext
from oncoboard.domain import CaseInput, ConsultReport, StructuredData

Mode = Literal["exact", "live"]


@dataclass(frozen=True)
class RerunResult:
    """A re-run and how it differs from the record."""

    mode: Mode
    recorded: ConsultReport
    rerun: ConsultReport
    differences: list[str]

    @property
    def identical(self) -> bool:
        """No clinical difference between the record and the re-run."""
        return not self.differences


def _clinical_view(report: ConsultReport, *, with_status: bool) -> dict[str, Any]:
    """What a clinician acts on, without ids, timings and post-run decisions."""
    view: dict[str, Any] = {
        "oncology": report.oncology,
        "language": report.language,
        "tumors": [t.model_dump(mode="json") for t in report.tumors],
        "icd10": sorted((c.code, c.system, c.role) for c in report.icd10),
        "biomarkers": sorted((b.name, b.result, b.status) for b in report.biomarkers),
        "evidence": [e.id for e in report.evidence],
        "kg_conflicts": sorted((c.kind, c.subject) for c in report.kg.conflicts),
        "compliance": report.compliance.score if report.compliance else None,
        "safety": sorted((f.severity, f.drug or "", f.rule_id or "") for f in report.safety.findings),
        "schemes": [
            (s.kind, [(t.name, t.dose, t.schedule) for t in s.treatments], s.limited_evidence) for s in report.schemes
        ],
        "model_reasoning": [s.bases.model_reasoning for s in report.schemes],
    }
    if with_status:
        view["status"] = report.status
    return view


def diff_reports(recorded: ConsultReport, rerun: ConsultReport) -> list[str]:
    """Field-level differences; the status counts only when no one decided on the report since."""
    with_status = recorded.approval is None
    old, new = _clinical_view(recorded, with_status=with_status), _clinical_view(rerun, with_status=with_status)
    return [
        f"{key}: recorded {json.dumps(old[key], default=str)} != re-run {json.dumps(new[key], default=str)}"
        for key in old
        if old[key] != new[key]
    ]


def rerun_trace(service: ConsultService, trace_id: str, mode: Mode) -> RerunResult:
    """Re-run a recorded consultation (``exact`` or ``live``) and compare it with its report."""
    with service.db.connect() as conn:
        row = conn.execute(
            "SELECT r.case_id, r.payload AS report, r.key_id AS report_key, c.payload AS case_doc,"
            " c.key_id AS case_key FROM reports r JOIN cases c USING (case_id) WHERE r.trace_id = %s",
            (trace_id,),
        ).fetchone()
    if row is None:
        raise ReportNotFound(trace_id)
    case_id = row["case_id"]
    recorded = ConsultReport.model_validate_json(
        service.keyring.decrypt(row["report"], row["report_key"], case_id.encode())
    )
    case_doc = json.loads(service.keyring.decrypt(row["case_doc"], row["case_key"], case_id.encode()))
    events = load_trace(service.db, service.keyring, trace_id)
    run_start = next((e for e in events if e.kind == "run_start"), None)
    settings = dict(run_start.payload.get("run", {})) if run_start else {}
    run = RunContext(**{k: v for k, v in settings.items() if k in RunContext.__dataclass_fields__})
    if mode == "live":
        run = RunContext(**{**run.__dict__, "use_llm": run.use_llm and service.llm.describe != "none"})
    case = CaseInput(
        text=case_doc["text"],
        lang=case_doc["language"],
        structured=StructuredData.model_validate(case_doc.get("structured") or {}),
    )
    graph = build_consult_graph(
        llm=service.llm,
        retriever=service.retriever,
        verifier=service.verifier,
        checkpointer=InMemorySaver(),
        drafter=service.drafter,
    )
    recorder = TraceRecorder(case_id=case_id)
    context = ConsultContext(
        run=run,
        recorder=recorder,
        pseudonym_key=service.keyring.derived_key("pseudonyms"),
        replay=RecordedCalls(events) if mode == "exact" else None,
    )
    config: RunnableConfig = {"configurable": {"thread_id": f"rerun-{recorder.trace_id}"}}
    result = graph.invoke({"case": case}, config=config, context=context)
    rerun = result.get("report") or compose_report(graph.get_state(config).values, llm_name=service.llm.describe)
    return RerunResult(mode=mode, recorded=recorded, rerun=rerun, differences=diff_reports(recorded, rerun))
