"""Exact-span precision, recall and F1 over PubTator records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tools.ner.pubtator import PubtatorDoc


@dataclass(frozen=True)
class PRF:
    """Counts and scores of an exact-span comparison."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """Share of predicted spans that are gold spans."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """Share of gold spans that were predicted."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Plain dictionary for JSON reports (scores rounded to 4 places)."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }

    def __str__(self) -> str:
        return f"P={self.precision:.4f} R={self.recall:.4f} F1={self.f1:.4f} (tp={self.tp} fp={self.fp} fn={self.fn})"


def spans(docs: Sequence[PubtatorDoc]) -> set[tuple[str, int, int]]:
    """The set of ``(pmid, start, end)`` keys of every mention."""
    return {(d.pmid, m.start, m.end) for d in docs for m in d.mentions}


def evaluate(gold_docs: Sequence[PubtatorDoc], pred_docs: Sequence[PubtatorDoc]) -> PRF:
    """Exact span match on ``(pmid, start, end)``; mention types are not compared."""
    gold, pred = spans(gold_docs), spans(pred_docs)
    tp = len(gold & pred)
    return PRF(tp=tp, fp=len(pred - gold), fn=len(gold - pred))
