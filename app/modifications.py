"""Clinicians' changes to a recorded treatment scheme.

An attending or chief replaces one scheme's treatments (and optionally its title and rationale)
with a mandatory reason. The change is applied to the stored report, its before/after is kept
encrypted in ``scheme_modifications`` (material for later fine-tuning), and a ``decision`` event
is appended to the report's hash-chained trace, all in one transaction.

Guideline compliance is scored again over the changed schemes; a ``final`` report whose score
falls under the threshold becomes ``needs_review`` (a change never promotes a report's status).

Safety: the patient's findings are not stored, so they are derived again from the stored
de-identified case with the same deterministic extractor the graph uses, and the changed scheme is
run through :func:`tools.safety.review_safety`. A change is refused when that review finds anything
critical, or when it adds a drug that the report's own safety review flagged critical. Warnings of
the new review are added to the report's safety findings.

Locked reports are refused: a chief's decision rebuilds the report from the paused run, which would
silently drop the change; the decision comes first, changes after.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

from graphs.service import PermissionDenied
from oncoboard.audit import TraceRecorder, load_trace, persist_events
from oncoboard.crypto import Keyring
from oncoboard.domain import (
    LIMITED_EVIDENCE_TEXT,
    Compliance,
    ConsultReport,
    Findings,
    ReportStatus,
    Role,
    Safety,
    SafetyFinding,
    Scheme,
    SchemeKind,
    StructuredData,
    Treatment,
)
from oncoboard.storage import Database

logger = logging.getLogger(__name__)


class ModificationError(RuntimeError):
    """A scheme change cannot be applied."""


class ReportMissing(ModificationError, LookupError):
    """No stored report for the case."""


class SchemeMissing(ModificationError, LookupError):
    """The report has no scheme of this kind."""


class ReportLocked(ModificationError):
    """The report is locked by an emergency stop; a chief must decide first."""


class UnsafeModification(ModificationError):
    """The changed scheme fails the safety rules."""

    def __init__(self, findings: list[SafetyFinding]) -> None:
        self.findings = findings
        names = ", ".join(sorted({f"{f.drug}: {f.reason}" for f in findings}))
        super().__init__(f"the changed scheme fails the safety rules ({names})")


@dataclass(frozen=True)
class SchemeChange:
    """What a clinician asks to change."""

    treatments: list[Treatment]
    reason: str
    title: str | None = None
    rationale: str | None = None


def _case_findings(db: Database, keyring: Keyring, case_id: str) -> Findings:
    """The findings of the stored case, extracted again (deterministic, no language model)."""
    from tools.extraction import extract_findings

    with db.connect() as conn:
        row = conn.execute("SELECT payload, key_id FROM cases WHERE case_id = %s", (case_id,)).fetchone()
    if row is None:
        raise ReportMissing(case_id)
    doc = json.loads(keyring.decrypt(row["payload"], row["key_id"], case_id.encode()))
    return extract_findings(
        text=doc["text"],
        lang=doc["language"],
        structured=StructuredData.model_validate(doc.get("structured") or {}),
    )


def _changed_scheme(old: Scheme, change: SchemeChange) -> Scheme:
    rationale = change.rationale or old.rationale
    if old.limited_evidence and LIMITED_EVIDENCE_TEXT not in rationale:
        rationale = f"{rationale} ({LIMITED_EVIDENCE_TEXT})"
    # The clinician's reasoning replaces the drafted one; patient data and literature stay as cited.
    bases = old.bases.model_copy(update={"model_reasoning": None})
    return old.model_copy(
        update={
            "title": change.title or old.title,
            "treatments": list(change.treatments),
            "rationale": rationale,
            "bases": bases,
        }
    )


def _merge_safety(current: Safety, added: list[SafetyFinding]) -> Safety:
    seen = {(f.drug, f.rule_id, f.severity) for f in current.findings}
    findings = list(current.findings) + [f for f in added if (f.drug, f.rule_id, f.severity) not in seen]
    severities = {f.severity for f in findings}
    status: Literal["ok", "warning", "emergency_stop"] = (
        "emergency_stop" if "critical" in severities else "warning" if "warning" in severities else "ok"
    )
    return Safety(status=status, findings=findings)


def _rescore(
    report: ConsultReport, findings: Findings, schemes: list[Scheme]
) -> tuple[Compliance | None, list[str], ReportStatus]:
    """Guideline compliance of the changed schemes; a final report under the threshold needs review."""
    from tools.guidelines import check_compliance

    if report.compliance is None or all(s.limited_evidence for s in schemes):
        return report.compliance, list(report.review_reasons), report.status
    old = report.compliance
    new = check_compliance(findings, list(report.tumors), schemes, threshold=old.threshold, iteration=old.iterations)
    reasons = [r for r in report.review_reasons if not r.startswith("guideline compliance ")]
    status = report.status
    if not new.passed:
        reasons.append(
            f"guideline compliance {new.score} is under the threshold {new.threshold} after a clinician's change"
        )
        if status == "final":
            status = "needs_review"
    return new, reasons, status


def modify_scheme(
    db: Database,
    keyring: Keyring,
    case_id: str,
    kind: SchemeKind,
    change: SchemeChange,
    *,
    by: str,
    role: Role,
) -> ConsultReport:
    """Apply a clinician's change to one scheme of a stored report; returns the updated report.

    Only an attending or a chief may change a scheme; the rule holds here, not only in the API.
    """
    if role not in ("attending", "chief"):
        raise PermissionDenied(f"a {role} may view but not modify a scheme")
    from tools.safety import review_safety

    if not change.reason.strip():
        raise ModificationError("a scheme change needs a reason")
    findings = _case_findings(db, keyring, case_id)
    with db.transaction() as conn:
        row = conn.execute("SELECT payload, key_id FROM reports WHERE case_id = %s FOR UPDATE", (case_id,)).fetchone()
        if row is None:
            raise ReportMissing(case_id)
        report = ConsultReport.model_validate_json(keyring.decrypt(row["payload"], row["key_id"], case_id.encode()))
        if report.status == "locked":
            raise ReportLocked(f"report {case_id} is locked: a chief's decision comes before any change")
        index = next((i for i, s in enumerate(report.schemes) if s.kind == kind), None)
        if index is None:
            raise SchemeMissing(f"report {case_id} has no {kind} scheme")
        before = report.schemes[index]
        after = _changed_scheme(before, change)

        review = review_safety(findings, [after])
        new_drugs = {d.lower() for t in after.treatments for d in t.drugs} - {
            d.lower() for t in before.treatments for d in t.drugs
        }
        critical = [f for f in review.findings if f.severity == "critical"]
        critical += [
            f
            for f in report.safety.findings
            if f.severity == "critical" and f.drug and f.drug.lower() in new_drugs and f not in critical
        ]
        if critical:
            raise UnsafeModification(critical)

        schemes = list(report.schemes)
        schemes[index] = after
        compliance, reasons, status = _rescore(report, findings, schemes)
        updated = report.model_copy(
            update={
                "schemes": schemes,
                "safety": _merge_safety(report.safety, review.findings),
                "compliance": compliance,
                "review_reasons": reasons,
                "status": status,
            }
        )
        # Round-trip through validation so the stored report always meets the contract's schema.
        updated = ConsultReport.model_validate_json(updated.model_dump_json())

        blob, key_id = keyring.encrypt(updated.model_dump_json().encode(), case_id.encode())
        conn.execute(
            "UPDATE reports SET payload = %s, key_id = %s, updated_at = now() WHERE case_id = %s",
            (blob, key_id, case_id),
        )
        before_blob, mod_key = keyring.encrypt(before.model_dump_json().encode(), case_id.encode())
        after_blob, _ = keyring.encrypt(after.model_dump_json().encode(), case_id.encode())
        conn.execute(
            "INSERT INTO scheme_modifications (case_id, kind, by_user, reason, before, after, key_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (case_id, kind, by, change.reason.strip(), before_blob, after_blob, mod_key),
        )
        if report.trace_id:
            events = load_trace(db, keyring, report.trace_id)
            recorder = TraceRecorder(case_id=case_id, trace_id=report.trace_id, events=list(events))
            recorder.record(
                "decision",
                "scheme_modification",
                {
                    "kind": kind,
                    "by": by,
                    "reason": change.reason.strip(),
                    "before": before.model_dump(mode="json"),
                    "after": after.model_dump(mode="json"),
                    "safety": [f.model_dump(mode="json") for f in review.findings],
                    "compliance": compliance.model_dump(mode="json") if compliance else None,
                },
            )
            tail = TraceRecorder(case_id=case_id, trace_id=report.trace_id, events=recorder.events[len(events) :])
            persist_events(conn, tail, keyring)
    logger.info("scheme %s of %s changed by %s", kind, case_id, by)
    return updated


@dataclass(frozen=True)
class Modification:
    """A recorded scheme change, decrypted."""

    case_id: str
    kind: str
    by: str
    reason: str
    before: Scheme
    after: Scheme
    at: str


def list_modifications(db: Database, keyring: Keyring, case_id: str | None = None) -> list[Modification]:
    """Recorded scheme changes (all, or one case's), oldest first."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT * FROM scheme_modifications WHERE %s::text IS NULL OR case_id = %s ORDER BY modification_id",
            (case_id, case_id),
        ).fetchall()
    return [
        Modification(
            case_id=r["case_id"],
            kind=r["kind"],
            by=r["by_user"],
            reason=r["reason"],
            before=Scheme.model_validate_json(keyring.decrypt(r["before"], r["key_id"], r["case_id"].encode())),
            after=Scheme.model_validate_json(keyring.decrypt(r["after"], r["key_id"], r["case_id"].encode())),
            at=r["at"].isoformat(),
        )
        for r in rows
    ]
