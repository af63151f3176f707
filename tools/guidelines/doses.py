"""Reading doses back out of a scheme's dose text and measuring how far they stray from a range.

Scheme doses are written by ``TreatmentSpec.dose_text`` (``80 mg``, ``AUC 5``, ``oxaliplatin
130 mg/m2 + capecitabine 1000 mg/m2``); the checker and the safety reviewer read them back with
``parse_dose_text`` so a hand-edited or model-edited dose is judged by the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.guidelines.table import DoseSpec

_UNIT = r"(mg/m2|mg/m²|mg/qm|mg/kg|mg|gy|gbq)"
_AMOUNT = re.compile(r"(\d+(?:[.,]\d+)?)(?:\s*[-–]\s*(\d+(?:[.,]\d+)?))?\s*" + _UNIT + r"(?![a-z/])", re.IGNORECASE)
_AUC = re.compile(r"auc\s*(\d+(?:[.,]\d+)?)(?:\s*[-–]\s*(\d+(?:[.,]\d+)?))?", re.IGNORECASE)
_SEGMENT_SPLIT = re.compile(r"\s\+\s|;")
_UNIT_CANON = {"mg/m²": "mg/m2", "mg/qm": "mg/m2", "gy": "Gy", "gbq": "GBq"}


@dataclass(frozen=True)
class DoseAmount:
    """One amount read from a dose text (a range keeps both ends)."""

    drug: str | None
    low: float
    high: float
    unit: str

    def display(self) -> str:
        """Readable amount (``1000 mg/m2``, ``AUC 5``)."""
        amount = f"{self.low:g}" if self.low == self.high else f"{self.low:g}-{self.high:g}"
        return f"AUC {amount}" if self.unit == "AUC" else f"{amount} {self.unit}"


def _float(text: str) -> float:
    return float(text.replace(",", "."))


def parse_dose_text(text: str | None, drugs: list[str]) -> list[DoseAmount]:
    """Amounts in a dose text, each tied to the drug named at the start of its segment.

    A treatment with one drug may omit the name; segments are separated by `` + `` or ``;``.
    """
    if not text:
        return []
    names = sorted((d.lower() for d in drugs), key=len, reverse=True)
    out: list[DoseAmount] = []
    for segment in _SEGMENT_SPLIT.split(text):
        seg = segment.strip()
        low = seg.lower()
        drug = next((n for n in names if low.startswith(n)), None)
        if drug is None and len(names) == 1:
            drug = names[0]
        rest = seg[len(drug) :] if drug and low.startswith(drug) else seg
        for hit in _AUC.finditer(rest):
            a = _float(hit.group(1))
            out.append(DoseAmount(drug, a, _float(hit.group(2)) if hit.group(2) else a, "AUC"))
        for hit in _AMOUNT.finditer(rest):
            a = _float(hit.group(1))
            unit = hit.group(3).lower()
            unit = _UNIT_CANON.get(unit, unit)
            out.append(DoseAmount(drug, a, _float(hit.group(2)) if hit.group(2) else a, unit))
    return out


def deviation(amount: DoseAmount, specs: list[DoseSpec]) -> float | None:
    """Smallest relative distance of ``amount`` outside the accepted ranges of ``specs``.

    0.0 means inside a range; ``None`` means no spec shares the amount's unit.
    """
    best: float | None = None
    for spec in specs:
        if spec.unit != amount.unit:
            continue
        for lo, hi in spec.ranges():
            worst = 0.0
            for value in (amount.low, amount.high):
                if value < lo:
                    worst = max(worst, (lo - value) / lo if lo else 1.0)
                elif value > hi:
                    worst = max(worst, (value - hi) / hi if hi else 1.0)
            best = worst if best is None else min(best, worst)
    return best
