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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from oncoboard.domain import EXTENT_TERMS, METASTASIS_SITES, Entity, NodeFinding
from tools.extraction.lexicon import Hit, HitIndex, PhraseMatcher, flat_matcher, lexicon, matcher
from tools.extraction.negation import Assertion, TextContext
from tools.extraction.organ_extent import QUOTED_T_DEFINITION

_JOIN = re.compile(r"^[\s,]*(?:and|und|or|oder|sowie|&|/|,)?[\s,]*$", re.IGNORECASE)
_COUNT_SLASH = re.compile(r"(?<![\d/.,])\(?\s*(\d{1,2})\s*/\s*(\d{1,3})\s*\)?(?![\d/])")
_COUNT_OF = re.compile(
    r"(?<![\d.,])(\d{1,2})\s*(?:of|out of|von|aus|/)\s*(\d{1,3})(?![\d.,])",
    re.IGNORECASE,
)
_WORD_OF = re.compile(r"(?i)(?<![\w.,])([a-zäöüß]+)\s+(?:of|out of|von|aus)\s+(\d{1,3})(?![\d.,])")
_STATION = re.compile(r"(?i)\b(?:station|stations|level|lk-station|region)\s*(\d{1,2}[RLrl]?|[IVX]{1,4}[ab]?)\b")
_LESION_LINK_WORDS = 8
_STATION_VERDICT_CHARS = 80
# a histology named by its stem: "adenocarcinoma", "Plattenepithelkarzinom", "sarcoma"
_MALIGNANT_STEM = re.compile(r"(?i)^\W{0,2}[\w-]*(?:carcinom|karzinom|sarcom|sarkom|melanom|lymphom|blastom)")
_NUMBER_AFTER = re.compile(r"^\D{0,25}?(\d{1,3})(?![\d/]|[.,]\d)")
# Synoptic report lines under a "Lymph nodes:" heading, which name no node themselves:
# "Number with metastasis: 11. Total number examined: 40", "Anzahl befallener: 3".
_SYNOPTIC_WINDOW = 200
_SYNOPTIC_POSITIVE = re.compile(
    r"(?i)\b(?:number(?:ed)?|no\.|anzahl)\s+(?:of\s+(?:regional\s+)?(?:lymph\s+)?nodes\s+)?"
    r"(?:with\s+metasta\w+|positive|involved|befallene\w*|positive\w*|tumorbefallene\w*)\s*(?:is|:)?\s*(\d{1,3})(?!\d|[.,]\d)"
)
_SYNOPTIC_EXAMINED = re.compile(
    r"(?i)\b(?:total\s+)?(?:number|no\.|anzahl)\s+(?:of\s+(?:regional\s+)?(?:lymph\s+)?nodes\s+)?"
    r"(?:examined|retrieved|sampled|untersuchte\w*)\s*(?:is|:)?\s*(\d{1,3})(?!\d|[.,]\d)"
)


@dataclass
class MetastasisResult:
    """Distant metastases: affirmed sites, global negation, and the organ spans they cover."""

    sites: list[str] = field(default_factory=list)
    negated_global: bool = False
    negated_partial: bool = False
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
    words_m, mets_m, _ = _node_matchers()
    # a node-negative phrase ("no extrahepatic spread") may be a distant statement as well
    node_word_spans = [(h.start, h.end) for h in (*words_m.find(text), *mets_m.find(text))]
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
        elif status == "negated":
            result.negated_partial = True

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
        nodal = _nodal(ctx, cue, node_word_spans) and clause not in distant_clauses
        if kind == "noun" and is_global and not nodal:
            _global_statement(text, ctx, cue, status, result)
    def negated_study(hit: Hit[str]) -> None:
        result.entities.append(
            Entity(text=hit.text, label="METASTASIS_NEGATED", start=hit.start, end=hit.end, code=None)
        )
        result.negated_partial = True

    _modality_lesions(text, ctx, record, negated_study)
    # global statements without a metastasis noun: "no nodal or distant disease", "no extrahepatic spread"
    cue_spans = [(c.start, c.end) for c, kind in cues if kind == "noun"]
    for hit in global_index.between(0, len(text)):
        if _overlaps((hit.start, hit.end), cue_spans) or _overlaps((hit.start, hit.end), claimed):
            continue
        if _nodal(ctx, hit, node_word_spans) and ctx.clause(hit.start) not in distant_clauses:
            continue
        _global_statement(text, ctx, hit, ctx.assertion(hit.start, hit.end), result)
    if result.negated_partial and not result.sites and not result.uncertain:
        # "no liver or peritoneal metastases", "keine LK- oder Knochenmetastasen" with nothing else
        # described: the staging found no distant spread (a narrowed negation beside an affirmed
        # metastasis stays narrow, so it raises no conflict)
        result.negated_global = True
    return result


def _modality_lesions(
    text: str,
    ctx: TextContext,
    record: Callable[[str, tuple[int, int], Assertion, tuple[int, int]], None],
    negated_study: Callable[[Hit[str]], None],
) -> None:
    """Lesions reported by an organ's staging study ("Bone scan: more than 10 lesions") are metastases there."""
    benign = flat_matcher("metastasis", "modality_benign_words")
    lesion_m = flat_matcher("metastasis", "modality_lesion_words")
    normal_m = flat_matcher("metastasis", "modality_negative_words")
    for study in matcher("metastasis", "modality_sites").find(text):
        clause = ctx.clause(study.start)
        ctext = text[clause[0] : clause[1]]
        if benign.find(ctext):
            continue
        lesions = lesion_m.find(text[study.end : clause[1]])
        for lesion in lesions:
            start, end = study.end + lesion.start, study.end + lesion.end
            record(study.value, (study.start, end), ctx.assertion(start, end), (start, end))
            break
        verdict = normal_m.find(text[study.end : clause[1]])
        if not lesions and verdict and ctx.words_between(study.end, study.end + verdict[0].start) <= 2:
            # "bone scan negative": the study found no metastasis in its organ
            record(study.value, (study.start, study.end + verdict[0].end), "negated", (study.start, study.end))
    for study in flat_matcher("metastasis", "modality_global").find(text):
        clause_end = ctx.clause(study.start)[1]
        verdict = normal_m.find(text[study.end : clause_end])
        if verdict and ctx.words_between(study.end, study.end + verdict[0].start) <= 2:
            # "Staging CT chest negative": a staging study that found nothing (stays narrow beside
            # any metastasis the text describes)
            negated_study(study)


def _nodal(ctx: TextContext, cue: Hit[str], node_spans: list[tuple[int, int]]) -> bool:
    """The metastasis word speaks of lymph nodes ("lymph node metastases", "nodes ... metastatic")."""
    clause = ctx.clause(cue.start)
    for start, end in node_spans:
        if start < cue.end and cue.start < end:
            return True
        gap = ctx.text[end : cue.start]
        if (
            clause[0] <= start
            and end <= cue.start
            and ctx.words_between(end, cue.start) <= 3
            and not re.search(r"[,;:]", gap)
        ):
            return True
    return False


def _global_statement(text: str, ctx: TextContext, cue: Hit[str], status: Assertion, result: MetastasisResult) -> None:
    """Record a metastasis statement that names no organ; a negated one excludes distant spread
    unless a qualifier narrows it ("no visceral metastases", "keine weiteren Metastasen")."""
    result.entities.append(
        Entity(text=cue.text, label=_label("METASTASIS", status), start=cue.start, end=cue.end, code=None)
    )
    if status != "negated":
        return
    clause = ctx.clause(cue.start)
    for q in flat_matcher("metastasis", "partial_qualifiers").find(text[max(clause[0], cue.start - 40) : cue.end]):
        q_end = max(clause[0], cue.start - 40) + q.end
        # adjacent or one word apart ("no visceral metastases", "no other distant metastases"); "bone
        # scan without extrahepatic disease" names a study, not a narrower statement
        if ctx.words_between(q_end, cue.start) <= 1 and not re.search(r"[,;:()]", text[q_end : cue.start]):
            result.negated_partial = True
            return
    result.negated_global = True


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
    if kind == "adjective" and not found:
        # "metastatic liver lesions", "metastatic bone disease": the organ right after the
        # adjective names the site when a lesion word follows it ("metastatic lung cancer" is a
        # primary and has none)
        lesion_words = flat_matcher("metastasis", "adjective_lesion_words")
        for organ in (o for o in organs if o.start >= cue.end and o.start < clause[1]):
            if not re.fullmatch(r"\s+", text[cue.end : organ.start]):
                break
            span = text[organ.start : min(clause[1], organ.end + 30)]
            width = organ.end - organ.start
            # the lesion word follows the organ, or closes a compound ("Knochenläsionen")
            if any(h.start <= width + 1 and h.end > width - 1 for h in lesion_words.find(span)):
                found.append(organ)
            break
    if not found and kind == "adjective" and _names_a_malignancy(text, cue.end, clause[1]):
        # "biopsy of a lesion in liver segment VI shows metastatic adenocarcinoma": the sampled organ
        # (with a lesion word or a biopsy beside it) is where the carcinoma spread
        sampled = re.compile(r"(?i)\b(?:biops\w*|fna|fnb|aspirat\w*|punktion\w*|stanz\w*|resect\w*|resektion\w*)")
        for organ in reversed([o for o in organs if o.end <= cue.start]):
            if ctx.words_between(organ.end, cue.start) > _LESION_LINK_WORDS:
                break
            lesion_near = any(
                ctx.words_between(les.end, organ.start) <= 2 or ctx.words_between(organ.end, les.start) <= 1
                for les in lesion_index.between(max(clause[0], organ.start - 60), cue.start)
            )
            if lesion_near or sampled.search(text, max(clause[0], organ.start - 60), cue.start):
                found.append(organ)
                break
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


def _names_a_malignancy(text: str, pos: int, clause_end: int) -> bool:
    """A malignancy word follows right after ``pos`` ("metastatic adenocarcinoma")."""
    window = text[pos : min(clause_end, pos + 40)]
    if _MALIGNANT_STEM.match(window):
        return True
    hits = flat_matcher("histology", "malignant").find(window)
    return bool(hits) and hits[0].start <= 2


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
    clinical_m = flat_matcher("nodes", "clinical_involvement")
    not_assessed_m = flat_matcher("nodes", "not_assessed_words")
    # one pass per clause, after every node mention in it has been seen: a clause holds a
    # nodal-metastasis phrase ("supraclavicular lymph node metastasis") and plain node words alike
    clause_status: dict[tuple[int, int], tuple[bool, bool]] = {}
    affirmed_words: list[Hit[str]] = []
    for hit in node_hits:
        clause = ctx.clause(hit.start)
        status = ctx.assertion(hit.start, hit.end)
        is_met = hit.value == "node_metastasis"
        if status == "uncertain" and _clinically_involved(text, ctx, hit, clinical_m):
            # clinical N rests on imaging: "suspicious" or "suspekte" nodes are the finding itself
            status = "affirmed"
        if is_met:
            entities.append(Entity(text=hit.text, label=_label("NODES", status), start=hit.start, end=hit.end))
            if status == "negated":
                negated = True
            elif status == "affirmed":
                involved = True
        elif status == "negated" and (
            clinical_m.find(text[clause[0] : clause[1]]) or not not_assessed_m.find(text[clause[0] : clause[1]])
        ):
            # "no enlarged lymph nodes (identified)", "keine vergrößerten Lymphknoten": the nodes were
            # assessed and found free ("no lymph nodes identified" says they were not assessed: NX)
            entities.append(Entity(text=hit.text, label="NODES_NEGATED", start=hit.start, end=hit.end))
            negated = True
        elif status == "affirmed":
            affirmed_words.append(hit)
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
        clinical = bool(clinical_m.find(ctext))
        verdict = _node_verdicts(positive_m, ctext)
        if p_count is None and e_count is None and has_affirmed and (clinical or has_met or verdict):
            words_here = [h for h in affirmed_words if clause[0] <= h.start < clause[1]]
            p_count = _described_count(text, ctx, words_here)
        if e_count is not None and (examined is None or e_count > examined):
            examined = e_count
        if p_count is not None:
            # node groups of one report ("(A) pelvic nodes 1/13 ... (B) 0/15", or a synoptic
            # summary repeating a count): the largest involved count is kept, a later free
            # group never clears an involved one
            positive = p_count if positive is None else max(positive, p_count)
        if not has_affirmed:
            continue
        if p_count == 0 and not clinical:
            # "Lymph nodes: 0/2 positive for metastasis": a zero count says these nodes are free
            continue
        if not (has_met or clinical or verdict or (p_count or 0) > 0):
            continue
        involved = True
        for st in station_m.find(ctext):
            if ctx.assertion(clause[0] + st.start, clause[0] + st.end) == "negated":
                continue
            if st.value not in stations:
                stations.append(st.value)
        for sm in _STATION.finditer(ctext):
            name = sm.group(0).strip()
            if ctx.assertion(clause[0] + sm.start(), clause[0] + sm.end()) == "negated":
                continue
            if name not in stations:
                stations.append(name)
        contralateral = contralateral or bool(flag_m["contralateral"].find(ctext))
        supraclavicular = supraclavicular or bool(flag_m["supraclavicular"].find(ctext))
        fixed = fixed or bool(flag_m["fixed_or_matted"].find(ctext))
    for sm in _STATION.finditer(text):
        # "station 4R fine-needle aspirate positive for metastatic carcinoma": a sampled station
        # reported positive is an involved node even where no node word is written
        clause = ctx.clause(sm.start())
        if clause in clause_status or ctx.assertion(sm.start(), sm.end()) != "affirmed":
            continue
        verdicts = [h for h in positive_m.find(text[sm.end() : clause[1]]) if h.start < _STATION_VERDICT_CHARS]
        if not verdicts or ctx.assertion(sm.end() + verdicts[0].start, sm.end() + verdicts[0].end) != "affirmed":
            continue
        involved = True
        if sm.group(0).strip() not in stations:
            stations.append(sm.group(0).strip())
    if positive is None or examined is None:
        synoptic_positive, synoptic_examined = _synoptic_counts(text, node_hits)
        if positive is None:
            positive = synoptic_positive
        if examined is None and (synoptic_examined or 0) >= (positive or 0):
            examined = synoptic_examined
    if stated_text and examined is None:
        count = _COUNT_SLASH.search(stated_text)
        if count and int(count.group(1)) <= int(count.group(2)):
            positive, examined = int(count.group(1)), int(count.group(2))
    if positive is not None and positive > 0:
        involved = True
    if stated_n and not involved:
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


def _node_verdicts(positive_m: PhraseMatcher[str], clause_text: str) -> list[Hit[str]]:
    """Positivity words of a clause that can speak of nodes ("HER2-positive" qualifies a marker)."""
    return [h for h in positive_m.find(clause_text) if not (h.start > 0 and clause_text[h.start - 1] == "-")]


def _synoptic_counts(text: str, node_hits: list[Hit[str]]) -> tuple[int | None, int | None]:
    """Positive and examined counts from the synoptic lines that follow a node heading."""
    for hit in node_hits:
        window = text[hit.end : hit.end + _SYNOPTIC_WINDOW]
        pos = _SYNOPTIC_POSITIVE.search(window)
        exam = _SYNOPTIC_EXAMINED.search(window)
        if pos is None and exam is None:
            continue
        positive = int(pos.group(1)) if pos else None
        examined = int(exam.group(1)) if exam else None
        if positive is not None and examined is not None and positive > examined:
            continue
        return positive, examined
    return None, None


def _clinically_involved(text: str, ctx: TextContext, hit: Hit[str], clinical_m: PhraseMatcher[str]) -> bool:
    """A clinical involvement word ("suspicious", "suspekt", "enlarged") describes this node mention."""
    clause = ctx.clause(hit.start)
    for word in clinical_m.find(text[clause[0] : clause[1]]):
        start = clause[0] + word.start
        end = clause[0] + word.end
        if end <= hit.start and ctx.words_between(end, hit.start) <= 3:
            return True
        if start >= hit.end and ctx.words_between(hit.end, start) <= 2:
            return True
    return False


@lru_cache(maxsize=1)
def _number_words() -> dict[str, int]:
    return {str(k).lower(): int(v) for k, v in lexicon("patient")["number_words"].items()}


_NUMBER_TOKEN = re.compile(r"(?i)(?<![\w.,/])(\d{1,2}|[a-zäöüß]+)(?![\w.,/])")
_UNIT_AFTER = re.compile(r"(?i)^\s*(?:[.,]\d+\s*)?(?:cm|mm)\b")
_STATION_BEFORE = re.compile(r"(?i)\b(?:station|stations|level|levels|segment|region)\s*$")
_TOTAL_BEFORE = re.compile(r"(?i)\b(?:of|out of|von|aus)\s*$")
_NUMBER_IN_BRACKETS = re.compile(r"(?i)^\s*\(\s*(\d{1,2}|[a-zäöüß]+)\s*\)")


def _described_count(text: str, ctx: TextContext, hits: list[Hit[str]]) -> int | None:
    """Involved nodes counted in prose: "four suspicious mesorectal lymph nodes", "Lymphknoten (zwei)"."""
    words = _number_words()
    for hit in hits:
        clause = ctx.clause(hit.start)
        before = text[max(clause[0], hit.start - 60) : hit.start]
        tokens = list(_NUMBER_TOKEN.finditer(before))
        for tok in reversed(tokens[-5:]):
            raw = tok.group(1).lower()
            value = int(raw) if raw.isdigit() else words.get(raw)
            if value is None:
                continue
            # "2.5 cm node" is a size, "station 7 nodes" a location, "(of 23)" a total, not a count
            if (
                _UNIT_AFTER.match(before[tok.end() :])
                or _STATION_BEFORE.search(before[: tok.start()])
                or _TOTAL_BEFORE.search(before[: tok.start()])
            ):
                continue
            if 0 < value <= 50:
                return value
        after = _NUMBER_IN_BRACKETS.match(text[hit.end : hit.end + 20])
        if after:
            raw = after.group(1).lower()
            value = int(raw) if raw.isdigit() else words.get(raw)
            if value is not None and 0 < value <= 50:
                return value
    return None


def _counts(
    clause_text: str, examined_m: PhraseMatcher[str], positive_m: PhraseMatcher[str]
) -> tuple[int | None, int | None]:
    """Positive and examined node counts stated in one clause."""
    samples = flat_matcher("nodes", "sample_words")
    for regex in (_COUNT_OF, _COUNT_SLASH):
        for m in regex.finditer(clause_text):
            if any(h.start <= 2 for h in samples.find(clause_text[m.end() : m.end() + 30])):
                continue  # "4/12 Stanzen positiv": biopsy cores, not nodes
            pos, total = int(m.group(1)), int(m.group(2))
            if 0 <= pos <= total <= 150:
                return pos, total
    words = _number_words()
    for m in _WORD_OF.finditer(clause_text):
        # "two of 25 nodes positive", "zwei von 18 Lymphknoten befallen"
        word_value = words.get(m.group(1).lower())
        total = int(m.group(2))
        if word_value is not None and 0 <= word_value <= total <= 150:
            return word_value, total
    positive: int | None = None
    examined: int | None = None
    for hit in examined_m.find(clause_text):
        num = _NUMBER_AFTER.match(clause_text[hit.end :])
        if num:
            examined = int(num.group(1))
            break
    for hit in positive_m.find(clause_text):
        if hit.start > 0 and clause_text[hit.start - 1] == "-":
            continue  # "HER2-positive (IHC 3+)" qualifies a marker, not the nodes
        num = _NUMBER_AFTER.match(clause_text[hit.end :])
        if num and clause_text[hit.end + num.end() : hit.end + num.end() + 1] != "+":
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
        clause = ctx.clause(hit.start)
        if QUOTED_T_DEFINITION.search(text, clause[0], clause[1]):
            # "pT3: Tumor which is >7 cm or invades chest wall, diaphragm ...": the report quotes the
            # definition of its category; the structures it lists are not findings
            continue
        status = ctx.assertion(hit.start, hit.end)
        entities.append(
            Entity(text=hit.text, label=_label("EXTENT", status), start=hit.start, end=hit.end, code=hit.value)
        )
        if status == "affirmed":
            found.append((hit.value, hit.start, hit.end))
    return found, entities
