"""The promises of CONTRACT.md that every ConsultReport must keep, as a checkable list."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from oncoboard.domain import LIMITED_EVIDENCE_TEXT, SCHEME_KINDS, ConsultReport


@lru_cache(maxsize=1)
def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of the report (what ``oncoboard schema`` prints)."""
    return ConsultReport.model_json_schema()


def contract_problems(report: ConsultReport) -> list[str]:
    """Every broken promise of the report contract (empty when the report keeps them all)."""
    import jsonschema

    problems: list[str] = []
    data = json.loads(report.model_dump_json())
    try:
        jsonschema.validate(data, report_json_schema())
    except jsonschema.ValidationError as exc:
        problems.append(f"schema: {exc.message}")
    if report.status == "rejected":
        if not report.error:
            problems.append("a rejected report must carry an error")
        return problems
    primaries = [c for c in report.icd10 if c.role == "primary"]
    if report.oncology:
        if len(primaries) != 1:
            problems.append(f"an oncology case needs exactly one primary ICD-10 code, has {len(primaries)}")
        if not report.tumors or not report.tumors[0].primary:
            problems.append("tumors[0] must be the primary tumour")
        if report.schemes and tuple(s.kind for s in report.schemes) != SCHEME_KINDS:
            problems.append("schemes must be evidence_priority, lowest_risk, innovative in that order")
    else:
        if report.tumors or report.schemes or primaries:
            problems.append("a non-oncology case has no tumours, schemes or primary code")
        if any(c.code[:1] in {"C", "D"} for c in report.icd10):
            problems.append("a non-oncology case has no C/D codes")
        if report.status != "final":
            problems.append("a non-oncology case is final")
    for tumor in report.tumors:
        for category in (tumor.tnm.t, tumor.tnm.n, tumor.tnm.m):
            if category is not None and category[:1] not in {"T", "N", "M"}:
                problems.append(f"TNM category written with its prefix: {category}")
    critical = {f.drug for f in report.safety.findings if f.severity == "critical" and f.drug}
    if (
        critical
        and report.status != "locked"
        and (report.approval is None or report.approval.decision != "approved")
    ):
        problems.append("a critical safety finding without a chief's approval must lock the report")
    if (
        report.safety.status == "emergency_stop"
        and report.status not in {"locked"}
        and report.approval is None
    ):
        problems.append("an emergency stop must lock the report")
    for scheme in report.schemes:
        if scheme.limited_evidence and LIMITED_EVIDENCE_TEXT not in scheme.rationale:
            problems.append(f"{scheme.kind}: limited evidence without the required text")
    if not report.trace_id:
        problems.append("no trace id")
    return problems
