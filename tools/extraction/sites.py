"""Primary tumours: site, subsite, laterality and histology.

A site word alone is anatomy, not a diagnosis ("lungs clear"). A site becomes a primary-tumour
candidate when its mention is tied to a malignancy: a site term that itself names a cancer
("NSCLC", "Rektumkarzinom"), a histology that implies the organ (HCC -> liver), or a malignancy
or histology word in the same clause. Mentions inside a metastasis statement ("metastatic to
the liver", "Lebermetastasen") never found a primary; a stated unknown primary (CUP) stands
alone because the organs such a note names are the sites of its metastases.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast

from oncoboard.domain import Entity, Site
from tools.extraction.lexicon import Hit, HitIndex, PhraseMatcher, flat_matcher, lexicon, matcher
from tools.extraction.negation import TextContext

_PAIRED = {"lung", "breast", "kidney", "ovary", "adrenal gland", "testis"}
_STRONG_WINDOW = 12
_WEAK_WINDOW = 5
# no word window reaches further than this many characters
_RADIUS = 400
_MAX_ANCHORS = 50


@dataclass(frozen=True, slots=True)
class SiteTerm:
    """Payload of a site lexicon term."""

    site: Site
    subsite: str | None
    laterality: str | None
    cancer: bool


@dataclass(frozen=True, slots=True)
class HistologyTerm:
    """Payload of a histology lexicon term."""

    histology: str
    icdo3: str | None
    site: Site | None
    rank: int


@dataclass
class SiteCandidate:
    """Everything known about one candidate primary site."""

    site: Site
    organ: str | None
    anchors: list[Hit[SiteTerm]] = field(default_factory=list)
    strong: int = 0
    tight: int = 0
    in_metastasis_context: int = 0
    histology_hits: list[Hit[HistologyTerm]] = field(default_factory=list)

    @property
    def first(self) -> int:
        """Position of the first anchored mention."""
        return min(a.start for a in self.anchors)


@dataclass
class SiteResult:
    """Primary-site analysis of a text."""

    oncology: bool
    candidates: list[SiteCandidate]
    histologies: list[Hit[HistologyTerm]]
    entities: list[Entity]


@lru_cache(maxsize=1)
def _site_matcher() -> PhraseMatcher[SiteTerm]:
    entries: list[tuple[str, SiteTerm]] = []
    for group in lexicon("sites")["groups"]:
        payload = SiteTerm(
            site=cast(Site, group["site"]),
            subsite=group.get("subsite"),
            laterality=group.get("laterality"),
            cancer=bool(group.get("cancer", False)),
        )
        entries.extend((str(t), payload) for t in group["terms"])
    return PhraseMatcher(entries)


@lru_cache(maxsize=1)
def _histology_matcher() -> PhraseMatcher[HistologyTerm]:
    entries: list[tuple[str, HistologyTerm]] = []
    for item in lexicon("histology")["types"]:
        payload = HistologyTerm(
            str(item["histology"]),
            item.get("icdo3"),
            cast(Site | None, item.get("site")),
            int(item.get("rank", 2)),
        )
        entries.extend((str(t), payload) for t in item["terms"])
    return PhraseMatcher(entries)


def _within(ctx: TextContext, a: tuple[int, int], b: tuple[int, int], words: int) -> bool:
    if ctx.clause(a[0]) != ctx.clause(b[0]):
        return False
    if a[0] < b[1] and b[0] < a[1]:
        return True
    lo, hi = (a[1], b[0]) if a[0] < b[0] else (b[1], a[0])
    return ctx.words_between(lo, hi) <= words


def analyse_sites(text: str, ctx: TextContext, excluded: list[tuple[int, int]], has_tnm: bool) -> SiteResult:
    """Find the primary tumour sites of ``text``; ``excluded`` are spans of metastasis organs."""
    entities: list[Entity] = []
    histos_all = _histology_matcher().find(text)
    histos: list[Hit[HistologyTerm]] = []
    for hx in histos_all:
        status = ctx.assertion(hx.start, hx.end)
        label = "HISTOLOGY" if status == "affirmed" else f"HISTOLOGY_{status.upper()}"
        entities.append(Entity(text=hx.text, label=label, start=hx.start, end=hx.end, code=hx.value.icdo3))
        if status == "affirmed":
            histos.append(hx)
    malignant = [
        h for h in flat_matcher("histology", "malignant").find(text) if ctx.assertion(h.start, h.end) == "affirmed"
    ]
    tumour_words = [
        h for h in flat_matcher("histology", "tumour_words").find(text) if ctx.assertion(h.start, h.end) == "affirmed"
    ]
    met_words = [
        *flat_matcher("metastasis", "noun_cues").find(text),
        *flat_matcher("metastasis", "adjective_cues").find(text),
    ]
    primary_words = flat_matcher("sites", "primary_cues").find(text)
    # "no distant metastases" beside the primary does not make its clause a metastasis statement
    met_clauses = {ctx.clause(w.start) for w in met_words if ctx.assertion(w.start, w.end) != "negated"}
    primary_clauses = {ctx.clause(w.start) for w in primary_words}

    covered: set[int] = set()
    for s_start, s_end in excluded:
        covered.update(range(s_start, s_end))
    site_mentions = [sh for sh in _site_matcher().find(text) if not any(i in covered for i in range(sh.start, sh.end))]
    affirmed_sites: list[Hit[SiteTerm]] = []
    for h in site_mentions:
        if not h.value.cancer and _organ_function(text, ctx, h):
            continue
        status = ctx.assertion(h.start, h.end)
        if status != "affirmed":
            entities.append(Entity(text=h.text, label=f"SITE_{status.upper()}", start=h.start, end=h.end))
            continue
        affirmed_sites.append(h)

    oncology = bool(histos or malignant or has_tnm or any(a.value.cancer for a in affirmed_sites))
    candidates: dict[tuple[str, str | None], SiteCandidate] = {}

    def candidate(site: Site, subsite: str | None) -> SiteCandidate:
        organ = subsite if site == "other" else None
        key = (site, organ)
        if key not in candidates:
            candidates[key] = SiteCandidate(site=site, organ=organ)
        return candidates[key]

    malignant_index: HitIndex[object] = HitIndex([*histos, *malignant])  # type: ignore[list-item]
    tumour_index = HitIndex(tumour_words)
    for h in affirmed_sites:
        span = (h.start, h.end)
        clause = ctx.clause(h.start)
        lo, hi = max(clause[0], h.start - _RADIUS), min(clause[1], h.end + _RADIUS)
        malignant_spans = [(m.start, m.end) for m in malignant_index.between(lo, hi)]
        strong = h.value.cancer or any(_within(ctx, span, m, _STRONG_WINDOW) for m in malignant_spans)
        weak = oncology and any(
            _within(ctx, span, (t.start, t.end), _WEAK_WINDOW) for t in tumour_index.between(lo, hi)
        )
        if not (strong or weak):
            continue
        entities.append(Entity(text=h.text, label="SITE", start=h.start, end=h.end, code=h.value.site))
        c = candidate(h.value.site, h.value.subsite)
        c.anchors.append(h)
        tight = h.value.cancer or any(_adjacent(text, span, m) for m in malignant_spans)
        if tight:
            c.tight += 1
        # "Liver biopsy: metastatic adenocarcinoma" names the organ of a metastasis, not a primary;
        # a site named together with its histology ("carcinoma of the left lower lobe") stays one
        if clause in met_clauses and clause not in primary_clauses and not tight:
            c.in_metastasis_context += 1
        elif strong:
            c.strong += 1
    for hh in histos:
        implied = hh.value.site
        if implied is None:
            continue
        c = candidate(implied, None)
        c.anchors.append(Hit(hh.start, hh.end, hh.text, SiteTerm(implied, None, None, True)))
        c.strong += 1
        c.tight += 1
    for c in candidates.values():
        c.histology_hits = [hh for hh in histos if hh.value.site in (None, c.site)]

    several = bool(flat_matcher("sites", "multiple_primary_cues").find(text))
    chosen = _choose(list(candidates.values()), several_primaries=several)
    if oncology and not chosen and affirmed_sites:
        # reports often name the specimen site apart from the diagnosis line ("Specimen: right
        # lower lobe ... Diagnosis: squamous cell carcinoma"): fall back to the organ named most
        loose: dict[tuple[str, str | None], SiteCandidate] = {}
        for a in affirmed_sites:
            organ = a.value.subsite if a.value.site == "other" else None
            c = loose.setdefault((a.value.site, organ), SiteCandidate(site=a.value.site, organ=organ))
            c.anchors.append(a)
            entities.append(Entity(text=a.text, label="SITE", start=a.start, end=a.end, code=a.value.site))
        ranked = sorted(loose.values(), key=lambda c: (c.site == "other", -len(c.anchors), c.first))
        chosen = ranked[:1]
        for c in chosen:
            c.histology_hits = [hh for hh in histos if hh.value.site in (None, c.site)]
    if not oncology:
        chosen = []
    return SiteResult(oncology=oncology, candidates=chosen, histologies=histos, entities=entities)


_FUNCTION_REACH_WORDS = 3


@lru_cache(maxsize=1)
def _function_stems() -> tuple[str, ...]:
    return tuple(str(w).lower().rstrip("*") for w in lexicon("sites")["organ_function_words"])


def _organ_function(text: str, ctx: TextContext, hit: Hit[SiteTerm]) -> bool:
    """The organ word speaks of function or benign disease ("renal and hepatic function", "Leberwerte")."""
    words = flat_matcher("sites", "organ_function_words")
    mention = hit.text.lower()
    # German compounds carry the function inside the organ word ("Nierenfunktion", "Leberwerte")
    if any(len(stem) > 4 and stem in mention[3:] for stem in _function_stems()):
        return True
    clause_end = ctx.clause(hit.start)[1]
    for w in words.find(text[hit.end : min(clause_end, hit.end + 60)]):
        if ctx.words_between(hit.end, hit.end + w.start) <= _FUNCTION_REACH_WORDS:
            return True
    return False


def _choose(cands: list[SiteCandidate], several_primaries: bool = False) -> list[SiteCandidate]:
    """The primary sites among the candidates, the leading one first.

    ``several_primaries``: the text says it describes independent cancers, so every named site with
    its own malignancy evidence is kept without the tighter test for a second primary.
    """
    if not cands:
        return []
    cup = [c for c in cands if c.site == "unknown_primary" and c.strong]
    if cup:
        return cup[:1]
    named = [c for c in cands if c.strong > 0]
    if not named:
        named = sorted(cands, key=lambda c: (-len(c.anchors), c.first))[:1]
    # an "other" organ next to a named site is usually a neighbouring structure, not a second cancer
    specific = [c for c in named if c.site != "other"]
    if specific:
        # ... unless only the other organ is named as the cancer itself ("left nephrectomy and adrenal
        # mass resection: adrenocortical carcinoma"): then the named site is the neighbour
        if not any(c.tight for c in specific):
            specific = [c for c in named if c.site == "other" and c.tight] or specific
        named = specific + [c for c in named if c.site == "other" and c.strong >= 2 and c not in specific]
    named.sort(key=lambda c: (-c.strong, c.first))
    # a site seen once while the leading one is established many times is most often a mention in
    # passing (neighbouring organ, differential); multiple primaries need their own evidence
    lead = named[0]
    # a second primary must be named as a cancer of its own ("lung adenocarcinoma", "carcinoma of
    # the prostate", "Mammakarzinom"), not merely share a clause with the first one's histology
    # ("urothelial carcinoma involving the prostatic urethra")
    if several_primaries:
        return [lead] + [c for c in named[1:] if c.site != "other" and c.strong > 0]
    kept = [lead] + [c for c in named[1:] if c.tight > 0 and (c.strong >= 2 or c.strong * 4 >= lead.strong)]
    return kept


_TIGHT_GAP = re.compile(
    r"^[\s,\-]*(?:(?:of|of the|in the|in|der|des|dem|the|im|am)\s+)?(?:(?:left|right|linken|rechten)\s+)?$",
    re.IGNORECASE,
)


def _adjacent(text: str, site: tuple[int, int], malignant: tuple[int, int]) -> bool:
    """Site and malignancy words form one name: "lung adenocarcinoma", "carcinoma of the lung"."""
    if site[0] < malignant[1] and malignant[0] < site[1]:
        return True
    if site[1] <= malignant[0]:
        return text[site[1] : malignant[0]].strip(" -") == ""
    return bool(_TIGHT_GAP.match(text[malignant[1] : site[0]]))


def subsite_and_laterality(
    text: str, ctx: TextContext, cand: SiteCandidate, all_site_hits: list[Hit[SiteTerm]]
) -> tuple[str | None, str | None]:
    """The most specific subsite of a candidate and the laterality of a paired organ."""
    if cand.site == "other":
        subsite = cand.organ
    else:
        subsite = next((a.value.subsite for a in cand.anchors if a.value.subsite), None)
        if subsite is None:
            anchor_clauses = {ctx.clause(a.start) for a in cand.anchors}
            for h in all_site_hits:
                if h.value.site == cand.site and h.value.subsite and ctx.clause(h.start) in anchor_clauses:
                    subsite = h.value.subsite
                    break
        if subsite is None:
            # "Left breast-conserving surgery. Invasive ductal carcinoma in the upper outer
            # quadrant": the subsite sentence need not name the organ; one subsite named for
            # the site anywhere in the text is taken, several different ones are left open
            named = {h.value.subsite for h in all_site_hits if h.value.site == cand.site and h.value.subsite}
            if len(named) == 1:
                subsite = named.pop()
    laterality = next((a.value.laterality for a in cand.anchors if a.value.laterality), None)
    paired = cand.site in _PAIRED or (cand.organ or "") in _PAIRED
    if laterality is None and paired:
        lat_index = HitIndex(matcher("sites", "laterality").find(text))
        for a in cand.anchors[:_MAX_ANCHORS]:
            for lh in lat_index.between(a.start - _RADIUS, a.end + _RADIUS):
                if ctx.clause(lh.start) != ctx.clause(a.start):
                    continue
                before = lh.end <= a.start and ctx.words_between(lh.end, a.start) <= 3
                after = lh.start >= a.end and ctx.words_between(a.end, lh.start) <= 2
                if before or after:
                    laterality = lh.value
                    break
            if laterality:
                break
    return subsite, laterality if paired or laterality else None


def site_hits(text: str, ctx: TextContext) -> list[Hit[SiteTerm]]:
    """All affirmed site mentions."""
    return [h for h in _site_matcher().find(text) if ctx.assertion(h.start, h.end) == "affirmed"]


def best_histology(cand: SiteCandidate, ctx: TextContext) -> Hit[HistologyTerm] | None:
    """The histology that describes a candidate: implied by the site first, then specific, nearest."""
    hits = cand.histology_hits
    if not hits:
        return None
    anchors = cand.anchors[:_MAX_ANCHORS]
    anchor_clauses = {ctx.clause(a.start) for a in anchors}
    starts = sorted(a.start for a in anchors)

    def nearest(pos: int) -> int:
        i = bisect.bisect_left(starts, pos)
        near = [abs(pos - starts[j]) for j in (i - 1, i) if 0 <= j < len(starts)]
        return min(near) if near else 0

    def score(h: Hit[HistologyTerm]) -> tuple[int, int, int, int]:
        implied = 1 if h.value.site == cand.site else 0
        same_clause = 1 if ctx.clause(h.start) in anchor_clauses else 0
        distance = nearest(h.start)
        return h.value.rank, implied, same_clause, -distance

    best = max(hits, key=score)
    if best.value.icdo3 and best.value.icdo3.endswith("/2"):
        # an invasive carcinoma beside its in-situ component is the diagnosis ("invasive ductal
        # carcinoma with DCIS"): T and the code follow the invasive part
        invasive = [
            h
            for h in hits
            if h.value.icdo3
            and h.value.icdo3.endswith("/3")
            and h.value.rank >= best.value.rank
            and h.value.site in (None, cand.site)
        ]
        if invasive:
            return max(invasive, key=score)
    return best
