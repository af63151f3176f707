"""Biomarker results (EGFR, ALK, HER2, ER/PR, PD-L1, MSI/MMR, DPYD ...), EN and DE.

A marker name opens a short result window that ends at the clause end or the next marker name.
Inside it the reader looks, in order, for a marker-specific variant (L858R, exon 19 deletion,
G12C), a scored result (HER2 IHC/ISH, ER/PR percent or Allred, PD-L1 TPS/CPS, Ki-67 percent)
and a status word. A marker with an empty window takes the result of the list it heads ("EGFR,
ALK und ROS1 negativ"). A negation cue before the marker ("no EGFR mutation", "kein Nachweis
einer KRAS-Mutation") makes the result negative. Thresholds come from biomarkers.yaml
(ASCO/CAP conventions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from oncoboard.domain import Biomarker, Entity
from tools.extraction.lexicon import Hit, PhraseMatcher, flat_matcher, lexicon, matcher
from tools.extraction.negation import TextContext
from tools.extraction.numbers import parse_number

Status = Literal["positive", "negative", "unknown"]

_LIST_GAP = re.compile(r"^[\s,;/:()]*(?:and|und|or|oder|sowie|&)?[\s,;/:()]*$", re.IGNORECASE)
_PERCENT = re.compile(r"(?P<cmp>[<>≤≥]=?)?\s*(?P<val>\d{1,3}(?:[.,]\d{1,2})?)\s*%")
_ALLRED_NUM = re.compile(r"^\D{0,12}?(\d{1,2})(?:\s*/\s*8)?")
_IHC_PLUS = re.compile(r"(?<![\w.,])([0-3])\s?\+")
# a score digit is not the start of a number ("0.5", "1,2", "30 %"); a full stop after it ends
# the sentence ("HER2 IHC 0.")
_NOT_A_NUMBER = r"(?!\d|[.,]\d|\s*%)"
_IHC_WORD = re.compile(r"(?i)(?:ihc|score|immunhistochemi\w*|immunohistochemi\w*)\s*:?\s*\(?([0-3])" + _NOT_A_NUMBER)
_IHC_BARE = re.compile(r"^\s*[:(]?\s*([0-3])" + _NOT_A_NUMBER + r"(?![+/])")
_PDL1 = re.compile(
    r"(?i)(?:(?P<kind>tps|cps|tc|ic|tumor proportion score|combined positive score)\s*[:=]?\s*)?"
    r"(?P<cmp>[<>≤≥]=?)?\s*(?P<val>\d{1,3}(?:[.,]\d{1,2})?)(?P<pct>\s*%)?(?![\w\d])"
)


@dataclass(frozen=True, slots=True)
class MarkerResult:
    """A parsed result before it becomes a Biomarker."""

    result: str
    status: Status
    detail: int


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return lexicon("biomarkers")


@lru_cache(maxsize=1)
def _marker_matcher() -> PhraseMatcher[tuple[str, ...]]:
    table = _table()
    entries: list[tuple[str, tuple[str, ...]]] = []
    for alias, names in table.get("multi_aliases", {}).items():
        entries.append((str(alias), tuple(names)))
    for name, aliases in table["markers"].items():
        entries.extend((str(a), (str(name),)) for a in aliases)
    return PhraseMatcher(entries)


@lru_cache(maxsize=1)
def _panel_matcher() -> PhraseMatcher[tuple[tuple[str, str], ...]]:
    panels = _table().get("panels", {})
    return PhraseMatcher((str(term), tuple(sorted(v.items()))) for term, v in panels.items())


@lru_cache(maxsize=32)
def _variant_matcher(name: str) -> PhraseMatcher[str]:
    variants = _table().get("variants", {}).get(name, [])
    return PhraseMatcher((str(v), _canonical_variant(str(v))) for v in variants)


def _canonical_variant(term: str) -> str:
    # Lexicon terms escape pattern characters ("\\*2a"); the reported result is the plain name.
    term = term.replace("\\", "")
    if re.fullmatch(r"[a-z]\d+[a-z]", term):
        return term.upper()
    if re.fullmatch(r"\*\d+[a-z]?", term):
        return term.upper()
    return term.replace("-", " ")


@lru_cache(maxsize=1)
def _case_sensitive() -> frozenset[str]:
    return frozenset(str(a).lower() for a in _table().get("case_sensitive_aliases", []))


def _threshold(key: str) -> float:
    return float(_table()["thresholds"][key])


def find_biomarkers(
    text: str, ctx: TextContext, blocked: list[tuple[int, int]]
) -> tuple[list[Biomarker], list[Entity]]:
    """Biomarker results of ``text``; ``blocked`` spans (lab values such as eGFR) are skipped."""
    panels = _panel_matcher().find(text)
    panel_spans = [(p.start, p.end) for p in panels]
    hits: list[Hit[tuple[str, ...]]] = []
    for h in _marker_matcher().find(text):
        if any(s < h.end and h.start < e for s, e in [*blocked, *panel_spans]):
            continue
        if h.text.lower() in _case_sensitive() and not h.text.isupper():
            continue
        hits.append(h)
    results: dict[int, MarkerResult | None] = {}
    tails: dict[int, tuple[str, Status]] = {}
    for i in range(len(hits) - 1, -1, -1):
        h = hits[i]
        clause = ctx.clause(h.start)
        nxt = hits[i + 1] if i + 1 < len(hits) else None
        limit = min(clause[1], h.end + 90)
        if nxt is not None and nxt.start < limit:
            limit = nxt.start
        window = text[h.end : limit]
        parsed = _parse(h.value[0], window)
        in_list = nxt is not None and nxt.start == limit
        tail = tails.get(i + 1) if in_list else None
        if parsed is None and in_list and _LIST_GAP.match(window):
            # "EGFR, ALK und ROS1 negativ": a bare list member takes the list's closing status only,
            # never another member's variant.
            parsed = MarkerResult(tail[0], tail[1], 1) if tail is not None else None
        elif (
            parsed is not None
            and parsed.detail == 3
            and tail is not None
            and _variant_is_list_item(h.value[0], window)
            and i > 0
            and bool(_LIST_GAP.match(text[hits[i - 1].end : h.start]))
        ):
            # "EGFR, ALK, KRAS G12C, MET and RET negative": inside a list of tested markers the variant
            # names what was tested and the list's status decides. A list that opens with the variant
            # ("EGFR exon 19 deletion, ALK and ROS1 negative") reports the variant as found.
            parsed = MarkerResult(f"{parsed.result} {tail[0]}", tail[1], 1)
        if parsed is None:
            parsed = _preceding_result(text, h.start, max(clause[0], hits[i - 1].end if i > 0 else 0))
        if parsed is not None and parsed.detail == 1:
            tails[i] = (parsed.result.split()[-1], parsed.status)
        elif tail is not None and parsed is not None and parsed.detail == 1:
            tails[i] = tail
        status = ctx.assertion(h.start, h.end)
        if status == "negated" and not (parsed is not None and parsed.detail >= 2 and _measured_before_cue(window)):
            # a measured value read right after the marker ("Ki-67 70% -> triple negative") is the
            # result; a negation word beyond it speaks of something else
            if parsed is None or parsed.status != "negative":
                parsed = MarkerResult("negative", "negative", 1)
        elif status in ("uncertain", "hypothetical") and parsed is not None:
            parsed = MarkerResult(parsed.result, "unknown", 0)
        elif parsed is not None and parsed.status == "positive" and h.value[0] in _germline_markers():
            parsed = _with_origin(text, parsed, max(clause[0], h.start - 60), h.end, window)
        results[i] = parsed
    chosen: dict[str, MarkerResult] = {}
    entities: list[Entity] = []
    for i, h in enumerate(hits):
        res = results.get(i)
        if res is None:
            continue
        for name in h.value:
            entities.append(Entity(text=h.text, label="BIOMARKER", start=h.start, end=h.end, code=name))
            _keep(chosen, name, res)
    for p in panels:
        status_word = ctx.assertion(p.start, p.end)
        for name, panel_status in p.value:
            if status_word != "affirmed":
                continue
            entities.append(Entity(text=p.text, label="BIOMARKER", start=p.start, end=p.end, code=name))
            st: Status = "positive" if panel_status == "positive" else "negative"
            _keep(chosen, name, MarkerResult(p.text.strip(), st, 1))
    return [Biomarker(name=n, result=r.result, status=r.status) for n, r in chosen.items()], entities


def _measured_before_cue(window: str) -> bool:
    """The window opens with a measurement (a percentage or a score) before any status word."""
    words = _status_word(window)
    pct = _PERCENT.search(window)
    return pct is not None and (words is None or pct.start() < words[2])


def _preceding_result(text: str, start: int, floor: int) -> MarkerResult | None:
    """The result a phrase right before the marker name states ("pathogenic BRCA2 variant")."""
    before = text[floor:start]
    hits = matcher("biomarkers", "preceding_results").find(before)
    if not hits or not re.fullmatch(r"[\s\-:]*", before[hits[-1].end :]):
        return None
    return MarkerResult(hits[-1].value, "positive", 1)


@lru_cache(maxsize=1)
def _germline_markers() -> frozenset[str]:
    return frozenset(str(m) for m in _table().get("germline_markers", []))


def _with_origin(text: str, res: MarkerResult, start: int, end: int, window: str) -> MarkerResult:
    """``res`` marked as germline when the text says the variant is inherited.

    The origin decides who else needs counselling and which trials apply, so it is kept in the
    result ("germline pathogenic variant"); the marker's own statement reaches to the next comma.
    """
    if "germline" in res.result or "keimbahn" in res.result:
        return res
    own = re.split(r"[,;]", window, maxsplit=1)[0]
    region = text[start:end] + own
    if flat_matcher("biomarkers", "somatic_cues").find(region):
        return res
    if not flat_matcher("biomarkers", "germline_cues").find(region):
        return res
    return MarkerResult(f"germline {res.result}", res.status, res.detail)


def _variant_is_list_item(name: str, window: str) -> bool:
    """Whether the window holds only a variant name and a list separator (``G12C, ``)."""
    variants = _variant_matcher(name).find(window)
    return bool(variants) and bool(_LIST_GAP.match(window[variants[-1].end :]))


def _keep(chosen: dict[str, MarkerResult], name: str, res: MarkerResult) -> None:
    old = chosen.get(name)
    if (
        old is None
        or (old.status == "unknown" and res.status != "unknown")
        or (old.status == res.status and res.detail > old.detail)
    ):
        chosen[name] = res


def _parse(name: str, window: str) -> MarkerResult | None:
    """The result a window states for one marker, or None."""
    if name == "HER2":
        her2 = _parse_her2(window)
        if her2 is not None:
            return her2
    if name in ("ER", "PR", "AR"):
        hr = _parse_hormone(window)
        if hr is not None:
            return hr
    if name == "PD-L1":
        pd = _parse_pdl1(window)
        if pd is not None:
            return pd
    if name == "CLDN18.2":
        claudin = _parse_claudin(window)
        if claudin is not None:
            return claudin
    if name == "Ki-67":
        pct = _PERCENT.search(window)
        if pct:
            return MarkerResult(f"{pct.group('cmp') or ''}{pct.group('val').replace(',', '.')}%", "unknown", 2)
        return None
    variants = _variant_matcher(name).find(window)
    words = _status_word(window)
    if variants:
        # "no mutation, L858R tested" and "variant of uncertain significance" do not report a variant
        negative_first = words is not None and words[1] != "positive" and words[2] <= variants[0].start
        if not negative_first:
            # co-occurring variants are one result ("L858R, T790M")
            named = ", ".join(dict.fromkeys(v.value for v in variants))
            return MarkerResult(named, "positive", 3)
    stripped = window.lstrip()
    if window[:1] == "+" or stripped[:1] == "+":
        return MarkerResult("positive", "positive", 1)
    # A bare minus is a result ("EGFR -, ALK +"); a hyphen that continues a word ("DPYD- Testung") is not.
    if re.match(r"^\s?[-−–]\s*(?:$|[,;.)/\n])", window):
        return MarkerResult("negative", "negative", 1)
    if words is not None:
        return MarkerResult(words[0], words[1], 1)
    return None


def _status_word(window: str) -> tuple[str, Status, int] | None:
    """The first status word in a window: (canonical result, status, position)."""
    best: tuple[str, Status, int] | None = None
    for section, status in (("positive_words", "positive"), ("negative_words", "negative")):
        for hit in matcher("biomarkers", section).find(window):
            if best is None or hit.start < best[2]:
                best = (hit.value, status, hit.start)  # type: ignore[assignment]
            break
    unknown = flat_matcher("biomarkers", "unknown_words").find(window)
    if unknown and (best is None or unknown[0].start < best[2]):
        return unknown[0].text.lower(), "unknown", unknown[0].start
    return best


def _parse_hormone(window: str) -> MarkerResult | None:
    pct = _PERCENT.search(window)
    if pct and pct.start() <= 40:
        value = parse_number(pct.group("val"))
        if value is not None:
            below = (pct.group("cmp") or "").startswith(("<", "≤"))
            positive = value >= _threshold("hormone_receptor_positive_percent") and not (
                below and value <= _threshold("hormone_receptor_positive_percent")
            )
            text_value = f"{pct.group('cmp') or ''}{pct.group('val').replace(',', '.')}%"
            return MarkerResult(text_value, "positive" if positive else "negative", 2)
    for hit in flat_matcher("biomarkers", "allred_words").find(window):
        num = _ALLRED_NUM.match(window[hit.end :])
        if num:
            score = int(num.group(1))
            if score <= 8:
                status: Status = "positive" if score >= _threshold("allred_positive_min") else "negative"
                return MarkerResult(f"Allred {score}", status, 2)
    return None


def _parse_her2(window: str) -> MarkerResult | None:
    ihc: int | None = None
    for regex in (_IHC_PLUS, _IHC_WORD, _IHC_BARE):
        m = regex.search(window)
        if m:
            ihc = int(m.group(1))
            break
    ish: bool | None = None
    ish_hits = flat_matcher("biomarkers", "ish_words").find(window)
    if ish_hits:
        after = _status_word(window[ish_hits[0].end :])
        if after is not None and after[1] != "unknown":
            ish = after[1] == "positive"
    elif ihc is not None:
        # "HER2 2+, nicht amplifiziert": amplification is what in-situ hybridisation measures, so
        # an amplification word settles an IHC score even when the test is not named
        word = _status_word(window)
        if word is not None and word[0] in ("amplified", "not amplified"):
            ish = word[0] == "amplified"
    if ihc is None and ish is None:
        return None
    parts = []
    if ihc is not None:
        parts.append(f"IHC {ihc}+" if ihc else "IHC 0")
    if ish is not None:
        parts.append("ISH amplified" if ish else "ISH not amplified")
    status: Status
    if ish is True or (ihc is not None and ihc >= _threshold("her2_ihc_positive")):
        status = "positive"
    elif ihc is not None and ihc == _threshold("her2_ihc_equivocal") and ish is None:
        status = "unknown"
        parts.append("equivocal")
    else:
        status = "negative"
    result = ", ".join(parts)
    if status == "negative" and ihc in (1, 2):
        result += " (HER2-low)"
    return MarkerResult(result, status, 3)


def _parse_claudin(window: str) -> MarkerResult | None:
    """Claudin 18.2: a stated status, else the share of tumour cells stained 2+/3+."""
    word = _status_word(window)
    pct = _PERCENT.search(window)
    share = f"{pct.group('cmp') or ''}{pct.group('val').replace(',', '.')}%" if pct and pct.start() <= 40 else None
    if word is not None and word[1] != "unknown":
        return MarkerResult(f"{word[0]} ({share})" if share else word[0], word[1], 2 if share else 1)
    if pct is None or share is None:
        return None
    value = parse_number(pct.group("val"))
    if value is None:
        return None
    below = (pct.group("cmp") or "").startswith(("<", "≤"))
    positive = value >= _threshold("claudin18_2_positive_percent") and not below
    return MarkerResult(share, "positive" if positive else "negative", 2)


def _parse_pdl1(window: str) -> MarkerResult | None:
    for m in _PDL1.finditer(window):
        if not (m.group("kind") or m.group("pct")):
            continue
        value = parse_number(m.group("val"))
        if value is None:
            continue
        kind = (m.group("kind") or "TPS").upper()
        kind = {"TUMOR PROPORTION SCORE": "TPS", "COMBINED POSITIVE SCORE": "CPS"}.get(kind, kind)
        cmp = m.group("cmp") or ""
        below = cmp.startswith(("<", "≤"))
        positive = value >= _threshold("pdl1_positive") and not (below and value <= _threshold("pdl1_positive"))
        unit = "%" if m.group("pct") or kind == "TPS" else ""
        return MarkerResult(
            f"{kind} {cmp}{m.group('val').replace(',', '.')}{unit}", "positive" if positive else "negative", 3
        )
    return None
