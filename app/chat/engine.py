"""Questions over a recorded consultation, and what-if forks of its recorded run.

Answers are built deterministically: the question is matched to an intent by EN/DE keywords, and
the answer lines are read from the stored report and its audit trace, each with the source it came
from. A configured language model (anything but ``NoModel``) may only rephrase those facts
(``prompts/chat_answer``); the sources are always the deterministic ones.

A what-if question ("what if EGFR is negative?", "was wäre wenn ECOG 2?") is parsed with the
project's own extractor into changed findings. The recorded run is then forked with LangGraph time
travel: the checkpoint written after the extractor is copied onto a new thread, the findings are
replaced there with ``update_state(..., as_node="extractor")`` and the graph runs on from that point.
The original thread is never written to, so a locked report can still be decided afterwards.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.chat.i18n import text
from graphs.service import ConsultService
from oncoboard.audit import TraceEvent, load_trace
from oncoboard.domain import Biomarker, ConsultReport, Findings, Language, Scheme

logger = logging.getLogger(__name__)

Intent = Literal[
    "what_if",
    "scheme_evidence",
    "scheme",
    "stage",
    "codes",
    "biomarkers",
    "compliance",
    "safety",
    "evidence",
    "trace",
    "tumour",
    "summary",
]

# Interface vocabulary (how clinicians phrase questions), not clinical knowledge.
_KEYWORDS: dict[Intent, tuple[str, ...]] = {
    "stage": ("stage", "staging", "tnm", "stadium", "staged", "t category", "n category", "m category"),
    "codes": ("code", "codes", "icd", "kodier", "kodes", "schlüssel", "coding", "coded"),
    "biomarkers": ("biomarker", "marker", "mutation", "molecular", "molekular", "rearrangement"),
    "evidence": (
        "trial",
        "study",
        "studie",
        "evidence",
        "evidenz",
        "literature",
        "literatur",
        "paper",
        "publication",
        "support",
        "stützt",
        "belegt",
    ),
    "compliance": ("compliance", "compliant", "guideline", "leitlinie", "score", "konform"),
    "safety": (
        "safety",
        "safe",
        "lock",
        "emergency",
        "contraindic",
        "sicherheit",
        "gesperrt",
        "sperre",
        "notstopp",
        "kontraind",
        "warning",
        "warnung",
    ),
    "trace": ("trace", "steps", "step", "agents", "audit", "nodes", "ablauf", "schritte", "how did"),
    "tumour": ("tumour", "tumor", "site", "histology", "histologie", "lokalisation", "primary", "where"),
    "scheme": (
        "scheme",
        "schema",
        "schemata",
        "therapy",
        "treatment",
        "regimen",
        "drug",
        "therapie",
        "behandlung",
        "medikament",
        "wirkstoff",
        "option",
        "plan",
    ),
}
# Stage groups and TNM categories ("IIIA", "IA3", "T2a", "cN2"); a bare "I" is the pronoun.
_STAGE_TOKEN = re.compile(
    r"\b(?:[cpy]{0,2}[tnm][0-4x][a-d]?\d?|(?:ii|iii|iv)[abc]?[1-3]?|i[abc][1-3]?)\b", re.IGNORECASE
)
_WHAT_IF = re.compile(
    r"^\s*(?:what\s+if|what\s+would\s+happen\s+if|suppose|assume|assuming|if|"
    r"was\s+wäre\s*,?\s+wenn|was\s+waere\s*,?\s+wenn|was\s+wenn|angenommen|wenn)\b[\s,:]*",
    re.IGNORECASE,
)
_ORDINALS: dict[str, int] = {
    "first": 1,
    "1st": 1,
    "erste": 1,
    "ersten": 1,
    "erstes": 1,
    "second": 2,
    "2nd": 2,
    "zweite": 2,
    "zweiten": 2,
    "zweites": 2,
    "third": 3,
    "3rd": 3,
    "dritte": 3,
    "dritten": 3,
    "drittes": 3,
}
_KIND_WORDS: dict[str, int] = {
    "evidence priority": 1,
    "evidence_priority": 1,
    "lowest risk": 2,
    "lowest_risk": 2,
    "niedrigste risiko": 2,
    "geringste risiko": 2,
    "innovative": 3,
    "innovativ": 3,
}


class SourceRef(BaseModel):
    """Where a fact in an answer comes from."""

    kind: Literal["report", "trace", "evidence", "fork"]
    ref: str = Field(description="A report field path, a trace id with event number, or a document id.")
    label: str = Field(description="What the source is, for a reader.")


class DiffRow(BaseModel):
    """One compared report field of a what-if fork."""

    field: str
    label: str
    before: str
    after: str
    changed: bool


class WhatIfDiff(BaseModel):
    """The difference between the recorded report and a what-if fork of its run."""

    change: str = Field(description="The change applied, as read from the question.")
    method: Literal["checkpoint_fork"] = "checkpoint_fork"
    forked_from: str = Field(description="The checkpoint (after the extractor) the fork started from.")
    rows: list[DiffRow]
    report: ConsultReport = Field(description="The forked report (never stored).")


class ChatReply(BaseModel):
    """The answer to one chat message."""

    answer: str
    sources: list[SourceRef]
    intent: Intent
    language: Language
    facts: list[str] = Field(description="The deterministic answer lines the answer rests on.")
    phrased_by: str = Field(default="rules", description="'rules', or the model that phrased the facts.")
    diff: WhatIfDiff | None = None


class CaseNotFound(LookupError):
    """No report for this case id."""


@dataclass(frozen=True)
class FindingsChange:
    """Changed findings read from a what-if question."""

    biomarkers: tuple[Biomarker, ...] = ()
    ecog: int | None = None
    labs: tuple[tuple[str, float], ...] = ()
    conditions: tuple[str, ...] = ()
    age: int | None = None

    @property
    def empty(self) -> bool:
        """Whether nothing was read."""
        return not (self.biomarkers or self.labs or self.conditions) and self.ecog is None and self.age is None

    def describe(self) -> str:
        """The change in a few words."""
        parts = [f"{b.name} {b.status}" for b in self.biomarkers]
        if self.ecog is not None:
            parts.append(f"ECOG {self.ecog}")
        parts += [f"{key} {value:g}" for key, value in self.labs]
        parts += list(self.conditions)
        if self.age is not None:
            parts.append(f"age {self.age}")
        return ", ".join(parts)

    def apply(self, findings: Findings) -> Findings:
        """The findings with this change applied (a changed biomarker replaces the recorded one)."""
        names = {b.name for b in self.biomarkers}
        biomarkers = tuple(b for b in findings.biomarkers if b.name not in names) + self.biomarkers
        labs = {**findings.labs, **dict(self.labs)}
        conditions = findings.conditions + tuple(c for c in self.conditions if c not in findings.conditions)
        update: dict[str, Any] = {"biomarkers": biomarkers, "labs": labs, "conditions": conditions}
        if self.ecog is not None:
            update["ecog"] = self.ecog
        if self.age is not None:
            update["age"] = self.age
        return findings.model_copy(update=update)


def parse_what_if(message: str, lang: Language) -> FindingsChange | None:
    """The findings change of a what-if question; ``None`` when the message is no what-if question.

    The part after "what if" / "was wäre wenn" is read by the case extractor itself, so the chat
    understands exactly the vocabulary the consultation understands.
    """
    match = _WHAT_IF.match(message)
    if match is None:
        return None
    fragment = message[match.end() :].strip().rstrip("?!. ")
    from tools.extraction import extract_findings
    from tools.extraction.biomarkers import find_biomarkers
    from tools.extraction.negation import TextContext

    found = extract_findings(fragment, lang)
    biomarkers, _ = find_biomarkers(fragment, TextContext(fragment), [])
    return FindingsChange(
        biomarkers=tuple(b for b in biomarkers if b.status != "unknown"),
        ecog=found.ecog,
        labs=tuple(sorted(found.labs.items())),
        conditions=tuple(found.conditions),
        age=found.age,
    )


def _mentions(lowered: str, name: str) -> bool:
    """Whether a lower-cased message names ``name`` as a word ("ER" is not in "where")."""
    return re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", lowered) is not None


def classify(message: str, report: ConsultReport | None = None) -> tuple[Intent, int | None]:
    """The intent of a question and the scheme number it names (1-3), if any."""
    lowered = f" {message.lower()} "
    if _WHAT_IF.match(message):
        return "what_if", None
    # A keyword counts where a word starts with it ("kodier" in "Kodierung", never "plan" in "explain").
    scores: dict[Intent, int] = {
        intent: sum(re.search(rf"(?<!\w){re.escape(k)}", lowered) is not None for k in words)
        for intent, words in _KEYWORDS.items()
    }
    if report is not None and any(_mentions(lowered, b.name) for b in report.biomarkers):
        scores["biomarkers"] += 1
    if _STAGE_TOKEN.search(message):
        scores["stage"] += 1
    scheme_no = next((n for word, n in _ORDINALS.items() if re.search(rf"\b{word}\b", lowered)), None)
    scheme_no = scheme_no or next((n for word, n in _KIND_WORDS.items() if word in lowered), None)
    if scheme_no is not None:
        scores["scheme"] += 1
    if scores["evidence"] and scores["scheme"]:
        return "scheme_evidence", scheme_no
    best = max(scores.items(), key=lambda item: item[1])
    if best[1] == 0:
        return "summary", None
    # Ties go to the order of _KEYWORDS: specific intents first, the generic 'scheme' last.
    return best[0], scheme_no


class ChatEngine:
    """Answers chat messages about recorded consultations of one ConsultService."""

    def __init__(self, service: ConsultService, *, use_llm: bool = True) -> None:
        """Bind to a service; ``use_llm=False`` keeps the deterministic wording even with a model."""
        self.service = service
        self.use_llm = use_llm

    # ------------------------------------------------------------------ public

    def report(self, case_id: str) -> ConsultReport:
        """The stored report of a case."""
        from graphs.service import ReportNotFound

        try:
            return self.service.get_report(case_id)
        except ReportNotFound as exc:
            raise CaseNotFound(case_id) from exc

    def ask(self, case_id: str, message: str, *, lang: Language | None = None) -> ChatReply:
        """Answer one message about a case, in ``lang`` (the case's language by default)."""
        report = self.report(case_id)
        language: Language = lang or report.language
        events = self._events(report)
        intent, scheme_no = classify(message, report)
        diff: WhatIfDiff | None = None
        if intent == "what_if":
            facts, sources, diff = self._what_if(report, message, language)
        else:
            facts, sources = self._answer(intent, scheme_no, message, report, events, language)
        answer, phrased_by = self._phrase(facts, message, language)
        logger.info("chat on %s: intent %s, %d sources", case_id, intent, len(sources))
        return ChatReply(
            answer=answer,
            sources=sources,
            intent=intent,
            language=language,
            facts=facts,
            phrased_by=phrased_by,
            diff=diff,
        )

    # ------------------------------------------------------------------ answers

    def _events(self, report: ConsultReport) -> list[TraceEvent]:
        if report.trace_id is None:
            return []
        return load_trace(self.service.db, self.service.keyring, report.trace_id)

    def _answer(
        self,
        intent: Intent,
        scheme_no: int | None,
        message: str,
        report: ConsultReport,
        events: Sequence[TraceEvent],
        lang: Language,
    ) -> tuple[list[str], list[SourceRef]]:
        trace = _TraceIndex(report.trace_id, events, lang)
        if intent == "stage":
            return self._stage(report, trace, lang)
        if intent == "codes":
            return self._codes(report, trace, lang)
        if intent == "biomarkers":
            return self._biomarkers(message, report, trace, lang)
        if intent in ("scheme", "scheme_evidence"):
            return self._scheme(scheme_no, intent == "scheme_evidence", report, trace, lang)
        if intent == "evidence":
            return self._evidence(report, trace, lang)
        if intent == "compliance":
            return self._compliance(report, trace, lang)
        if intent == "safety":
            return self._safety(report, trace, lang)
        if intent == "trace":
            return self._trace(events, report, lang)
        if intent == "tumour":
            return self._tumour(report, trace, lang)
        return [text("ans.summary", lang, case=report.case_id, status=report.status)] + _summary(report), [
            _report_src("status", lang)
        ]

    def _stage(self, report: ConsultReport, trace: _TraceIndex, lang: Language) -> tuple[list[str], list[SourceRef]]:
        if not report.tumors:
            return [text("ans.stage.none", lang)], [_report_src("tumors", lang)]
        facts: list[str] = []
        sources: list[SourceRef] = []
        for i, tumor in enumerate(report.tumors):
            t = tumor.tnm
            tnm = " ".join(
                f"{t.prefix or ''}{x}" if j == 0 else x for j, x in enumerate(v for v in (t.t, t.n, t.m) if v)
            )
            facts.append(
                text("ans.stage.tumour", lang, site=tumor.site, tnm=tnm or "TNM n/a", stage=t.stage_group or "n/a")
            )
            if t.rationale:
                facts.append(text("ans.stage.rationale", lang))
                facts += [f"- {line}" for line in t.rationale]
            sources.append(_report_src(f"tumors[{i}].tnm.rationale", lang))
        sources += trace.refs("tool_call", "stage_tumor") + trace.refs("node_end", "tnm_stager")
        return facts, sources

    def _codes(self, report: ConsultReport, trace: _TraceIndex, lang: Language) -> tuple[list[str], list[SourceRef]]:
        if not report.icd10:
            return [text("ans.codes.none", lang)], [_report_src("icd10", lang)]
        facts = [text("ans.codes.head", lang)]
        for code in report.icd10:
            system = " (ICD-10-CM)" if code.system == "ICD-10-CM" else ""
            facts.append(f"- {code.code}{system} [{code.role}] {code.description} — {code.rule}")
        return facts, [_report_src("icd10", lang), *trace.refs("tool_call", "code_case")]

    def _biomarkers(
        self, message: str, report: ConsultReport, trace: _TraceIndex, lang: Language
    ) -> tuple[list[str], list[SourceRef]]:
        if not report.biomarkers:
            return [text("ans.biomarkers.none", lang)], [_report_src("biomarkers", lang)]
        lowered = message.lower()
        named = [b for b in report.biomarkers if _mentions(lowered, b.name)] or list(report.biomarkers)
        facts = [text("ans.biomarkers.head", lang)] + [f"- {b.name}: {b.result} ({b.status})" for b in named]
        return facts, [_report_src("biomarkers", lang), *trace.refs("tool_call", "extract_findings")]

    def _scheme(
        self, scheme_no: int | None, evidence: bool, report: ConsultReport, trace: _TraceIndex, lang: Language
    ) -> tuple[list[str], list[SourceRef]]:
        if not report.schemes:
            return [text("ans.scheme.none", lang)], [_report_src("schemes", lang)]
        if scheme_no is not None and scheme_no > len(report.schemes):
            return [text("ans.scheme.missing", lang, count=len(report.schemes), n=scheme_no)], [
                _report_src("schemes", lang)
            ]
        numbers = [scheme_no] if scheme_no else list(range(1, len(report.schemes) + 1))
        titles = {e.id: e for e in report.evidence}
        facts: list[str] = []
        sources: list[SourceRef] = []
        for n in numbers:
            scheme = report.schemes[n - 1]
            facts.append(text("ans.scheme.head", lang, n=n, kind=scheme.kind, title=scheme.title))
            facts.append(text("ans.scheme.drugs", lang, treatments=_treatments(scheme)))
            if scheme.bases.literature:
                items = "; ".join(
                    f"{doc} — {titles[doc].title}" + (f" ({titles[doc].year})" if titles[doc].year else "")
                    if doc in titles
                    else doc
                    for doc in scheme.bases.literature
                )
                facts.append(text("ans.scheme.literature", lang, items=items))
                sources += [
                    SourceRef(kind="evidence", ref=doc, label=titles[doc].title if doc in titles else doc)
                    for doc in scheme.bases.literature
                ]
            elif evidence:
                basis = scheme.guideline_ref or "—"
                facts.append(text("ans.scheme.noliterature", lang, basis=basis))
            if evidence or scheme_no:
                facts.append(scheme.rationale)
                if scheme.bases.patient_data:
                    facts.append(text("ans.scheme.patient", lang, items="; ".join(scheme.bases.patient_data)))
            sources.append(_report_src(f"schemes[{n - 1}]", lang))
        sources += trace.refs("tool_call", "draft_schemes", last=True)
        return facts, sources

    def _evidence(self, report: ConsultReport, trace: _TraceIndex, lang: Language) -> tuple[list[str], list[SourceRef]]:
        if not report.evidence:
            return [text("ans.evidence.none", lang)], [_report_src("evidence", lang)]
        facts = [text("ans.evidence.head", lang)]
        for hit in report.evidence:
            meta = ", ".join(str(x) for x in (hit.year, hit.level) if x)
            facts.append(f"- {hit.id}: {hit.title}" + (f" ({meta})" if meta else ""))
        sources = [SourceRef(kind="evidence", ref=h.id, label=h.title) for h in report.evidence]
        return facts, [_report_src("evidence", lang), *sources, *trace.refs("node_end", "literature_searcher")]

    def _compliance(
        self, report: ConsultReport, trace: _TraceIndex, lang: Language
    ) -> tuple[list[str], list[SourceRef]]:
        c = report.compliance
        if c is None:
            return [text("ans.compliance.none", lang)], [_report_src("compliance", lang)]
        facts = [
            text(
                "ans.compliance",
                lang,
                score=c.score,
                level=c.level,
                threshold=c.threshold,
                passed=c.passed,
                iterations=c.iterations,
            )
        ]
        if c.scheme_scores:
            facts.append(", ".join(f"{kind}: {score}" for kind, score in c.scheme_scores.items()))
        if c.findings:
            facts.append(text("ans.compliance.findings", lang))
            facts += [f"- {finding}" for finding in c.findings]
        return facts, [_report_src("compliance", lang), *trace.refs("tool_call", "check_compliance")]

    def _safety(self, report: ConsultReport, trace: _TraceIndex, lang: Language) -> tuple[list[str], list[SourceRef]]:
        facts = [text("ans.safety", lang, status=report.safety.status, report_status=report.status)]
        for f in report.safety.findings:
            drug = f"{f.drug}: " if f.drug else ""
            facts.append(
                "- " + text("ans.safety.finding", lang, severity=f.severity, drug=drug, reason=f.reason, basis=f.basis)
            )
        if not report.safety.findings:
            facts.append(text("ans.safety.nofindings", lang))
        if report.approval is not None:
            facts.append(text("ans.safety.approval", lang, decision=report.approval.decision, by=report.approval.by))
        sources = [_report_src("safety", lang), *trace.refs("tool_call", "review_safety")]
        return facts, sources + trace.refs("node_end", "locked")

    def _trace(
        self, events: Sequence[TraceEvent], report: ConsultReport, lang: Language
    ) -> tuple[list[str], list[SourceRef]]:
        facts = [text("ans.trace.head", lang, trace=report.trace_id)]
        for ev in events:
            if ev.kind == "node_end":
                ms = f" ({ev.duration_ms:.0f} ms)" if ev.duration_ms is not None else ""
                facts.append(f"- #{ev.seq} {text('node.' + ev.name, lang)}{ms}")
        return facts, [SourceRef(kind="trace", ref=str(report.trace_id), label=text("src.trace", lang))]

    def _tumour(self, report: ConsultReport, trace: _TraceIndex, lang: Language) -> tuple[list[str], list[SourceRef]]:
        if not report.tumors:
            return [text("report.nononc", lang)], [_report_src("tumors", lang)]
        facts = []
        for tumor in report.tumors:
            facts.append(
                text(
                    "ans.tumour",
                    lang,
                    primary=text("ans.tumour.primary" if tumor.primary else "ans.tumour.other", lang),
                    site=tumor.site,
                    subsite=f" ({tumor.subsite})" if tumor.subsite else "",
                    histology=tumor.histology or "—",
                    laterality=f", {tumor.laterality}" if tumor.laterality else "",
                )
            )
        return facts, [_report_src("tumors", lang), *trace.refs("tool_call", "extract_findings")]

    # ------------------------------------------------------------------ what-if

    def _what_if(
        self, report: ConsultReport, message: str, lang: Language
    ) -> tuple[list[str], list[SourceRef], WhatIfDiff | None]:
        change = parse_what_if(message, lang)
        if change is None or change.empty:
            return [text("ans.whatif.none", lang)], [], None
        if report.trace_id is None:
            return [text("ans.whatif.notrace", lang)], [], None
        try:
            forked, checkpoint_id = self.fork(report, change)
        except LookupError:
            # Rejected at intake: the run never reached the extractor, so there is nothing to fork.
            return [text("ans.whatif.notrace", lang)], [], None
        rows = diff_reports(report, forked, lang)
        diff = WhatIfDiff(change=change.describe(), forked_from=checkpoint_id, rows=rows, report=forked)
        facts = [text("ans.whatif.head", lang, change=diff.change)]
        changed = [row for row in rows if row.changed]
        if changed:
            facts.append(text("ans.whatif.changed", lang, fields=", ".join(row.label for row in changed)))
            facts += [f"- {row.label}: {row.before} -> {row.after}" for row in changed]
        else:
            facts.append(text("ans.whatif.unchanged", lang))
        sources = [
            SourceRef(kind="trace", ref=f"{report.trace_id}@{checkpoint_id}", label=text("src.fork", lang)),
            _report_src("status", lang),
        ]
        return facts, sources, diff

    def fork(self, report: ConsultReport, change: FindingsChange) -> tuple[ConsultReport, str]:
        """Re-run a recorded consultation from after its extractor with changed findings.

        Returns the forked report (not stored) and the id of the checkpoint it was forked from.
        """
        from agents.base import ConsultContext
        from agents.report import compose_report

        if report.trace_id is None:
            raise ValueError(f"report {report.case_id} has no recorded run")
        with self._graph() as (graph, saver):
            original = {"configurable": {"thread_id": report.trace_id}}
            after_extractor = next(
                (s for s in graph.get_state_history(original) if set(s.next) == {"tnm_stager", "icd10_coder"}),
                None,
            )
            if after_extractor is None:
                raise LookupError(f"no checkpoint after the extractor in run {report.trace_id}")
            recorded = saver.get_tuple(after_extractor.config)
            thread = f"{report.trace_id}.whatif-{uuid.uuid4().hex[:12]}"
            try:
                checkpoint = recorded.checkpoint
                copied = saver.put(
                    {"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
                    checkpoint,
                    recorded.metadata,
                    checkpoint["channel_versions"],
                )
                findings = change.apply(after_extractor.values["findings"])
                config = graph.update_state(copied, {"findings": findings}, as_node="extractor")
                run = self._recorded_run(report)
                result = graph.invoke(None, config, context=ConsultContext(run=run))
                if "report" in result:
                    forked: ConsultReport = result["report"]
                else:
                    # Paused at the emergency-stop interrupt: compose the locked report from the state.
                    state = graph.get_state({"configurable": {"thread_id": thread}}).values
                    forked = compose_report(state, llm_name=self.service.llm.describe, trace_id=None)
            finally:
                saver.delete_thread(thread)
        return forked.model_copy(update={"trace_id": None}), str(
            after_extractor.config["configurable"]["checkpoint_id"]
        )

    def _recorded_run(self, report: ConsultReport) -> Any:
        """The run settings the case was consulted with (thresholds, editions), so the fork differs only
        in the changed findings."""
        from dataclasses import fields

        from oncoboard.config import RunContext
        from oncoboard.llm import NoModel

        events = self._events(report)
        recorded = events[0].payload.get("run", {}) if events and events[0].kind == "run_start" else {}
        names = {f.name for f in fields(RunContext)}
        run = RunContext(**{k: v for k, v in recorded.items() if k in names})
        if isinstance(self.service.llm, NoModel) and run.use_llm:
            run = RunContext(**{**run.__dict__, "use_llm": False})
        return run

    @contextmanager
    def _graph(self) -> Iterator[tuple[Any, Any]]:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg import Connection
        from psycopg.rows import dict_row

        from graphs.consult import build_consult_graph
        from graphs.service import checkpoint_serializer

        svc = self.service
        with Connection.connect(svc.db.url, autocommit=True, prepare_threshold=0, row_factory=dict_row) as conn:
            saver = PostgresSaver(conn, serde=checkpoint_serializer(svc.keyring))  # type: ignore[arg-type]
            graph = build_consult_graph(
                llm=svc.llm, retriever=svc.retriever, verifier=svc.verifier, checkpointer=saver, drafter=svc.drafter
            )
            yield graph, saver

    # ------------------------------------------------------------------ phrasing

    def _phrase(self, facts: list[str], question: str, lang: Language) -> tuple[str, str]:
        from agents.grounding import unsupported_by_facts
        from oncoboard.llm import LLMError, Message, NoModel

        deterministic = "\n".join(facts)
        llm = self.service.llm
        if not self.use_llm or isinstance(llm, NoModel):
            return deterministic, "rules"
        from prompts import render_prompt

        prompt = render_prompt("chat_answer", lang, facts=deterministic, question=question)
        try:
            phrased = llm.generate([Message("user", prompt)], max_tokens=256, temperature=0.0).strip()
        except LLMError as exc:
            logger.warning("chat phrasing failed, answering with the facts as they are: %s", exc)
            return deterministic, "rules"
        problems = unsupported_by_facts(phrased, deterministic + "\n" + question)
        if problems:
            logger.warning("model phrasing dropped, answering with the facts as they are: %s", "; ".join(problems))
            return deterministic, "rules"
        return phrased, llm.describe


class _TraceIndex:
    """Trace events by kind and name, as answer sources."""

    def __init__(self, trace_id: str | None, events: Sequence[TraceEvent], lang: Language) -> None:
        self.trace_id = trace_id
        self.events = events
        self.lang = lang

    def refs(self, kind: str, name: str, *, last: bool = False) -> list[SourceRef]:
        """Sources for the matching events (the last one only with ``last``)."""
        matching = [ev for ev in self.events if ev.kind == kind and ev.name == name]
        if last:
            matching = matching[-1:]
        return [
            SourceRef(
                kind="trace", ref=f"{ev.trace_id}#{ev.seq}", label=f"{text('src.trace', self.lang)}: {kind} {name}"
            )
            for ev in matching
        ]


def _report_src(path: str, lang: Language) -> SourceRef:
    return SourceRef(kind="report", ref=path, label=f"{text('src.report', lang)}: {path}")


def _treatments(scheme: Scheme) -> str:
    parts = []
    for t in scheme.treatments:
        detail = ", ".join(x for x in (t.dose, t.schedule) if x)
        parts.append(f"{t.name}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts) or "—"


def _summary(report: ConsultReport) -> list[str]:
    lines = []
    for tumor in report.tumors[:1]:
        lines.append(f"- {tumor.site}, {tumor.histology or '—'}, stage {tumor.tnm.stage_group or 'n/a'}")
    primary = [c.code for c in report.icd10 if c.role == "primary"]
    if primary:
        lines.append(f"- ICD-10 {primary[0]}")
    lines += [f"- {s.kind}: {s.title}" for s in report.schemes]
    return lines


def _stage_text(report: ConsultReport) -> str:
    parts = []
    for tumor in report.tumors:
        t = tumor.tnm
        cats = " ".join(x for x in (t.t, t.n, t.m) if x)
        parts.append(f"{tumor.site} {(t.prefix or '') + cats if cats else 'TNM n/a'} / {t.stage_group or 'n/a'}")
    return "; ".join(parts) or "—"


def _drugs(scheme: Scheme) -> str:
    drugs = [d for t in scheme.treatments for d in (t.drugs or [t.name])]
    return ", ".join(drugs) or "—"


def diff_reports(before: ConsultReport, after: ConsultReport, lang: Language) -> list[DiffRow]:
    """Stage, codes, each scheme's drugs, compliance and safety of two reports, side by side."""
    rows: list[tuple[str, str, str, str]] = [
        ("status", text("diff.status", lang), before.status, after.status),
        ("stage", text("diff.stage", lang), _stage_text(before), _stage_text(after)),
        (
            "icd10",
            text("diff.codes", lang),
            ", ".join(c.code for c in before.icd10 if c.system != "ICD-10-CM") or "—",
            ", ".join(c.code for c in after.icd10 if c.system != "ICD-10-CM") or "—",
        ),
    ]
    kinds = [s.kind for s in before.schemes] + [
        s.kind for s in after.schemes if s.kind not in {x.kind for x in before.schemes}
    ]
    for kind in kinds:
        old = next((s for s in before.schemes if s.kind == kind), None)
        new = next((s for s in after.schemes if s.kind == kind), None)
        rows.append(
            (
                f"schemes.{kind}",
                text("diff.scheme", lang, kind=kind),
                _drugs(old) if old else "—",
                _drugs(new) if new else "—",
            )
        )

    def compliance(r: ConsultReport) -> str:
        return f"{r.compliance.score} ({r.compliance.level})" if r.compliance else "—"

    def safety(r: ConsultReport) -> str:
        critical = sorted({f.drug for f in r.safety.findings if f.severity == "critical" and f.drug})
        return r.safety.status + (f": {', '.join(critical)}" if critical else "")

    rows.append(("compliance", text("diff.compliance", lang), compliance(before), compliance(after)))
    rows.append(("safety", text("diff.safety", lang), safety(before), safety(after)))
    return [DiffRow(field=f, label=label, before=b, after=a, changed=b != a) for f, label, b, a in rows]
