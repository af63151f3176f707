"""Extent of the primary tumour, regional lymph nodes and distant metastases.

Distant metastases are read in three ways: phrases that name a site outright ("peritoneal
carcinomatosis", "Pleuraerguss"), a metastasis noun with an organ word before it or after a
linking preposition ("liver metastases", "Metastasen in der Leber", "Lebermetastasen"), and a
metastasis word with no organ, which is a global statement ("no distant metastases",
"keine Fernmetastasen"). Only affirmed mentions become facts; a negated global statement sets
``metastases_negated`` even when a metastasis is also affirmed, so the stager sees the conflict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from oncoboard.domain import EXTENT_TERMS, METASTASIS_SITES, Entity, NodeFinding
from tools.extraction.lexicon import Hit, HitIndex, PhraseMatcher, flat_matcher, matcher
from tools.extraction.negation import Assertion, TextContext

_JOIN = re.compile(r"^[\s,]*(?:and|und|or|oder|sowie|&|/|,)?[\s,]*$", re.IGNORECASE)
_COUNT_SLASH = re.compile(r"(?<![\d/.,])\(?\s*(\d{1,2})\s*/\s*(\d{1,3})\s*\)?(?![\d/])")
_COUNT_OF = re.compile(
    r"(?<![\d.,])(\d{1,2})\s*(?:of|out of|von|aus|/)\s*(\d{1,3})(?![\d.,])",
    re.IGNORECASE,
)
_STATION = re.compile(r"(?i)\b(?:station|stations|level|lk-station|region)\s*(\d{1,2}[RLrl]?|[IVX]{1,4}[ab]?)\b")
_LESION_LINK_WORDS = 8
_NUMBER_AFTER = re.compile(r"^\D{0,25}?(\d{1,3})(?![\d.,/])")


@dataclass
class MetastasisResult:
    """Distant metastases: affirmed sites, global negation, and the organ spans they cover."""

    sites: list[str] = field(default_factory=list)
    negated_global: bool = False
    uncertain: list[str] = field(default_factory=list)
    covered: list[tuple[int, int]] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)


@lru_cache(maxsize=1)
def _node_matchers() -> tuple[PhraseMatcher[str], PhraseMatcher[str], PhraseMatcher[str]]:
    return (
        flat_matcher("nodes", "node_words"),
        flat_matcher("nodes", "node_metastasis"),
        flat_matcher("nodes", "node_negative"),
    )


@lru_cache(maxsize=1)
def _met_matchers() -> dict[str, PhraseMatcher[str]]:
    return {
        "phrases": matcher("metastasis", "phrases"),
        "organs": matcher("metastasis", "organs"),
        "noun": flat_matcher("metastasis", "noun_cues"),
        "adjective": flat_matcher("metastasis", "adjective_cues"),
        "link": flat_matcher("metastasis", "link_words"),
        "global": flat_matcher("metastasis", "global_cues"),
        "primary": flat_matcher("metastasis", "primary_words"),
    }


def _label(base: str, status: Assertion) -> str:
    return base if status == "affirmed" else f"{base}_{status.upper()}"


def _overlaps(a: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(s < a[1] and a[0] < e for s, e in spans)


def node_context_spans(text: str) -> list[tuple[int, int]]:
    """Spans of node words and nodal-metastasis phrases."""
    words, mets, negs = _node_matchers()
    return [(h.start, h.end) for h in (*words.find(text), *mets.find(text), *negs.find(text))]


def find_metastases(text: str, ctx: TextContext) -> MetastasisResult:
    """Distant metastases stated in ``text``."""
    m = _met_matchers()
    result = MetastasisResult()
    node_spans = node_context_spans(text)
    node_clauses = {ctx.clause(s) for s, _ in node_spans}
    # "distant lymph node metastases" speaks of M, not N, even next to node words
    distant_clauses = {ctx.clause(h.start) for h in flat_matcher("metastasis", "distant_words").find(text)}
    claimed: list[tuple[int, int]] = []

    def record(site: str, span: tuple[int, int], status: Assertion, cover: tuple[int, int]) -> None:
        if site not in METASTASIS_SITES:
            return
        result.covered.append(cover)
        result.entities.append(
            Entity(
                text=text[span[0] : span[1]],
                label=_label("METASTASIS", status),
                start=span[0],
                end=span[1],
                code=site,
            )
        )
        if status == "affirmed":
            if site not in result.sites:
                result.sites.append(site)
        elif status == "uncertain" and site not in result.uncertain:
            result.uncertain.append(site)

    for hit in m["phrases"].find(text):
        status = ctx.assertion(hit.start, hit.end)
        record(hit.value, (hit.start, hit.end), status, (hit.start, hit.end))
        claimed.append((hit.start, hit.end))

    claimed_index = HitIndex(Hit(s, e, "", "") for s, e in claimed)
    organs = HitIndex(
        o
        for o in m["organs"].find(text)
        if not _overlaps((o.start, o.end), [(c.start, c.end) for c in claimed_index.between(o.start - 200, o.end)])
    )
    primaries = HitIndex(m["primary"].find(text))
    lesions = HitIndex(flat_matcher("histology", "tumour_words").find(text))
    links = HitIndex(m["link"].find(text))
    global_index = HitIndex(m["global"].find(text))
    cues: list[tuple[Hit[str], str]] = [(h, "noun") for h in m["noun"].find(text)]
    cues += [(h, "adjective") for h in m["adjective"].find(text)]
    cues.sort(key=lambda c: c[0].start)
    for cue, kind in cues:
        if _overlaps((cue.start, cue.end), [(c.start, c.end) for c in claimed_index.between(cue.start - 200, cue.end)]):
            continue
        clause = ctx.clause(cue.start)
        status = ctx.assertion(cue.start, cue.end)
        linked = _linked_organs(text, cue, kind, organs, links, primaries, clause, ctx, lesions)
        if linked:
            for organ in linked:
                span = (min(organ.start, cue.start), max(organ.end, cue.end))
                record(organ.value, span, status, (organ.start, organ.end))
            continue
        is_global = _overlaps(
            (cue.start, cue.end), [(g.start, g.end) for g in global_index.between(cue.start - 100, cue.end)]
        )
        nodal = clause in node_clauses and clause not in distant_clauses
        if kind == "noun" and is_global and not nodal:
            result.entities.append(
                Entity(text=cue.text, label=_label("METASTASIS", status), start=cue.start, end=cue.end, code=None)
            )
            if status == "negated":
                result.negated_global = True
    return result


def _linked_organs(
    text: str,
    cue: Hit[str],
    kind: str,
    organ_index: HitIndex[str],
    link_index: HitIndex[str],
    primary_index: HitIndex[str],
    clause: tuple[int, int],
    ctx: TextContext,
    lesion_index: HitIndex[str],
) -> list[Hit[str]]:
    """Organs a metastasis cue refers to."""
    found: list[Hit[str]] = []
    lo, hi = max(clause[0], cue.start - 300), min(clause[1], cue.end + 300)
    organs = organ_index.between(lo, hi)
    links = link_index.between(cue.end, cue.end + 4)
    primaries = primary_index.between(cue.end, hi + 40)
    # compound word: the organ and the cue are the same token ("Lebermetastasen")
    for organ in organs:
        if organ.start <= cue.start < organ.end or cue.start <= organ.start < cue.end:
            found.append(organ)
    if found:
        return found
    if kind == "noun":
        # organ list before the cue: "liver and bone metastases"
        before = [o for o in organs if clause[0] <= o.start and o.end <= cue.start]
        cursor = cue.start
        for organ in reversed(before):
            if not _JOIN.match(text[organ.end : cursor]) and text[organ.end : cursor].strip(" -") != "":
                break
            found.append(organ)
            cursor = organ.start
    # organs after a linking preposition: "metastases to the liver and bones", "metastatic to liver"
    after_links = [lk for lk in links if cue.end <= lk.start <= cue.end + 3 and lk.start < clause[1]]
    if after_links:
        cursor = after_links[0].end
        for organ in (o for o in organs if o.start >= cursor and o.start < clause[1]):
            gap = text[cursor : organ.start]
            if not (
                _JOIN.match(gap)
                or re.match(r"^\s*(?:the|der|die|den|dem|both|beiden?|multiple|several)?\s*$", gap, re.IGNORECASE)
            ):
                break
            if any(p.start >= organ.end and p.start - organ.end <= 2 for p in primaries):
                break
            found.append(organ)
            cursor = organ.end
    if not found and kind == "noun":
        # "liver lesion suspicious for metastasis", "Leberherd, V.a. Metastase": an organ with a
        # lesion word shortly before the cue
        for organ in reversed([o for o in organs if o.end <= cue.start]):
            if ctx.words_between(organ.end, cue.start) > _LESION_LINK_WORDS:
                break
            if any(ctx.words_between(organ.end, les.start) <= 1 for les in lesion_index.between(organ.end, cue.start)):
                found.append(organ)
                break
    return found


def find_nodes(
    text: str, ctx: TextContext, stated_n: str | None, stated_text: str | None = None
) -> tuple[NodeFinding, list[Entity]]:
    """Regional lymph node findings; a stated TNM ("pN1 (2/14)") contributes its node counts."""
    words, mets, negs = _node_matchers()
    entities: list[Entity] = []
    positive: int | None = None
    examined: int | None = None
    negated = False
    involved = False
    stations: list[str] = []
    contralateral = supraclavicular = fixed = False
    node_hits = sorted([*words.find(text), *mets.find(text)], key=lambda h: h.start)
    examined_m = flat_matcher("nodes", "examined_words")
    positive_m = flat_matcher("nodes", "positive_words")
    station_m = matcher("nodes", "stations")
    flag_m = {k: flat_matcher("nodes", k) for k in ("contralateral", "supraclavicular", "fixed_or_matted")}
    for hit in negs.find(text):
        entities.append(Entity(text=hit.text, label="NODES_NEGATED", start=hit.start, end=hit.end))
        negated = True
    # one pass per clause, after every node mention in it has been seen: a clause holds a
    # nodal-metastasis phrase ("supraclavicular lymph node metastasis") and plain node words alike
    clause_status: dict[tuple[int, int], tuple[bool, bool]] = {}
    for hit in node_hits:
        clause = ctx.clause(hit.start)
        status = ctx.assertion(hit.start, hit.end)
        is_met = hit.value == "node_metastasis"
        if is_met:
            entities.append(Entity(text=hit.text, label=_label("NODES", status), start=hit.start, end=hit.end))
            if status == "negated":
                negated = True
            elif status == "affirmed":
                involved = True
        met_before, affirmed_before = clause_status.get(clause, (False, False))
        clause_status[clause] = (
            met_before or (is_met and status == "affirmed"),
            affirmed_before or status == "affirmed",
        )
    # "Lymph nodes: negative for tumor (0/3)", "keine Lymphknotenmetastasen": a negated
    # malignancy word in a clause about nodes says the nodes are free
    tumour_mentions = [
        *flat_matcher("histology", "malignant").find(text),
        *flat_matcher("histology", "tumour_words").find(text),
        *flat_matcher("metastasis", "noun_cues").find(text),
        *flat_matcher("metastasis", "adjective_cues").find(text),
    ]
    negated_clauses = {
        ctx.clause(h.start)
        for h in tumour_mentions
        if ctx.clause(h.start) in clause_status and ctx.assertion(h.start, h.end) == "negated"
    }
    for clause, (has_met, has_affirmed) in clause_status.items():
        ctext = text[clause[0] : clause[1]]
        if clause in negated_clauses and not has_met:
            negated = True
        p_count, e_count = _counts(ctext, examined_m, positive_m)
        if e_count is not None and (examined is None or e_count > examined):
            examined = e_count
            positive = p_count if p_count is not None else positive
        elif p_count is not None and positive is None:
            positive = p_count
        if not has_affirmed:
            continue
        if not (has_met or positive_m.find(ctext) or (p_count or 0) > 0):
            continue
        for st in station_m.find(ctext):
            if st.value not in stations:
                stations.append(st.value)
        for sm in _STATION.finditer(ctext):
            name = sm.group(0).strip()
            if name not in stations:
                stations.append(name)
        contralateral = contralateral or bool(flag_m["contralateral"].find(ctext))
        supraclavicular = supraclavicular or bool(flag_m["supraclavicular"].find(ctext))
        fixed = fixed or bool(flag_m["fixed_or_matted"].find(ctext))
    if stated_text and examined is None:
        count = _COUNT_SLASH.search(stated_text)
        if count and int(count.group(1)) <= int(count.group(2)):
            positive, examined = int(count.group(1)), int(count.group(2))
    if positive is not None and positive > 0:
        involved = True
    if stated_n:
        n_cat = stated_n[1:2]
        if n_cat == "0":
            if positive is None:
                positive = 0
            negated = True
    if positive == 0 and examined is not None:
        negated = True
    if involved:
        negated = negated and positive == 0
    if "supraclavicular" in stations:
        supraclavicular = True
    return (
        NodeFinding(
            positive=positive,
            examined=examined,
            stations=tuple(stations),
            contralateral=contralateral,
            supraclavicular=supraclavicular,
            fixed_or_matted=fixed,
            negated=negated and not involved,
        ),
        entities,
    )


def _counts(
    clause_text: str, examined_m: PhraseMatcher[str], positive_m: PhraseMatcher[str]
) -> tuple[int | None, int | None]:
    """Positive and examined node counts stated in one clause."""
    for regex in (_COUNT_OF, _COUNT_SLASH):
        for m in regex.finditer(clause_text):
            pos, total = int(m.group(1)), int(m.group(2))
            if 0 <= pos <= total <= 150:
                return pos, total
    positive: int | None = None
    examined: int | None = None
    for hit in examined_m.find(clause_text):
        num = _NUMBER_AFTER.match(clause_text[hit.end :])
        if num:
            examined = int(num.group(1))
            break
    for hit in positive_m.find(clause_text):
        num = _NUMBER_AFTER.match(clause_text[hit.end :])
        if num:
            positive = int(num.group(1))
            break
    if examined is not None and positive is not None and positive > examined:
        positive = None
    return positive, examined


def find_extent(text: str, ctx: TextContext) -> tuple[list[tuple[str, int, int]], list[Entity]]:
    """Affirmed extent phrases mapped to EXTENT_TERMS, with their spans."""
    found: list[tuple[str, int, int]] = []
    entities: list[Entity] = []
    for hit in matcher("extent", "terms").find(text):
        if hit.value not in EXTENT_TERMS:
            continue
        status = ctx.assertion(hit.start, hit.end)
        entities.append(
            Entity(text=hit.text, label=_label("EXTENT", status), start=hit.start, end=hit.end, code=hit.value)
        )
        if status == "affirmed":
            found.append((hit.value, hit.start, hit.end))
    return found, entities
