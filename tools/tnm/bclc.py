"""Barcelona Clinic Liver Cancer (BCLC) stage of hepatocellular carcinoma.

The stage combines tumour burden (number, size, macrovascular invasion, extrahepatic spread),
liver function (Child-Pugh class) and performance status (ECOG). The criteria come from
``knowledge/tnm/bclc.yaml``; a stage that depends on an unknown factor is not given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from oncoboard.domain import Findings, TumorFinding
from oncoboard.knowledge import load_table

logger = logging.getLogger(__name__)

BCLC_TABLE = "tnm/bclc.yaml"


class BclcResult(BaseModel):
    """A BCLC stage (``0``, ``A``, ``B``, ``C``, ``D``) or None, with rationale lines."""

    model_config = ConfigDict(frozen=True)

    stage: str | None = Field(default=None, description="BCLC stage or None when a factor is unknown.")
    rationale: list[str] = Field(default_factory=list, description="One line per decision.")


def child_pugh_class(findings: Findings) -> tuple[str | None, str]:
    """Child-Pugh class from a stated class (conditions) or the Child-Pugh points (labs)."""
    table = load_table(BCLC_TABLE)["child_pugh"]
    terms: Mapping[str, str] = table["condition_terms"]
    for term, cls in terms.items():
        if term in findings.conditions:
            return str(cls), f"Child-Pugh {cls} (stated)"
    score = findings.labs.get("child_pugh_score")
    if score is not None:
        for band in table["score_classes"]:
            if int(band["min"]) <= score <= int(band["max"]):
                return str(band["class"]), f"Child-Pugh score {score:g} -> class {band['class']}"
        return None, f"Child-Pugh score {score:g} outside 5-15: class not derived"
    return None, "Child-Pugh class not stated"


def _burden(tumor: TumorFinding) -> tuple[int | None, float | None]:
    sizes = list(tumor.lesion_sizes_cm)
    if tumor.size_cm is not None:
        sizes.append(tumor.size_cm)
    count = tumor.count if tumor.count is not None else (len(tumor.lesion_sizes_cm) or None)
    if count is None and tumor.size_cm is not None:
        count = 1
    return count, (max(sizes) if sizes else None)


def bclc_stage(
    tumor: TumorFinding, findings: Findings, *, n: str | None = None, m: str | None = None
) -> BclcResult:
    """BCLC stage of a liver tumour; ``n``/``m`` are the TNM categories already decided (spread)."""
    conf: Mapping[str, Any] = load_table(BCLC_TABLE)
    stages: Mapping[str, Any] = conf["stages"]
    lines: list[str] = []
    cp, cp_line = child_pugh_class(findings)
    lines.append(f"BCLC: {cp_line}")
    ecog = findings.ecog
    lines.append(f"BCLC: ECOG {ecog}" if ecog is not None else "BCLC: ECOG not stated")
    if cp in conf["end_stage_liver_function"]:
        lines.append(f"BCLC D ({stages['D']['label']})")
        return BclcResult(stage="D", rationale=lines)
    if ecog is not None and ecog >= int(stages["D"]["ecog_min"]):
        lines.append(f"BCLC D ({stages['D']['label']})")
        return BclcResult(stage="D", rationale=lines)
    if cp is None or ecog is None:
        lines.append("BCLC not given: liver function and performance status are both needed")
        return BclcResult(stage=None, rationale=lines)
    macro = sorted(set(stages["C"]["macrovascular_terms"]) & set(tumor.extent))
    spread = [s for s in tumor.metastases if s] if not tumor.metastases_negated else []
    nodal = n is not None and n.startswith("N") and n not in ("N0", "NX")
    distant = m is not None and m.startswith("M1")
    if macro or spread or nodal or distant or ecog >= int(stages["C"]["ecog_min"]):
        why = [f"macrovascular invasion ({', '.join(macro)})"] if macro else []
        why += (
            [f"extrahepatic spread ({', '.join(spread) or m or n})"] if (spread or nodal or distant) else []
        )
        why += [f"ECOG {ecog}"] if ecog >= int(stages["C"]["ecog_min"]) else []
        lines.append(f"BCLC C: {'; '.join(why)} ({stages['C']['label']})")
        return BclcResult(stage="C", rationale=lines)
    count, largest = _burden(tumor)
    if count is None or largest is None:
        lines.append("BCLC not given: number and size of the tumours not stated")
        return BclcResult(stage=None, rationale=lines)
    very_early = stages["0"]
    if (
        count <= int(very_early["max_count"])
        and largest <= float(very_early["max_size_cm"])
        and cp in very_early["child_pugh"]
    ):
        lines.append(f"BCLC 0: single tumour {largest:g} cm, Child-Pugh {cp}, ECOG 0")
        return BclcResult(stage="0", rationale=lines)
    early = stages["A"]
    if (count == 1 and early.get("single_any_size")) or (
        count <= int(early["max_count"]) and largest <= float(early["max_size_cm"])
    ):
        lines.append(f"BCLC A: {count} tumour(s), largest {largest:g} cm ({early['label']})")
        return BclcResult(stage="A", rationale=lines)
    lines.append(f"BCLC B: {count} tumours, largest {largest:g} cm ({stages['B']['label']})")
    return BclcResult(stage="B", rationale=lines)
