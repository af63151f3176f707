"""The retrieval experiment: consult the dev cases with and without literature retrieval.

For each arm: the share of cited documents (the literature ids a scheme names as its basis)
published in the last three years, the share of level-1 evidence among them, and the
literature-patient feature match (a cited document's tumour type is the patient's primary site,
and every biomarker it is about is one the patient was tested for). Without retrieval the schemes
rest on the guideline tables alone, so they cite nothing: that is the comparison.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from pathlib import Path
from typing import Any

from evaluation.cases_eval import CASES_DIR, load_cases
from oncoboard.config import RunContext
from oncoboard.domain import CaseInput, ConsultReport


def _arm(reports: list[ConsultReport], meta: dict[str, Any], now_year: int) -> dict[str, Any]:
    cited: list[tuple[ConsultReport, str]] = [
        (r, doc) for r in reports for s in r.schemes for doc in s.bases.literature if doc in meta
    ]
    recent = [doc for _, doc in cited if (meta[doc].year or 0) >= now_year - 2]
    level1 = [doc for _, doc in cited if (meta[doc].evidence_level or "").startswith("1")]
    matched = 0
    for report, doc in cited:
        info = meta[doc]
        site = report.tumors[0].site if report.tumors else None
        tested = {b.name.upper() for b in report.biomarkers}
        if info.tumour_type == site and all(m.upper() in tested for m in info.biomarkers):
            matched += 1
    per_case = [len({d for s in r.schemes for d in s.bases.literature}) for r in reports]
    return {
        "cases": len(reports),
        "cited_documents": len(cited),
        "cases_with_citations": sum(1 for n in per_case if n),
        "mean_citations_per_case": round(statistics.mean(per_case), 2) if per_case else 0.0,
        "share_last_3_years": round(len(recent) / len(cited), 3) if cited else None,
        "share_level_1": round(len(level1) / len(cited), 3) if cited else None,
        "feature_match": round(matched / len(cited), 3) if cited else None,
        "mean_compliance": round(statistics.mean([r.compliance.score for r in reports if r.compliance]), 1)
        if any(r.compliance for r in reports)
        else None,
    }


def evaluate_rag(folder: Path = CASES_DIR, *, now_year: int | None = None) -> dict[str, Any]:
    """Both arms over the oncology cases of the dev set."""
    from app.wiring import build_service
    from graphs.service import ConsultService

    with_retrieval = build_service(no_llm=True)
    without = ConsultService(
        db=with_retrieval.db, keyring=with_retrieval.keyring, llm=with_retrieval.llm, verifier=with_retrieval.verifier
    )
    run = RunContext(use_llm=False)
    cases = [c for c in load_cases(folder) if c.gold.oncology]
    arms: dict[str, list[ConsultReport]] = {"with_retrieval": [], "without_retrieval": []}
    for case in cases:
        inp = CaseInput(text=case.text, lang=case.lang)
        arms["with_retrieval"].append(with_retrieval.consult(inp, run))
        arms["without_retrieval"].append(without.consult(inp, run))
    store = with_retrieval.retriever.store  # type: ignore[union-attr]
    meta = store.document_meta()
    year = now_year or _dt.date.today().year
    return {name: _arm(reports, meta, year) for name, reports in arms.items()}
