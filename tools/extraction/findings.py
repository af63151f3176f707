"""Assembly of the findings of one case text (the public entry point of the package)."""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Literal

from oncoboard.domain import (
    Biomarker,
    Entity,
    Findings,
    NodeFinding,
    Span,
    StructuredData,
    TumorFinding,
)
from tools.extraction.biomarkers import find_biomarkers
from tools.extraction.grading import gleason_grade, histologic_grade
from tools.extraction.lexicon import HitIndex, PhraseMatcher, flat_matcher, lexicon
from tools.extraction.negation import TextContext
from tools.extraction.numbers import SizeHit, find_sizes
from tools.extraction.organ_extent import find_organ_extent, has_organ_extent, node_compartments
from tools.extraction.patient import PatientFacts, extract_patient, normalise_medication
from tools.extraction.sites import (
    SiteCandidate,
    analyse_sites,
    best_histology,
    site_hits,
    subsite_and_laterality,
)
from tools.extraction.spread import find_extent, find_metastases, find_nodes
from tools.extraction.tnm import StatedTNM, best_stated, combine_stated, find_stated_tnm

logger = logging.getLogger(__name__)

_SIZE_CONTEXT_WORDS = 10
_SIZE_AFTER_WORDS = 3
_SIZE_EXCLUDE_BEFORE = 5
_SIZE_EXCLUDE_AFTER = 3
_MAX_TUMOUR_CM = 40.0


@lru_cache(maxsize=1)
def _number_words() -> dict[str, int]:
    return {str(k).lower(): int(v) for k, v in lexicon("patient")["number_words"].items()}


_SOFT_BREAK = re.compile(r"(?<=[\w,)%-])[ \t]*\n(?=[ \t]*[a-zäöüß0-9(])")


def unwrap_soft_breaks(text: str) -> str:
    """The text with hard-wrapped lines joined, same length so every offset stays valid.

    Reports are often wrapped at a fixed width ("consistent with liver\nmetastases"); a line break
    inside a sentence must neither end a negation scope nor split a phrase. A break after sentence
    punctuation or before a capitalised line (a heading, a new item) is kept.
    """
    if "\n" not in text:
        return text
    return _SOFT_BREAK.sub(lambda m: m.group(0).replace("\n", " "), text)


def extract_findings(text: str, lang: Literal["en", "de"], structured: StructuredData | None = None) -> Findings:
    """Extract the oncology findings of a clinical text (English or German).

    Every fact is read deterministically from lexicons in ``knowledge/lexicons``; negated,
    uncertain and hypothetical mentions never become facts (they stay visible as entities whose
    label carries the suffix ``_NEGATED``, ``_UNCERTAIN`` or ``_HYPOTHETICAL``). ``structured``
    wins over the text for age, sex, ECOG and each lab value it gives; its medications are
    added to those the text names (normalised to generic names).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    logger.debug("extracting findings from %d characters (%s)", len(text), lang)
    original = text
    text = unwrap_soft_breaks(text)
    ctx = TextContext(text)
    entities: list[Entity] = []

    statements = find_stated_tnm(text)
    for st in statements:
        entities.append(Entity(text=st.text, label="STAGE", start=st.start, end=st.end))
    mets = find_metastases(text, ctx)
    entities.extend(mets.entities)
    sites = analyse_sites(text, ctx, mets.covered, has_tnm=bool(statements))
    entities.extend(sites.entities)
    patient = extract_patient(text, ctx, lang)
    entities.extend(patient.entities)
    lab_spans = [(e.start, e.end) for e in patient.entities if e.label == "LAB"]
    biomarkers, bio_entities = find_biomarkers(text, ctx, lab_spans)
    entities.extend(bio_entities)

    tumors: list[TumorFinding] = []
    if sites.oncology:
        tumors = _tumours(text, ctx, sites.candidates, statements, mets.sites, mets.negated_global, entities)

    conditions = list(patient.conditions)
    for marker, condition in lexicon("biomarkers").get("conditions_when_positive", {}).items():
        if any(b.name == marker and b.status == "positive" for b in biomarkers) and condition not in conditions:
            conditions.append(str(condition))
    best = best_stated(statements)
    m1 = any(c.startswith("M1") for st in statements for c in st.categories)
    if sites.oncology and (mets.sites or m1) and "metastatic" not in conditions:
        conditions.append("metastatic")
    if any(st.prefix == "yp" for st in statements):
        for cond in ("post_neoadjuvant", "resected"):
            if cond not in conditions:
                conditions.append(cond)
    elif best is not None and best.prefix == "p" and "T" in best.letters and "resected" not in conditions:
        conditions.append("resected")
    if not sites.oncology:
        conditions = [c for c in conditions if c not in ("metastatic", "post_neoadjuvant", "recurrent")]
    setting = patient.setting_hint
    if setting is None and "post_neoadjuvant" in conditions:
        setting = "post_neoadjuvant"
    if not sites.oncology:
        setting = None

    facts = _apply_structured(patient, structured)
    entities.sort(key=lambda e: (e.start, e.end, e.label))
    if text is not original:
        # Entity texts quote the caller's text exactly; only line breaks differ from the working copy.
        entities = [e.model_copy(update={"text": original[e.start : e.end]}) for e in entities]
        tumors = [
            t.model_copy(
                update={
                    "evidence": tuple(sp.model_copy(update={"text": original[sp.start : sp.end]}) for sp in t.evidence)
                }
            )
            for t in tumors
        ]
    return Findings(
        oncology=sites.oncology,
        tumors=tuple(tumors),
        biomarkers=tuple(_only_oncology(biomarkers, sites.oncology)),
        entities=tuple(entities),
        age=facts.age,
        sex=facts.sex,
        ecog=facts.ecog,
        labs=dict(facts.labs),
        conditions=tuple(conditions),
        medications=tuple(facts.medications),
        pregnant="pregnancy" in conditions,
        setting_hint=setting,
    )


def _only_oncology(biomarkers: list[Biomarker], oncology: bool) -> list[Biomarker]:
    # DPYD status matters outside a cancer diagnosis too (fluoropyrimidine safety); the rest does not
    return biomarkers if oncology else [b for b in biomarkers if b.name == "DPYD"]


def _apply_structured(patient: PatientFacts, structured: StructuredData | None) -> PatientFacts:
    if structured is None:
        return patient
    if structured.age is not None:
        patient.age = structured.age
    if structured.sex is not None:
        patient.sex = structured.sex
    if structured.ecog is not None:
        patient.ecog = structured.ecog
    for key, value in structured.labs.items():
        patient.labs[key] = float(value)
    meds: list[str] = []
    for raw in structured.medications:
        for generic in normalise_medication(raw):
            if generic not in meds:
                meds.append(generic)
    patient.medications = meds + [m for m in patient.medications if m not in meds]
    return patient


def _owner(position: int, anchors: Sequence[tuple[int, int]]) -> int:
    """Index of the tumour whose nearest mention precedes ``position`` (else the first one after);
    ``anchors`` are (start, tumour index) pairs sorted by start."""
    if not anchors:
        return 0
    i = bisect.bisect_right(anchors, (position, len(anchors) + 1))
    return anchors[i - 1][1] if i > 0 else anchors[0][1]


# Beyond this many primaries (concatenated reports rather than one patient's note) the node findings
# stay with the first tumour, which keeps the cost of a long text linear.
_MAX_PASSAGE_PRIMARIES = 3


def _own_passages(text: str, anchors: Sequence[tuple[int, int]], idx: int) -> str:
    """``text`` with every passage owned by another tumour blanked out (offsets are kept)."""
    chars = list(text)
    bounds = [a[0] for a in anchors] + [len(text)]
    # sentence ends stay, so the blanked text keeps the original clauses (and clauses stay short)
    kept = "\n.;!?"
    for (start, owner), end in zip(anchors, bounds[1:], strict=True):
        if owner != idx:
            chars[start:end] = [c if c in kept else " " for c in text[start:end]]
    if anchors and anchors[0][1] != idx:
        # text before the first mention belongs to the tumour named first
        chars[: anchors[0][0]] = [c if c in kept else " " for c in text[: anchors[0][0]]]
    return "".join(chars)


def _tumours(
    text: str,
    ctx: TextContext,
    candidates: list[SiteCandidate],
    statements: list[StatedTNM],
    met_sites: list[str],
    met_negated: bool,
    entities: list[Entity],
) -> list[TumorFinding]:
    if not candidates:
        # a malignancy without any organ named: the tumour is recorded with site "other"
        candidates = [SiteCandidate(site="other", organ=None)]
    n = len(candidates)
    anchor_set = {(a.start, idx) for idx, c in enumerate(candidates) for a in c.anchors}
    if n > 1:
        # with several primaries, every mention of a primary's organ opens a passage about it
        # ("(2) Prostate: PSA 8.0, palpable nodule ..."), not only the mentions tied to a histology
        site_index = {c.site: idx for idx, c in enumerate(candidates) if c.site != "other"}
        anchor_set |= {(h.start, site_index[h.value.site]) for h in site_hits(text, ctx) if h.value.site in site_index}
    anchors = sorted(anchor_set)

    def owned(position: int, idx: int) -> bool:
        return n == 1 or _owner(position, anchors) == idx

    sizes = _tumour_sizes(text, ctx)
    # "biopsy of a 2.3 cm lesion in liver segment VI shows metastatic adenocarcinoma": a size nearer
    # to a metastasis than to any mention of the primary in its sentence measures the metastasis
    met_spans = [(e.start, e.end) for e in entities if e.label == "METASTASIS" and e.code]

    def distance(hit: SizeHit, spans: Iterable[tuple[int, int]]) -> int:
        clause = ctx.clause(hit.start)
        gaps = [
            max(start - hit.end, hit.start - end, 0) for start, end in spans if clause[0] <= start < clause[1]
        ]
        return min(gaps, default=len(text))

    anchor_spans = [(start, start + 1) for start, _ in anchors]
    sizes = [h for h in sizes if distance(h, met_spans) >= distance(h, anchor_spans)]
    for hit in sizes:
        entities.append(Entity(text=hit.text, label="SIZE", start=hit.start, end=hit.end))
    extents, extent_entities = find_extent(text, ctx)
    entities.extend(extent_entities)
    count_stated, count_span = _lesion_count(text, ctx)
    all_sites = site_hits(text, ctx)
    histologic = histologic_grade(text, ctx)
    tumours: list[TumorFinding] = []
    for idx, cand in enumerate(candidates):
        my_statements = [s for s in statements if owned(s.start, idx)]
        chosen = combine_stated(my_statements)
        stated_text = " ".join(s.text for s in chosen) if chosen else None
        categories = tuple(c for s in chosen for c in s.categories)
        stated_n = next((c for c in categories if c.startswith("N")), None)
        if 1 < n <= _MAX_PASSAGE_PRIMARIES:
            # several primaries: each reads the node findings of its own passages only
            own_text = _own_passages(text, anchors, idx)
            nodes, node_entities = find_nodes(own_text, TextContext(own_text), stated_n, stated_text)
            entities.extend(node_entities)
        elif idx == 0:
            nodes, node_entities = find_nodes(text, ctx, stated_n, stated_text)
            entities.extend(node_entities)
            compartments = node_compartments(text, ctx, cand.site)
            if compartments and not nodes.negated:
                # thyroid N1a/N1b follows the neck compartment of the involved nodes
                stations = tuple(dict.fromkeys((*nodes.stations, *compartments)))
                nodes = nodes.model_copy(update={"stations": stations})
        else:
            nodes = NodeFinding()
        my_sizes = [h for h in sizes if owned(h.start, idx)]
        lesion_sizes: list[float] = []
        for h in my_sizes:
            for v in h.sizes_cm:
                if v not in lesion_sizes:
                    lesion_sizes.append(v)
        multiple = any(h.is_list for h in my_sizes)
        count = count_stated if (idx == 0 and count_stated is not None) else None
        if count is None and multiple:
            count = len(lesion_sizes)
        size_cm: float | None = None
        if my_sizes:
            size_cm = max(lesion_sizes) if (count or 1) > 1 else my_sizes[0].largest_cm
        if (count or 1) <= 1:
            # one lesion: other measurements in the report (specimen, repeated synoptic lines) are
            # not further lesions, and the stager reads several sizes as several tumours
            lesion_sizes = [size_cm] if size_cm is not None else []
        extent = tuple(dict.fromkeys(e for e, s, _ in extents if owned(s, idx)))
        if has_organ_extent(cand.site):
            # kidney and thyroid T rest on their own structures; the general phrases ("recurrent
            # laryngeal nerve" named as spared, "diaphragm") would misread these reports
            organ_extents, organ_entities = find_organ_extent(text, ctx, cand.site)
            entities.extend(organ_entities)
            extent = tuple(dict.fromkeys(e for e, s, _ in organ_extents if owned(s, idx)))
        subsite, laterality = subsite_and_laterality(text, ctx, cand, all_sites)
        histo = best_histology(cand, ctx)
        # prostate cancer is graded by Gleason pattern and ISUP grade group, not G1-G3
        grade_hit = gleason_grade(text) if cand.site == "prostate" else histologic
        if grade_hit is not None and grade_hit.start >= 0 and (idx == 0 or cand.site == "prostate"):
            entities.append(Entity(text=grade_hit.text, label="GRADE", start=grade_hit.start, end=grade_hit.end))
        evidence: list[Span] = []
        for a in cand.anchors[:3]:
            evidence.append(Span(start=a.start, end=a.end, text=a.text))
        if histo is not None:
            evidence.append(Span(start=histo.start, end=histo.end, text=histo.text))
        for st in chosen:
            evidence.append(Span(start=st.start, end=st.end, text=st.text))
        if my_sizes:
            evidence.append(Span(start=my_sizes[0].start, end=my_sizes[0].end, text=my_sizes[0].text))
        if count_span is not None and idx == 0:
            evidence.append(Span(start=count_span[0], end=count_span[1], text=text[count_span[0] : count_span[1]]))
        m0_stated = any(c.startswith("M0") for c in categories)
        tumours.append(
            TumorFinding(
                site=cand.site,
                primary=True,
                subsite=subsite,
                laterality=laterality,  # type: ignore[arg-type]
                histology=histo.value.histology if histo else None,
                icdo3_morphology=histo.value.icdo3 if histo else None,
                size_cm=size_cm,
                extent=extent,
                nodes=nodes,
                metastases=tuple(met_sites) if idx == 0 else (),
                # "no distant metastases" speaks of the whole patient, hence of every primary
                metastases_negated=met_negated or m0_stated,
                stated_tnm=stated_text,
                grade=grade_hit.grade if grade_hit else None,
                count=count,
                lesion_sizes_cm=tuple(lesion_sizes),
                evidence=tuple(evidence),
            )
        )
    return tumours


@lru_cache(maxsize=1)
def _size_matchers() -> tuple[PhraseMatcher[str], PhraseMatcher[str]]:
    return flat_matcher("patient", "size_context"), flat_matcher("patient", "size_exclude")


def _tumour_sizes(text: str, ctx: TextContext) -> list[SizeHit]:
    """Measurements that describe the tumour (not margins, nodes or specimens)."""
    context_m, exclude_m = _size_matchers()
    link_m = flat_matcher("patient", "size_distance_links")
    after_m = flat_matcher("patient", "size_exclude_after")
    primary_m = flat_matcher("patient", "size_primary_context")
    context_hits = context_m.find(text)
    exclude_index = HitIndex(exclude_m.find(text))
    ctx_starts = [h.start for h in context_hits]
    kept: list[SizeHit] = []

    for hit in find_sizes(text):
        if hit.largest_cm > _MAX_TUMOUR_CM:
            continue
        clause = ctx.clause(hit.start)
        i = bisect.bisect_right(ctx_starts, hit.start)
        near = False
        if i > 0:
            ch = context_hits[i - 1]
            near = ch.start >= clause[0] and ctx.words_between(ch.end, hit.start) <= _SIZE_CONTEXT_WORDS
        if not near and i < len(context_hits):
            # "2.6 cm mass", "6,2 cm große Raumforderung": the tumour word follows the size
            ch = context_hits[i]
            near = ch.start < clause[1] and ctx.words_between(hit.end, ch.start) <= _SIZE_AFTER_WORDS
        if not near:
            continue
        excluded = False
        for ex in exclude_index.between(max(clause[0], hit.start - 300), min(clause[1], hit.end + 300)):
            if ex.end <= hit.start and ctx.words_between(ex.end, hit.start) <= _SIZE_EXCLUDE_BEFORE:
                # the exclusion must be closer than the tumour word ("tumour 2 cm from the margin" keeps)
                last_ctx = context_hits[i - 1] if i > 0 else None
                if last_ctx is None or ex.start > last_ctx.start:
                    excluded = True
            if (
                ex.start >= hit.end
                and ctx.words_between(hit.end, ex.start) <= _SIZE_EXCLUDE_AFTER
                and any(lk.start == 0 for lk in link_m.find(text[hit.end : ex.start].lstrip()))
            ):
                # "1.2 cm from the margin": a distance, not a tumour size
                excluded = True
        after = text[hit.end : min(clause[1], hit.end + 40)].lstrip(" .,:;()")
        if any(a.start == 0 for a in after_m.find(after)):
            excluded = True
        if not excluded:
            kept.append(hit)
    # a size stated as the tumour size ("Tumor size: 2.2 cm", "greatest dimension") leads
    primary = HitIndex(primary_m.find(text))
    lead = [
        h
        for h in kept
        if any(
            ctx.clause(p.start) == ctx.clause(h.start) and ctx.words_between(p.end, h.start) <= _SIZE_CONTEXT_WORDS
            for p in primary.between(max(0, h.start - 200), h.start)
        )
    ]
    return lead + [h for h in kept if h not in lead]


# "three HCC lesions", "three hepatocellular carcinoma lesions", "drei HCC-Herde"; a measurement
# ("6 cm mass") is not a count
_COUNT_RE = re.compile(
    r"(?i)(?<![\w.,])(\d{1,2}|[a-zäöüß]+)\s+(?!(?:cm|mm)\b)(?:[a-zäöüß\-]+\s+){0,2}(?:[a-zäöüß]+-)?$"
)


def _lesion_count(text: str, ctx: TextContext) -> tuple[int | None, tuple[int, int] | None]:
    """A stated number of tumour lesions ("three lesions", "3 Herde", "multifokal")."""
    words = _number_words()
    for hit in flat_matcher("histology", "tumour_words").find(text):
        if not hit.text.lower().endswith(("s", "e", "en", "n")) or ctx.assertion(hit.start, hit.end) != "affirmed":
            continue
        m = _COUNT_RE.search(text[max(0, hit.start - 50) : hit.start])
        if not m:
            continue
        raw = m.group(1).lower()
        value = int(raw) if raw.isdigit() else words.get(raw)
        if value is not None and 1 < value <= 20:
            start = hit.start - (len(text[max(0, hit.start - 50) : hit.start]) - m.start())
            return value, (start, hit.end)
    for hit in flat_matcher("patient", "multifocal_words").find(text):
        if ctx.assertion(hit.start, hit.end) != "affirmed":
            continue
        nxt = text[hit.end : hit.end + 40]
        if re.search(
            r"(?i)lesion|nodule|tumou?r|herd|läsion|raumforderung|foci|hcc|karzinom|carcinoma", nxt
        ) or hit.text.lower().startswith("multifo"):
            return 2, (hit.start, hit.end)
    return None, None
