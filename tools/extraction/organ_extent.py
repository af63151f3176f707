"""Extent of kidney and thyroid primaries: the structures their AJCC 8th T categories name.

Pathology reports of these organs rarely state a TNM but describe how far the tumour reaches:
"extends into the perinephric fat", "renal vein tumour thrombus", "extrathyroidal extension:
present, minimal", "invades the strap muscles". A structure word alone is anatomy ("perinephric
fat is inked", "renal vein margin"), so a structure counts only when an invasion word stands next
to it in the same clause; phrases that state an extension on their own count directly. Only
affirmed mentions become facts, and a synoptic heading ("Renal vein invasion: ...") counts only
when its value affirms it ("present", "yes"), not when it is "absent", "indeterminate" or about
something else. Clauses that quote the definition of a T category ("pT3a: tumour
invades the adrenal gland or perinephric tissues ...") describe the scale, not the case, and are
skipped.

The vocabulary lives in ``knowledge/lexicons/organ_extent.yaml``; the terms are those of
``oncoboard.domain.EXTENT_TERMS``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from oncoboard.domain import EXTENT_TERMS, Entity
from tools.extraction.lexicon import Hit, HitIndex, PhraseMatcher, flat_matcher, lexicon, terms_of
from tools.extraction.negation import Assertion, TextContext

logger = logging.getLogger(__name__)

_TABLE = "organ_extent"
_ETE = "extrathyroidal_extension"
# "pT3a Tumor invades ...", "pT2: Tumor more than 2 cm ...": the report quoting the T definitions
QUOTED_T_DEFINITION = re.compile(
    r"(?<![A-Za-z])[pcy]?T(?:[0-4][a-d]?|is|x)\b\s*[:\-]?\s*(?:tumou?r|extends|invades|more than|greater than|>)",
    re.IGNORECASE,
)
_NODE_COUNT = re.compile(r"(?<![\d.,/])(\d{1,2})\s*(?:/|of|out of|von|aus)\s*(\d{1,3})(?![\d.,/])", re.IGNORECASE)
_VALUE = re.compile(r"^[^:\n.;]{0,30}:\s*([^\n;]{0,40})")


@dataclass(frozen=True)
class _OrganTables:
    """Compiled vocabulary of one organ."""

    statements: PhraseMatcher[str]
    structures: PhraseMatcher[str]
    tight: frozenset[str]
    qualifiers: PhraseMatcher[str] | None
    microscopic_downgrade: frozenset[str]
    compartments: PhraseMatcher[str] | None


def _flat(words: list[Any], label: str) -> PhraseMatcher[str]:
    return PhraseMatcher((str(w), label) for w in words)


@lru_cache(maxsize=1)
def _shared() -> tuple[PhraseMatcher[str], PhraseMatcher[str], PhraseMatcher[str], int, int]:
    table = lexicon(_TABLE)
    return (
        _flat(table["invasion_words"], "invasion"),
        _flat(table["margin_words"], "margin"),
        _flat(table["affirmed_values"], "affirmed"),
        int(table.get("window_words", 4)),
        int(table.get("tight_window_words", 2)),
    )


@lru_cache(maxsize=8)
def _organ(site: str) -> _OrganTables | None:
    section = lexicon(_TABLE).get(site)
    if not isinstance(section, dict):
        return None
    for part in ("statements", "structures"):
        unknown = set(section.get(part) or {}) - EXTENT_TERMS
        if unknown:
            raise KeyError(f"lexicons/{_TABLE}.yaml: {site} {part} outside EXTENT_TERMS: {sorted(unknown)}")
    qualifiers = section.get("qualifiers")
    compartments = section.get("node_compartments")
    return _OrganTables(
        statements=PhraseMatcher(terms_of(section.get("statements") or {})),
        structures=PhraseMatcher(terms_of(section.get("structures") or {})),
        tight=frozenset(str(t) for t in section.get("tight") or ()),
        qualifiers=PhraseMatcher(terms_of(qualifiers)) if isinstance(qualifiers, dict) else None,
        microscopic_downgrade=frozenset(str(t) for t in section.get("microscopic_downgrade") or ()),
        compartments=PhraseMatcher(terms_of(compartments)) if isinstance(compartments, dict) else None,
    )


def has_organ_extent(site: str) -> bool:
    """True when the organ-specific extent vocabulary covers ``site`` (kidney, thyroid)."""
    return _organ(site) is not None


def _label(status: Assertion) -> str:
    return "EXTENT" if status == "affirmed" else f"EXTENT_{status.upper()}"


def _heading_denies(text: str, end: int, affirmed_values: PhraseMatcher[str]) -> bool:
    """A synoptic heading ending after ``end`` whose value does not affirm the finding.

    ``Renal vein invasion: Not identified`` and ``Capsular invasion/perirenal adipose tissue:
    Tumor invades into renal capsule`` deny (or say nothing about) the extension;
    ``Renal vein invasion: Present`` affirms it. Text without a heading colon is not judged here.
    """
    m = _VALUE.match(text[end : end + 80])
    if not m:
        return False
    value = m.group(1).strip().lower()
    return not any(h.start == 0 for h in affirmed_values.find(value))


def _invasion_near(
    ctx: TextContext, hit: Hit[str], clause: tuple[int, int], invasion: HitIndex[str], window: int
) -> Hit[str] | None:
    """The invasion word that ties a structure to the tumour, within ``window`` words in its clause."""
    text = ctx.text
    for word in invasion.between(max(clause[0], hit.start - 200), min(clause[1], hit.end + 200)):
        if word.end <= hit.start:
            gap = text[word.end : hit.start]
            if ctx.words_between(word.end, hit.start) <= window and ":" not in gap:
                return word
        elif word.start >= hit.end:
            gap = text[hit.end : word.start]
            if ctx.words_between(hit.end, word.start) <= window and not re.search(r"[,;]", gap):
                return word
        else:
            return word
    return None


def _qualified_ete(
    ctx: TextContext, hit: Hit[str], clause: tuple[int, int], qualifiers: PhraseMatcher[str] | None
) -> str:
    """Minimal or gross when a qualifier describes an extrathyroidal extension statement
    ("minimal extrathyroidal extension", "Extrathyroidal extension: present, gross")."""
    if qualifiers is None:
        return hit.value
    lo = max(clause[0], hit.start - 40)
    hi = min(clause[1], hit.end + 50)
    for q in qualifiers.find(ctx.text[lo:hi]):
        start = lo + q.start
        end = lo + q.end
        before = end <= hit.start and ctx.words_between(end, hit.start) <= 2
        after = start >= hit.end and ctx.words_between(hit.end, start) <= 4
        if before or after:
            return q.value
    return hit.value


def find_organ_extent(text: str, ctx: TextContext, site: str) -> tuple[list[tuple[str, int, int]], list[Entity]]:
    """Affirmed extent findings of a kidney or thyroid primary, as ``(term, start, end)``, with entities.

    Returns nothing for a site without organ-specific vocabulary.
    """
    tables = _organ(site)
    if tables is None:
        return [], []
    invasion_m, margin_m, affirmed_values, window, tight_window = _shared()
    invasion = HitIndex(invasion_m.find(text))
    margins = HitIndex(margin_m.find(text))
    found: list[tuple[str, int, int]] = []
    entities: list[Entity] = []
    definition_clauses: dict[tuple[int, int], bool] = {}

    def quoted_definition(clause: tuple[int, int]) -> bool:
        if clause not in definition_clauses:
            definition_clauses[clause] = bool(QUOTED_T_DEFINITION.search(text, clause[0], clause[1]))
        return definition_clauses[clause]

    def record(term: str, span: tuple[int, int], status: Assertion) -> None:
        entities.append(
            Entity(text=text[span[0] : span[1]], label=_label(status), start=span[0], end=span[1], code=term)
        )
        if status == "affirmed":
            found.append((term, span[0], span[1]))

    statement_spans: list[tuple[int, int]] = []
    for hit in tables.statements.find(text):
        clause = ctx.clause(hit.start)
        if quoted_definition(clause):
            continue
        statement_spans.append((hit.start, hit.end))
        status = ctx.assertion(hit.start, hit.end)
        if status == "affirmed" and _heading_denies(text, hit.end, affirmed_values):
            continue
        term = _qualified_ete(ctx, hit, clause, tables.qualifiers) if hit.value == _ETE else hit.value
        record(term, (hit.start, hit.end), status)
    for hit in tables.structures.find(text):
        if any(s < hit.end and hit.start < e for s, e in statement_spans):
            continue
        clause = ctx.clause(hit.start)
        if quoted_definition(clause):
            continue
        if any(
            m.start >= hit.end and ctx.words_between(hit.end, m.start) <= 1
            for m in margins.between(hit.end, hit.end + 30)
        ):
            continue
        limit = tight_window if hit.value in tables.tight else window
        word = _invasion_near(ctx, hit, clause, invasion, limit)
        if word is None:
            continue
        status = ctx.assertion(hit.start, hit.end)
        if status == "affirmed":
            status = ctx.assertion(word.start, word.end)
        if status == "affirmed" and _heading_denies(text, max(hit.end, word.end), affirmed_values):
            continue
        term = hit.value
        if term in tables.microscopic_downgrade and tables.qualifiers is not None:
            segment = text[clause[0] : clause[1]]
            if any(q.value == "minimal_extrathyroidal_extension" for q in tables.qualifiers.find(segment)):
                term = "minimal_extrathyroidal_extension"
        span = (min(hit.start, word.start), max(hit.end, word.end))
        record(term, span, status)
    found.sort(key=lambda f: f[1])
    logger.debug("%s extent: %s", site, [f[0] for f in found])
    return found, entities


def node_compartments(text: str, ctx: TextContext, site: str) -> list[str]:
    """Neck compartments ("central", "lateral") named in clauses that describe involved regional nodes.

    A compartment counts only in a clause that speaks of lymph nodes and states their involvement
    (a nodal-metastasis phrase, a positive word, or a count such as ``2/7`` with at least one
    involved node); "central lymph nodes 0/6" names a compartment whose nodes are free.
    """
    tables = _organ(site)
    if tables is None or tables.compartments is None:
        return []
    node_words = flat_matcher("nodes", "node_words")
    node_mets = flat_matcher("nodes", "node_metastasis")
    positive_words = flat_matcher("nodes", "positive_words")
    found: list[str] = []
    for hit in tables.compartments.find(text):
        if ctx.assertion(hit.start, hit.end) != "affirmed":
            continue
        lo, hi = ctx.clause(hit.start)
        clause = text[lo:hi]
        mets = node_mets.find(clause)
        if not (mets or node_words.find(clause)):
            continue
        counts = [(int(m.group(1)), int(m.group(2))) for m in _NODE_COUNT.finditer(clause)]
        counts = [(p, n) for p, n in counts if p <= n]
        if counts:
            involved = any(p > 0 for p, _ in counts)
        else:
            cues = [*mets, *positive_words.find(clause)]
            involved = any(ctx.assertion(lo + c.start, lo + c.end) == "affirmed" for c in cues)
        if involved and hit.value not in found:
            found.append(hit.value)
    return found
