"""TNM accuracy on TCGA pathology reports (registry T/N/M as reference).

Each report's stated TNM is parsed and passed through the staging engine as the tumour's stated
categories; the resulting T, N and M are compared with the registry's pathologic T/N/M. Only
reports with a registry value for a category count for that category. The registry values mix
AJCC editions and were not re-read from the text, so they are a realistic, imperfect reference.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oncoboard.domain import Findings, Site, TumorFinding
from tools.tnm import parse_tnm, stage_tumor

logger = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tcga_reports" / "dev.jsonl"

# TCGA project code -> the report's site vocabulary (dataset metadata, not a clinical rule).
TCGA_SITES: dict[str, Site] = {
    "LUAD": "lung",
    "LUSC": "lung",
    "BRCA": "breast",
    "COAD": "colorectal",
    "READ": "colorectal",
    "LIHC": "liver",
    "ESCA": "esophagus",
    "STAD": "stomach",
    "PAAD": "pancreas",
    "PRAD": "prostate",
    "KIRC": "kidney",
    "KIRP": "kidney",
    "KICH": "kidney",
    "THCA": "thyroid",
}
_MAIN_RE = re.compile(r"^([TNM](?:is|X|\d))")
AXES = ("t", "n", "m")


def _main(category: str | None) -> str | None:
    """The category without its subcategory (``T2a`` -> ``T2``, ``N1mi`` -> ``N1``)."""
    if not category:
        return None
    match = _MAIN_RE.match(category)
    return match.group(1) if match else category


def _predict(row: dict[str, Any]) -> dict[str, str | None]:
    site: Site = TCGA_SITES.get(str(row.get("cancer_type", "")), "other")
    parsed = parse_tnm(str(row.get("text", "")))
    tumor = TumorFinding(site=site, stated_tnm=parsed.render() or None)
    result = stage_tumor(tumor, Findings(oncology=True, tumors=(tumor,)))
    return {"t": result.tnm.t, "n": result.tnm.n, "m": result.tnm.m, "stage_group": result.tnm.stage_group}


Predictor = Callable[[dict[str, Any]], dict[str, str | None]]


def evaluate_tcga(path: str | Path = DEFAULT_PATH, predict: Predictor | None = None) -> dict[str, Any]:
    """Per-category accuracy of T, N and M against the registry labels of a TCGA JSONL file.

    For each of T, N, M: ``gold`` (reports with a registry value), ``predicted`` (of those, how
    many got a category), ``exact`` and ``main`` (agreement ignoring subcategories, T2a = T2)
    counts, ``accuracy_exact``/``accuracy_main`` over ``gold`` and ``precision_exact`` over
    ``predicted``, plus the most frequent confusions. A missing file gives ``{"skipped": reason}``.
    ``predict`` maps a report row to its T/N/M (default: the stated TNM through the engine).
    """
    predict = predict or _predict
    source = Path(path)
    if not source.is_file():
        return {"skipped": f"TCGA reports not found at {source}"}
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    stats: dict[str, dict[str, Any]] = {
        axis: {"gold": 0, "predicted": 0, "exact": 0, "main": 0, "confusions": Counter()} for axis in AXES
    }
    staged = 0
    for row in rows:
        pred = predict(row)
        staged += pred["stage_group"] is not None
        for axis in AXES:
            gold = str(row.get(f"{axis}_gdc") or "").strip()
            if not gold:
                continue
            entry = stats[axis]
            entry["gold"] += 1
            value = pred[axis]
            if value is None:
                entry["confusions"][(gold, None)] += 1
                continue
            entry["predicted"] += 1
            if value == gold:
                entry["exact"] += 1
            else:
                entry["confusions"][(gold, value)] += 1
            if _main(value) == _main(gold):
                entry["main"] += 1
    result: dict[str, Any] = {"path": str(source), "reports": len(rows), "stage_groups_given": staged}
    for axis, entry in stats.items():
        gold, predicted = entry["gold"], entry["predicted"]
        result[axis] = {
            "gold": gold,
            "predicted": predicted,
            "exact": entry["exact"],
            "main": entry["main"],
            "accuracy_exact": round(entry["exact"] / gold, 4) if gold else None,
            "accuracy_main": round(entry["main"] / gold, 4) if gold else None,
            "precision_exact": round(entry["exact"] / predicted, 4) if predicted else None,
            "top_confusions": [
                {"gold": g, "predicted": p, "count": c} for (g, p), c in entry["confusions"].most_common(5)
            ],
        }
    logger.info("TNM on %s: %s", source, {a: result[a]["accuracy_exact"] for a in AXES})
    return result
