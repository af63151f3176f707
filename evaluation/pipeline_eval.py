"""Whole-pipeline evaluations: extractor + stager on TCGA reports, and the full graph over case folders."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from evaluation.contract import contract_problems
from evaluation.tnm_eval import evaluate_tcga
from oncoboard.lang import detect_language
from tools.extraction import extract_findings
from tools.tnm import stage_tumor


def _pipeline_predict(row: dict[str, Any]) -> dict[str, str | None]:
    """T/N/M as the consult graph computes them: extraction from the text, then the stager."""
    text = str(row.get("text", ""))
    findings = extract_findings(text, detect_language(text))
    primary = next((t for t in findings.tumors if t.primary), None)
    if primary is None:
        return {"t": None, "n": None, "m": None, "stage_group": None}
    tnm = stage_tumor(primary, findings).tnm
    return {"t": tnm.t, "n": tnm.n, "m": tnm.m, "stage_group": tnm.stage_group}


def evaluate_tnm_pipeline(path: str | Path) -> dict[str, Any]:
    """TCGA T/N/M accuracy of extractor + stager (the registry labels as reference)."""
    return evaluate_tcga(path, predict=_pipeline_predict)


def evaluate_consultations(folder: Path) -> dict[str, Any]:
    """Consult every case in ``folder`` (no language model) and summarise status, compliance and the contract."""
    from app.caseio import parse_case_bytes
    from app.wiring import build_service
    from oncoboard.config import RunContext

    service = build_service(no_llm=True)
    cases = sorted(p for p in folder.iterdir() if p.suffix in {".txt", ".json"})
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    for path in cases:
        started = time.perf_counter()
        report = service.consult(parse_case_bytes(path.read_bytes()), RunContext(use_llm=False))
        latencies.append(time.perf_counter() - started)
        rows.append(
            {
                "case": path.name,
                "status": report.status,
                "oncology": report.oncology,
                "stage": report.tumors[0].tnm.stage_group if report.tumors else None,
                "primary_icd10": next((c.code for c in report.icd10 if c.role == "primary"), None),
                "compliance": report.compliance.score if report.compliance else None,
                "iterations": report.compliance.iterations if report.compliance else None,
                "safety": report.safety.status,
                "limited_evidence": report.limited_evidence,
                "contract_problems": contract_problems(report),
            }
        )
    scores = [r["compliance"] for r in rows if r["compliance"] is not None]
    return {
        "cases": len(rows),
        "status": dict(Counter(r["status"] for r in rows)),
        "mean_compliance": round(statistics.mean(scores), 1) if scores else None,
        "qualified_share": round(sum(s >= 80 for s in scores) / len(scores), 3) if scores else None,
        "contract_violations": sum(bool(r["contract_problems"]) for r in rows),
        "median_latency_s": round(statistics.median(latencies), 2) if latencies else None,
        "per_case": rows,
    }
