"""ICD-10 coding evaluated on CodiEsp (English case reports with gold ICD-10-CM codes).

The coder emits WHO ICD-10 (2019); the gold is ICD-10-CM. The two systems agree at the
3-character category, and a WHO code is usually a prefix of the CM code that refines it, so both
levels are reported (plus exact agreement of the coder's own CM renderings). Only neoplasm codes
(C00-D49) are scored. The findings come from an extractor callable; when the project's extractor
is not importable, a small keyword finder over the knowledge tables stands in and the result
says so.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from oncoboard.domain import Findings, NodeFinding, TumorFinding
from oncoboard.knowledge import load_table
from tools.icd10 import code_case
from tools.icd10.tables import sites_tables, spread_tables
from tools.icd10.terms import TermSet, normalize

logger = logging.getLogger(__name__)

Extractor = Callable[[str], Findings]
FINDER_TABLE = "icd10/keyword_finder.yaml"
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


# --------------------------------------------------------------------------- metrics


def is_neoplasm_code(code: str) -> bool:
    """Whether ``code`` lies in chapter II (C00-D49, the CM range; WHO ends at D48)."""
    c = code.strip().upper()
    if len(c) < 3 or c[0] not in "CD" or not c[1:3].isdigit():
        return False
    return c[0] == "C" or int(c[1:3]) <= 49


def _undot(code: str) -> str:
    return code.replace(".", "").upper()


@dataclass
class PRF:
    """Counts for precision and recall where a prediction and a gold item are matched separately."""

    pred_matched: int = 0
    pred_total: int = 0
    gold_matched: int = 0
    gold_total: int = 0

    def add(self, pred: Iterable[str], gold: Iterable[str], match: Callable[[str, str], bool]) -> None:
        """Count one case."""
        p, g = sorted(set(pred)), sorted(set(gold))
        self.pred_total += len(p)
        self.gold_total += len(g)
        self.pred_matched += sum(any(match(x, y) for y in g) for x in p)
        self.gold_matched += sum(any(match(x, y) for x in p) for y in g)

    def as_dict(self) -> dict[str, float | int]:
        """Precision, recall, F1 and the counts."""
        precision = self.pred_matched / self.pred_total if self.pred_total else 0.0
        recall = self.gold_matched / self.gold_total if self.gold_total else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "pred_matched": self.pred_matched,
            "pred_total": self.pred_total,
            "gold_matched": self.gold_matched,
            "gold_total": self.gold_total,
        }


def category_match(pred: str, gold: str) -> bool:
    """Same 3-character category."""
    return _undot(pred)[:3] == _undot(gold)[:3]


def prefix_match(pred: str, gold: str) -> bool:
    """The WHO code is a prefix of the CM code (``C34.1`` matches ``C34.11``)."""
    return _undot(gold).startswith(_undot(pred))


def exact_match(pred: str, gold: str) -> bool:
    """Identical codes."""
    return _undot(pred) == _undot(gold)


# --------------------------------------------------------------------------- fallback finder


@dataclass(frozen=True)
class _FinderTables:
    malignancy: TermSet
    unknown_primary: TermSet
    metastasis: TermSet
    nodes: TermSet
    laterality: TermSet


@lru_cache(maxsize=1)
def _finder_tables() -> _FinderTables:
    raw = load_table(FINDER_TABLE)
    return _FinderTables(
        malignancy=TermSet([("hit", raw["malignancy_terms"])]),
        unknown_primary=TermSet([("hit", raw["unknown_primary_terms"])]),
        metastasis=TermSet([("hit", raw["metastasis_terms"])]),
        nodes=TermSet([("hit", raw["node_terms"])]),
        laterality=TermSet.from_mapping(raw["laterality_terms"]),
    )


def keyword_findings(text: str) -> Findings:
    """A deliberately small site finder used when the project's extractor is not available.

    The most often named organ (named sites first, then other organs) becomes the one primary;
    its subsite and histology are the first sentence that names it next to a malignancy word;
    organs named in sentences about spread become metastases, and nodal spread a node finding.
    Negation and multiple primaries are not handled.
    """
    finder = _finder_tables()
    sites = sites_tables()
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    cancer_sentences = [s for s in sentences if finder.malignancy.matches(s)]
    if not cancer_sentences:
        return Findings(oncology=False)
    # Organs named in sentences about spread are where the tumour went, not where it began.
    primary_sentences = [s for s in cancer_sentences if not finder.metastasis.matches(s)]
    cancer_sentences = primary_sentences or cancer_sentences
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], int] = {}
    for i, sentence in enumerate(cancer_sentences):
        norm = normalize(sentence)
        for kind, termset in (("site", sites.site_terms), ("organ", sites.other_organs)):
            for hit in termset.find(norm):
                found = (kind, hit.key)
                counts[found] = counts.get(found, 0) + 1
                first.setdefault(found, i)
    metastases: set[str] = set()
    nodes = NodeFinding()
    spread = spread_tables()
    for sentence in sentences:
        if finder.metastasis.matches(sentence):
            metastases.update(spread.metastasis_terms.keys_in(sentence))
            if finder.nodes.matches(sentence):
                nodes = NodeFinding(positive=1, stations=(*nodes.stations, sentence[:200]))
    unknown = any(finder.unknown_primary.matches(s) for s in sentences)
    if unknown or not counts:
        tumor = TumorFinding(
            site="unknown_primary" if unknown else "other",
            histology=cancer_sentences[0][:300],
            nodes=nodes,
            metastases=tuple(sorted(metastases)),
        )
        return Findings(oncology=True, tumors=(tumor,))
    # Named sites win ties over other organs (they carry subsite tables), then the earlier mention.
    kind, key = max(counts, key=lambda k: (counts[k], k[0] == "site", -first[k]))
    sentence = cancer_sentences[first[(kind, key)]][:300]
    sides = finder.laterality.keys_in(sentence)
    laterality = sides[0] if len(sides) == 1 else None
    if kind == "site":
        site_metastases = metastases - {key, "contralateral_lung"}
        tumor = TumorFinding(
            site=key,  # type: ignore[arg-type]
            subsite=sentence,
            laterality=laterality,  # type: ignore[arg-type]
            histology=sentence,
            nodes=nodes,
            metastases=tuple(sorted(site_metastases)),
        )
    else:
        tumor = TumorFinding(
            site="other",
            subsite=sentence,
            laterality=laterality,  # type: ignore[arg-type]
            histology=sentence,
            nodes=nodes,
            metastases=tuple(sorted(metastases)),
        )
    return Findings(oncology=True, tumors=(tumor,))


def default_extractor() -> tuple[Extractor, str]:
    """The project's extractor when importable, else the keyword finder; with a name for reports."""
    try:
        from tools.extraction import extract_findings
    except ImportError as exc:
        logger.warning("tools.extraction.extract_findings not importable (%s): using the keyword finder", exc)
        return keyword_findings, "keyword_findings (evaluation fallback)"

    def english(text: str) -> Findings:
        # CodiEsp here is the English translation of the corpus.
        return extract_findings(text, "en")

    return english, "tools.extraction.extract_findings (lang=en)"


# --------------------------------------------------------------------------- the suite


def evaluate_codiesp(
    path: str | Path,
    extract: Extractor | None = None,
    *,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score the coder on a CodiEsp JSONL file (``id, text, icd10cm[]``); neoplasm codes only.

    Returns precision/recall/F1 at the 3-character category level, at the level "WHO code is a
    prefix of the gold CM code", and for the coder's CM renderings against the gold exactly; the
    primary-code hit rate (the ``primary`` WHO code matches some gold neoplasm code) at the
    category and prefix levels; and the cases the extractor failed on.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"CodiEsp file not found: {source}")
    if extract is None:
        extract, extractor_name = default_extractor()
    else:
        extractor_name = getattr(extract, "__qualname__", repr(extract))
    category, prefix, cm_exact = PRF(), PRF(), PRF()
    primary_category = primary_prefix = scored = gold_c = gold_d = 0
    failures: list[dict[str, str]] = []
    with source.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if limit is not None and scored + len(failures) >= limit:
                break
            case = json.loads(line)
            gold = sorted({c.upper() for c in case.get("icd10cm", []) if is_neoplasm_code(c)})
            gold_c += sum(c.startswith("C") for c in gold)
            gold_d += sum(c.startswith("D") for c in gold)
            try:
                findings = extract(case["text"])
            except Exception as exc:  # an extractor bug must not hide the other cases' scores
                logger.exception("extractor failed on case %s (line %d)", case.get("id"), line_no)
                failures.append({"id": str(case.get("id")), "error": f"{type(exc).__name__}: {exc}"})
                findings = Findings(oncology=False)
            codes = code_case(findings, with_cm=True)
            who_codes = [c.code for c in codes if c.system == "ICD-10-WHO-2019" and is_neoplasm_code(c.code)]
            cm_codes = [c.code for c in codes if c.system == "ICD-10-CM" and is_neoplasm_code(c.code)]
            category.add(who_codes, gold, category_match)
            prefix.add(who_codes, gold, prefix_match)
            cm_exact.add(cm_codes, gold, exact_match)
            primary = next((c.code for c in codes if c.role == "primary"), None)
            if primary is not None:
                primary_category += any(category_match(primary, g) for g in gold)
                primary_prefix += any(prefix_match(primary, g) for g in gold)
            scored += 1
    return {
        "suite": "codiesp_icd10",
        "data": str(source),
        "cases": scored,
        "extractor": extractor_name,
        "scope": "neoplasm codes C00-D49; WHO 2019 predictions vs ICD-10-CM gold",
        # D codes (in situ, benign, uncertain behaviour) are gold the coder of malignant findings
        # cannot reach; their share bounds recall.
        "gold_neoplasm_codes": {"malignant_C": gold_c, "other_D": gold_d},
        "category_level": category.as_dict(),
        "who_prefix_level": prefix.as_dict(),
        "cm_rendering_exact": cm_exact.as_dict(),
        "primary_hit_rate": {
            "category": round(primary_category / scored, 4) if scored else 0.0,
            "who_prefix": round(primary_prefix / scored, 4) if scored else 0.0,
        },
        "extractor_failures": failures,
    }
