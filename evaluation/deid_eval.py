"""Evaluation of de-identification against GraSCCo PHI letters exported from INCEpTION (UIMA CAS JSON).

Each ``*.inception.json`` file holds one letter: the text is the ``sofaString`` of the ``uima.cas.Sofa``
feature structure, and the gold PHI spans are ``webanno.custom.PHI`` annotations with ``begin``, ``end``
and a ``kind`` label (NAME_PATIENT, DATE, ID, LOCATION_CITY, ...). Labels are mapped onto the kinds that
:func:`oncoboard.deid.deidentify` produces; titles (NAME_TITLE) and professions are not identifying on
their own and are not scored.

Scores per kind:
* overlap: a gold span is found when a predicted span of the same kind overlaps it; a predicted span is
  correct when it overlaps a gold span of its kind;
* exact: the same, with identical boundaries;
* ``recall_any_kind``: a gold span overlapped by a prediction of any kind (it was hidden, perhaps under
  another label).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oncoboard.deid import PHI_KINDS, find_phi

logger = logging.getLogger(__name__)

# GraSCCo PHI label -> oncoboard PHI kind; None: not scored.
LABEL_TO_KIND: dict[str, str | None] = {
    "NAME_PATIENT": "name",
    "NAME_DOCTOR": "name",
    "NAME_RELATIVE": "name",
    "NAME_EXT": "name",
    "NAME_OTHER": "name",
    "NAME_USERNAME": "name",
    "NAME_TITLE": None,
    "DATE": "date",
    "AGE": "age",
    "ID": "id",
    "CONTACT_PHONE": "phone",
    "CONTACT_FAX": "phone",
    "CONTACT_EMAIL": "email",
    "CONTACT_URL": "url",
    "LOCATION_STREET": "address",
    "LOCATION_ZIP": "address",
    "LOCATION_CITY": "location",
    "LOCATION_STATE": "location",
    "LOCATION_COUNTRY": "location",
    "LOCATION_OTHER": "location",
    "LOCATION_HOSPITAL": "institution",
    "LOCATION_ORGANIZATION": "institution",
    "PROFESSION": None,
    "OTHER": None,
}


@dataclass(frozen=True)
class GoldSpan:
    """One annotated PHI span of a letter."""

    start: int
    end: int
    label: str
    kind: str | None


@dataclass(frozen=True)
class GoldLetter:
    """A letter's text and its gold PHI spans."""

    name: str
    text: str
    spans: tuple[GoldSpan, ...]


def read_inception_json(path: Path) -> GoldLetter:
    """Read one INCEpTION UIMA CAS JSON export into text and gold spans."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    structures = data.get("%FEATURE_STRUCTURES") or []
    sofas = [fs for fs in structures if fs.get("%TYPE") == "uima.cas.Sofa"]
    if not sofas:
        raise ValueError(f"{path.name}: no uima.cas.Sofa with the document text")
    text = str(sofas[0].get("sofaString") or "")
    spans = []
    for fs in structures:
        if fs.get("%TYPE") != "webanno.custom.PHI":
            continue
        label = str(fs.get("kind") or "OTHER")
        if label not in LABEL_TO_KIND:
            logger.warning("%s: unknown PHI label %s, not scored", path.name, label)
        spans.append(
            GoldSpan(int(fs.get("begin", 0)), int(fs.get("end", 0)), label, LABEL_TO_KIND.get(label))
        )
    spans.sort(key=lambda s: (s.start, s.end))
    return GoldLetter(name=path.name.removesuffix(".inception.json"), text=text, spans=tuple(spans))


def _age_over_89(surface: str) -> bool:
    digits = "".join(ch for ch in surface if ch.isdigit())
    return bool(digits) and int(digits) > 89


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def score_letters(letters: list[GoldLetter]) -> dict[str, Any]:
    """Per-kind and overall overlap/exact recall and precision of :func:`find_phi` on gold letters."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    misses: list[dict[str, Any]] = []
    false_positives: list[dict[str, Any]] = []
    for letter in letters:
        predicted = find_phi(letter.text, lang="de")
        gold = [g for g in letter.spans if g.kind is not None]
        ignored = [g for g in letter.spans if g.kind is None]
        for g in gold:
            c = counts[g.kind or ""]
            c["gold"] += 1
            hits = [p for p in predicted if p[2] == g.kind and p[0] < g.end and g.start < p[1]]
            if g.kind == "age" and _age_over_89(letter.text[g.start : g.end]):
                # Only ages over 89 are PHI under HIPAA Safe Harbor; younger ones are kept on purpose.
                counts["age_over_89"]["gold"] += 1
                counts["age_over_89"]["gold_found"] += bool(hits)
            if hits:
                c["gold_found"] += 1
            else:
                misses.append(
                    {
                        "letter": letter.name,
                        "kind": g.kind,
                        "label": g.label,
                        "surface": letter.text[g.start : g.end],
                    }
                )
            if any(p[0] == g.start and p[1] == g.end for p in hits):
                c["gold_exact"] += 1
            if any(p[0] < g.end and g.start < p[1] for p in predicted):
                c["gold_any_kind"] += 1
        for start, end, kind in predicted:
            # A prediction that only covers a title or profession is neither right nor wrong.
            if not any(g.kind == kind for g in gold) and any(
                g.start < end and start < g.end for g in ignored
            ):
                continue
            c = counts[kind]
            c["pred"] += 1
            same = [g for g in gold if g.kind == kind and g.start < end and start < g.end]
            if same:
                c["pred_correct"] += 1
            else:
                false_positives.append(
                    {"letter": letter.name, "kind": kind, "surface": letter.text[start:end]}
                )
            if any(g.start == start and g.end == end for g in same):
                c["pred_exact"] += 1
    per_kind: dict[str, dict[str, Any]] = {}
    totals: dict[str, int] = defaultdict(int)
    for kind in [k for k in PHI_KINDS if k in counts]:
        c = counts[kind]
        for key, value in c.items():
            totals[key] += value
        per_kind[kind] = _metrics(c)
    if "age_over_89" in counts:
        c = counts["age_over_89"]
        per_kind["age_over_89"] = {"gold": c["gold"], "recall": _ratio(c["gold_found"], c["gold"])}
    return {
        "letters": len(letters),
        "per_kind": per_kind,
        "overall": _metrics(totals),
        "misses": misses,
        "false_positives": false_positives,
    }


def _metrics(c: dict[str, int]) -> dict[str, Any]:
    return {
        "gold": c.get("gold", 0),
        "predicted": c.get("pred", 0),
        "recall": _ratio(c.get("gold_found", 0), c.get("gold", 0)),
        "precision": _ratio(c.get("pred_correct", 0), c.get("pred", 0)),
        "recall_exact": _ratio(c.get("gold_exact", 0), c.get("gold", 0)),
        "precision_exact": _ratio(c.get("pred_exact", 0), c.get("pred", 0)),
        "recall_any_kind": _ratio(c.get("gold_any_kind", 0), c.get("gold", 0)),
    }


def evaluate_grascco(folder: str | Path) -> dict[str, Any]:
    """Score de-identification on every ``*.inception.json`` letter in ``folder``.

    Returns ``{"letters", "per_kind": {kind: {gold, predicted, recall, precision, recall_exact,
    precision_exact, recall_any_kind}}, "overall", "misses", "false_positives"}``; ``per_kind`` also has
    ``age_over_89`` (recall on the gold ages above 89, the only ages the de-identifier removes).
    """
    root = Path(folder)
    paths = sorted(root.glob("*.inception.json"))
    if not paths:
        raise FileNotFoundError(f"no *.inception.json letters in {root}")
    return score_letters([read_inception_json(p) for p in paths])
