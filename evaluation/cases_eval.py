"""The dev case set: gold-labelled vignettes scored field by field through the real consult graph.

Each case in ``knowledge/cases/*.yaml`` carries gold labels for the specialists (oncology flag,
tumours with site, histology, T/N/M, prefix and AJCC 8th stage group, WHO ICD-10 codes) and for
the treatment part (drugs acceptable first in the evidence-priority scheme, and an optional
planted contraindication the safety review must catch). The evaluation consults every case
without a language model and compares the report with the gold labels.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from oncoboard.config import RunContext
from oncoboard.domain import CaseInput, ConsultReport, Site, Tumor
from oncoboard.knowledge import KnowledgeError, knowledge_path

logger = logging.getLogger(__name__)

CASES_DIR = knowledge_path("cases")

TUMOR_FIELDS: tuple[str, ...] = ("site", "histology", "t", "n", "m", "prefix", "stage_group")
METRIC_KEYS: tuple[str, ...] = (
    "cases",
    "fields",
    "icd10",
    "treatment",
    "safety",
    "compliance",
    "iterations",
    "status",
    "median_latency_s",
    "per_case",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoldTumor(_Strict):
    """One primary tumour as the case states it (T/N/M without prefix)."""

    site: Site
    subsite: str | None = None
    histology: str | None = None
    t: str | None = None
    n: str | None = None
    m: str | None = None
    prefix: Literal["c", "p", "yp"] | None = None
    stage_group: str | None = None


class GoldICD10(_Strict):
    """WHO ICD-10 2019 codes: the primary code and every further code (spread, other primaries, C97)."""

    primary: str | None = None
    secondary: list[str] = Field(default_factory=list)


class PlantedContraindication(_Strict):
    """A fact in the text that forbids a drug or a drug class."""

    drug_class_or_drug: str
    reason: str


class Gold(_Strict):
    """Gold labels of one case."""

    oncology: bool
    tumors: list[GoldTumor] = Field(default_factory=list)
    icd10: GoldICD10 = GoldICD10()
    acceptable_first_drugs: list[str] = Field(default_factory=list)
    planted_contraindication: PlantedContraindication | None = None


class DevCase(_Strict):
    """A vignette with its gold labels."""

    id: str
    lang: Literal["en", "de"]
    text: str
    gold: Gold


def load_cases(folder: Path = CASES_DIR) -> list[DevCase]:
    """Every case of the YAML files in ``folder`` (each file needs ``source`` and ``edition``), by id."""
    cases: list[DevCase] = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not data.get("source") or not data.get("edition"):
            raise KnowledgeError(f"{path.name}: case file needs top-level 'source' and 'edition'")
        cases.extend(DevCase.model_validate(raw) for raw in data.get("cases", []))
    ids = Counter(c.id for c in cases)
    duplicated = sorted(i for i, count in ids.items() if count > 1)
    if duplicated:
        raise KnowledgeError(f"duplicate case ids: {', '.join(duplicated)}")
    return cases


def _category(value: str | None) -> str | None:
    """A T/N/M category without prefix; an unassessable one (TX/NX/MX) reads as unknown."""
    if value is None:
        return None
    text = value.strip()
    for prefix in ("yp", "c", "p"):
        if text.lower().startswith(prefix) and len(text) > len(prefix) and text[len(prefix)] in "TNMtnm":
            text = text[len(prefix) :]
            break
    text = text.upper().replace("MI", "mi")
    return None if text in {"TX", "NX", "MX", ""} else text


def _group(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text[len("stage ") :].strip() if text.lower().startswith("stage ") else text


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value else None


def _predicted_fields(tumor: Tumor | None) -> dict[str, str | None]:
    if tumor is None:
        return dict.fromkeys(TUMOR_FIELDS)
    return {
        "site": tumor.site,
        "histology": _lower(tumor.histology),
        "t": _category(tumor.tnm.t),
        "n": _category(tumor.tnm.n),
        "m": _category(tumor.tnm.m),
        "prefix": tumor.tnm.prefix,
        "stage_group": _group(tumor.tnm.stage_group),
    }


def _gold_fields(tumor: GoldTumor) -> dict[str, str | None]:
    return {
        "site": tumor.site,
        "histology": _lower(tumor.histology),
        "t": _category(tumor.t),
        "n": _category(tumor.n),
        "m": _category(tumor.m),
        "prefix": tumor.prefix,
        "stage_group": _group(tumor.stage_group),
    }


def _align(gold: Sequence[GoldTumor], predicted: Sequence[Tumor]) -> list[Tumor | None]:
    """Pair each gold tumour with an unused predicted primary of the same site (None when absent)."""
    pool = [t for t in predicted if t.primary]
    pairs: list[Tumor | None] = []
    for tumor in gold:
        match = next((p for p in pool if p.site == tumor.site), None)
        if match is not None:
            pool.remove(match)
        pairs.append(match)
    return pairs


def _drug_set(name: str) -> frozenset[str]:
    """The drugs a class name (from the safety drug classes) or a single drug name stands for."""
    from tools.safety.rules import safety_knowledge

    classes = safety_knowledge().classes
    key = name.strip().lower()
    return classes.get(key, frozenset({key}))


def _who_codes(report: ConsultReport) -> tuple[str | None, set[str]]:
    who = [c for c in report.icd10 if c.system == "ICD-10-WHO-2019"]
    primary = next((c.code for c in who if c.role == "primary"), None)
    return primary, {c.code for c in who if c.code != primary}


def _evidence_drugs(report: ConsultReport) -> set[str]:
    scheme = next((s for s in report.schemes if s.kind == "evidence_priority"), None)
    if scheme is None:
        return set()
    return {drug.strip().lower() for treatment in scheme.treatments for drug in treatment.drugs}


def _all_scheme_drugs(report: ConsultReport) -> set[str]:
    return {drug.strip().lower() for s in report.schemes for t in s.treatments for drug in t.drugs}


def score_case(case: DevCase, report: ConsultReport) -> dict[str, Any]:
    """One case's row: predicted values, field verdicts and the treatment and safety outcomes."""
    gold = case.gold
    pairs = _align(gold.tumors, report.tumors)
    tumor_rows: list[dict[str, Any]] = []
    for gold_tumor, predicted in zip(gold.tumors, pairs, strict=True):
        want, got = _gold_fields(gold_tumor), _predicted_fields(predicted)
        tumor_rows.append(
            {
                "gold": want,
                "predicted": got,
                "correct": {f: want[f] == got[f] for f in TUMOR_FIELDS},
            }
        )
    primary, further = _who_codes(report)
    proposed = _evidence_drugs(report)
    acceptable = {d.lower() for d in gold.acceptable_first_drugs}
    flagged = [
        f for f in report.safety.findings if f.severity in {"warning", "critical"} and f.drug is not None
    ]
    planted = gold.planted_contraindication
    caught: bool | None = None
    proposed_planted: bool | None = None
    if planted is not None:
        members = _drug_set(planted.drug_class_or_drug)
        caught = any(f.drug is not None and f.drug.lower() in members for f in flagged)
        proposed_planted = bool(_all_scheme_drugs(report) & members)
    return {
        "id": case.id,
        "lang": case.lang,
        "oncology": {"gold": gold.oncology, "predicted": report.oncology},
        "tumors": tumor_rows,
        "icd10": {
            "gold_primary": gold.icd10.primary,
            "predicted_primary": primary,
            "gold_secondary": sorted(gold.icd10.secondary),
            "predicted_secondary": sorted(further),
        },
        "evidence_drugs": sorted(proposed),
        "concordant": bool(proposed & acceptable) if acceptable else None,
        "planted": planted.drug_class_or_drug if planted else None,
        "caught": caught,
        "planted_drug_proposed": proposed_planted,
        "critical": sorted({f.drug or f.reason for f in report.safety.findings if f.severity == "critical"}),
        "safety_status": report.safety.status,
        "status": report.status,
        "compliance": report.compliance.score if report.compliance else None,
        "iterations": report.compliance.iterations if report.compliance else None,
    }


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Field-by-field accuracy, ICD-10, treatment, safety and compliance metrics over scored rows."""
    tumors = [t for r in rows for t in r["tumors"]]
    fields: dict[str, Any] = {
        "oncology": _rate(sum(r["oncology"]["gold"] == r["oncology"]["predicted"] for r in rows), len(rows))
    }
    for field in TUMOR_FIELDS:
        fields[field] = _rate(sum(t["correct"][field] for t in tumors), len(tumors))
    fields["tumors_scored"] = len(tumors)

    icd = [r["icd10"] for r in rows]
    onc = [r["icd10"] for r in rows if r["oncology"]["gold"]]
    tp = sum(len(set(i["gold_secondary"]) & set(i["predicted_secondary"])) for i in onc)
    n_pred = sum(len(i["predicted_secondary"]) for i in onc)
    n_gold = sum(len(i["gold_secondary"]) for i in onc)
    precision, recall = _rate(tp, n_pred), _rate(tp, n_gold)
    f1 = (
        round(2 * precision * recall / (precision + recall), 3)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    icd10 = {
        "primary_accuracy": _rate(sum(i["gold_primary"] == i["predicted_primary"] for i in icd), len(icd)),
        "secondary_exact_set": _rate(
            sum(set(i["gold_secondary"]) == set(i["predicted_secondary"]) for i in onc), len(onc)
        ),
        "secondary_precision": precision,
        "secondary_recall": recall,
        "secondary_f1": f1,
    }

    with_drugs = [r for r in rows if r["concordant"] is not None]
    treatment = {
        "cases_with_acceptable_drugs": len(with_drugs),
        "concordance": _rate(sum(bool(r["concordant"]) for r in with_drugs), len(with_drugs)),
        "no_drug_proposed": sum(not r["evidence_drugs"] for r in with_drugs),
    }

    planted = [r for r in rows if r["planted"] is not None]
    clean = [r for r in rows if r["planted"] is None]
    safety = {
        "planted": len(planted),
        "caught": sum(bool(r["caught"]) for r in planted),
        "catch_rate": _rate(sum(bool(r["caught"]) for r in planted), len(planted)),
        # A contraindicated drug that no scheme proposes cannot be flagged; these rows separate
        # a missed warning from a drug the planner already avoided.
        "planted_drug_proposed": sum(bool(r["planted_drug_proposed"]) for r in planted),
        "caught_when_proposed": _rate(
            sum(bool(r["caught"]) for r in planted if r["planted_drug_proposed"]),
            sum(bool(r["planted_drug_proposed"]) for r in planted),
        ),
        "clean": len(clean),
        "false_alarms": sum(bool(r["critical"]) for r in clean),
        "false_alarm_rate": _rate(sum(bool(r["critical"]) for r in clean), len(clean)),
    }

    scores = [r["compliance"] for r in rows if r["compliance"] is not None]
    iterations = [r["iterations"] for r in rows if r["iterations"] is not None]
    compliance = {
        "scored": len(scores),
        "mean": round(statistics.mean(scores), 1) if scores else None,
        "share_at_least_80": _rate(sum(s >= 80 for s in scores), len(scores)),
        "min": min(scores) if scores else None,
        "max": max(scores) if scores else None,
    }
    return {
        "cases": len(rows),
        "fields": fields,
        "icd10": icd10,
        "treatment": treatment,
        "safety": safety,
        "compliance": compliance,
        "iterations": {
            "mean": round(statistics.mean(iterations), 2) if iterations else None,
            "distribution": {str(k): v for k, v in sorted(Counter(iterations).items())},
        },
        "status": dict(Counter(r["status"] for r in rows)),
    }


def evaluate_cases(
    folder: Path = CASES_DIR, *, service: Any = None, ids: Iterable[str] | None = None
) -> dict[str, Any]:
    """Consult every case (or those in ``ids``) through the graph without a language model and score it.

    ``service`` is a ``graphs.service.ConsultService``; the process's own is built when None.
    """
    cases = load_cases(folder)
    if ids is not None:
        wanted = set(ids)
        cases = [c for c in cases if c.id in wanted]
        missing = wanted - {c.id for c in cases}
        if missing:
            raise KeyError(f"unknown case ids: {', '.join(sorted(missing))}")
    if service is None:
        from app.wiring import build_service

        service = build_service(no_llm=True)
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    for case in cases:
        started = time.perf_counter()
        report = service.consult(CaseInput(text=case.text, lang=case.lang), RunContext(use_llm=False))
        latencies.append(time.perf_counter() - started)
        rows.append(score_case(case, report))
        logger.info("case %s consulted in %.2f s", case.id, latencies[-1])
    result = summarise(rows)
    result["median_latency_s"] = round(statistics.median(latencies), 2) if latencies else None
    result["per_case"] = rows
    return result
