"""Running consultations: the graph, its checkpointer, the trace and the stores, wired together.

A consultation is recorded atomically: the de-identified case, its report and every trace event
are written in one transaction after the run, so a case is either fully recorded or not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command
from psycopg import Connection
from psycopg.rows import dict_row
from pydantic import BaseModel

from agents.base import ConsultContext
from agents.kg_verifier import Verifier
from agents.literature_searcher import Retriever
from agents.planner import Drafter
from agents.report import compose_report
from graphs import state as state_module
from graphs.consult import build_consult_graph
from oncoboard import domain
from oncoboard.audit import TraceEvent, TraceRecorder, load_trace, persist_events
from oncoboard.config import RunContext
from oncoboard.crypto import Keyring, KeyringCipher
from oncoboard.domain import Approval, CaseInput, ConsultReport, Role
from oncoboard.llm import LanguageModel, NoModel
from oncoboard.storage import Database

logger = logging.getLogger(__name__)


def checkpoint_serializer(keyring: Keyring) -> EncryptedSerializer:
    """Checkpoints hold de-identified clinical state: encrypt them, and allow exactly our own types."""
    allowed = [
        obj
        for module in (domain, state_module)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]
    return EncryptedSerializer(KeyringCipher(keyring), JsonPlusSerializer(allowed_msgpack_modules=allowed))


class ReportNotFound(LookupError):
    """No report for this case id."""


class NotLocked(RuntimeError):
    """An approval was sent for a report that is not locked."""


class PermissionDenied(PermissionError):
    """The acting role may not do this (enforced here, whatever the entry point)."""


@dataclass
class ConsultService:
    """Consultations over one database, keyring and set of backends."""

    db: Database
    keyring: Keyring
    llm: LanguageModel
    retriever: Retriever | None = None
    verifier: Verifier | None = None
    drafter: Drafter | None = None

    def __post_init__(self) -> None:
        self.db.migrate()
        self._saver_ready = False
        self._setup_lock = threading.Lock()
        self._pseudonym_key = self.keyring.derived_key("pseudonyms")
        self._serde = checkpoint_serializer(self.keyring)

    @contextmanager
    def _graph(self) -> Iterator[Any]:
        with Connection.connect(self.db.url, autocommit=True, prepare_threshold=0, row_factory=dict_row) as conn:
            saver = PostgresSaver(conn, serde=self._serde)  # type: ignore[arg-type]
            with self._setup_lock:
                if not self._saver_ready:
                    saver.setup()
                    self._saver_ready = True
            yield build_consult_graph(
                llm=self.llm,
                retriever=self.retriever,
                verifier=self.verifier,
                checkpointer=saver,
                drafter=self.drafter,
            )

    def consult(
        self,
        case: CaseInput,
        run: RunContext | None = None,
        *,
        on_event: Callable[[TraceEvent], None] | None = None,
    ) -> ConsultReport:
        """Run one case through the graph and record it; returns the report (locked ones included).

        ``on_event`` receives every trace event as it happens (live progress for event streams).
        """
        run = run or RunContext()
        if isinstance(self.llm, NoModel) and run.use_llm:
            run = RunContext(**{**run.__dict__, "use_llm": False})
        recorder = TraceRecorder(case_id="pending", listeners=[on_event] if on_event else [])
        phi: dict[str, Any] = {}
        recorder.record("run_start", "consult", {"run": dict(run.__dict__), "llm": self.llm.describe})
        config = {"configurable": {"thread_id": recorder.trace_id}}
        with self._graph() as graph:
            context = ConsultContext(run=run, recorder=recorder, pseudonym_key=self._pseudonym_key, phi_sink=phi)
            result = graph.invoke({"case": case}, config=config, context=context)
            state = graph.get_state(config).values
        if "report" in result:
            report: ConsultReport = result["report"]
        else:
            # Paused at the emergency-stop interrupt: the locked report is composed from the state.
            report = compose_report(state, llm_name=self.llm.describe, trace_id=recorder.trace_id)
        recorder.case_id = report.case_id
        recorder.record("run_end", "consult", {"status": report.status, "case_id": report.case_id})
        self._persist(state, report, recorder, phi.get("mapping") or {})
        return report

    def _persist(
        self, state: dict[str, Any], report: ConsultReport, recorder: TraceRecorder, mapping: dict[str, str]
    ) -> None:
        intake = state["intake"]
        case_doc = {
            "text": intake.text,
            "language": intake.language,
            "structured": state["case"].structured.model_dump(mode="json"),
        }
        case_blob, case_key = self.keyring.encrypt(json.dumps(case_doc).encode(), report.case_id.encode())
        report_blob, report_key = self.keyring.encrypt(report.model_dump_json().encode(), report.case_id.encode())
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO cases (case_id, language, text_sha256, payload, key_id) VALUES (%s, %s, %s, %s, %s)",
                (
                    report.case_id,
                    report.language,
                    hashlib.sha256(intake.text.encode()).hexdigest(),
                    case_blob,
                    case_key,
                ),
            )
            conn.execute(
                "INSERT INTO reports (case_id, trace_id, status, payload, key_id) VALUES (%s, %s, %s, %s, %s)",
                (report.case_id, recorder.trace_id, report.status, report_blob, report_key),
            )
            persist_events(conn, recorder, self.keyring)
            if mapping:
                blob, key_id = self.keyring.encrypt(json.dumps(mapping).encode(), b"phi:" + report.case_id.encode())
                conn.execute(
                    "INSERT INTO phi_mappings (case_id, payload, key_id) VALUES (%s, %s, %s)",
                    (report.case_id, blob, key_id),
                )

    def identity_mapping(self, case_id: str, role: Role) -> dict[str, str]:
        """The case's pseudonym -> original mapping; re-identification is for a chief only."""
        if role != "chief":
            raise PermissionDenied(f"a {role} may not re-identify a case")
        with self.db.connect() as conn:
            row = conn.execute("SELECT payload, key_id FROM phi_mappings WHERE case_id = %s", (case_id,)).fetchone()
        if row is None:
            return {}
        mapping = json.loads(self.keyring.decrypt(row["payload"], row["key_id"], b"phi:" + case_id.encode()))
        return {pseudonym: surface for surface, pseudonym in mapping.items()}

    def get_report(self, case_id: str) -> ConsultReport:
        """The stored report of a case."""
        with self.db.connect() as conn:
            row = conn.execute("SELECT payload, key_id FROM reports WHERE case_id = %s", (case_id,)).fetchone()
        if row is None:
            raise ReportNotFound(case_id)
        data = self.keyring.decrypt(row["payload"], row["key_id"], case_id.encode())
        return ConsultReport.model_validate_json(data)

    def decide(self, case_id: str, approval: Approval) -> ConsultReport:
        """A chief's decision on a locked report: resume the paused run and record the outcome."""
        if approval.role != "chief":
            raise PermissionDenied(f"only a chief may approve or reject a locked report, not a {approval.role}")
        report = self.get_report(case_id)
        if report.status != "locked" or report.trace_id is None:
            raise NotLocked(f"report {case_id} is {report.status}, not locked")
        events = load_trace(self.db, self.keyring, report.trace_id)
        recorder = TraceRecorder(case_id=case_id, trace_id=report.trace_id, events=events)
        config = {"configurable": {"thread_id": report.trace_id}}
        with self._graph() as graph:
            result = graph.invoke(
                Command(resume=approval.model_dump(mode="json")),
                config=config,
                context=ConsultContext(run=RunContext(use_llm=False), recorder=recorder),
            )
        updated: ConsultReport = result["report"]
        recorder.record("run_end", "decision", {"status": updated.status, "decision": approval.decision})
        blob, key_id = self.keyring.encrypt(updated.model_dump_json().encode(), case_id.encode())
        new_events = recorder.events[len(events) :]
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE reports SET status = %s, payload = %s, key_id = %s, updated_at = now() WHERE case_id = %s",
                (updated.status, blob, key_id, case_id),
            )
            tail = TraceRecorder(case_id=case_id, trace_id=report.trace_id, events=new_events)
            persist_events(conn, tail, self.keyring)
        return updated
