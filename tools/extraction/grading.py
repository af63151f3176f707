"""Histological grade (G1-G3, differentiation words) and prostate Gleason / ISUP grade group."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from tools.extraction.lexicon import lexicon, matcher
from tools.extraction.negation import TextContext

_G = re.compile(r"(?<![A-Za-z0-9])G\s?([1-4X])(?![0-9A-Za-z])")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}


@dataclass(frozen=True, slots=True)
class GradeHit:
    """A grade statement with its span."""

    start: int
    end: int
    text: str
    grade: str


def _alternation(words: list[str]) -> str:
    parts = sorted((re.escape(str(w)).replace(r"\ ", r"[\s\-]*") for w in words), key=len, reverse=True)
    return "(?:" + "|".join(parts) + ")"


@lru_cache(maxsize=1)
def _regexes() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    table = lexicon("patient")
    gleason = _alternation(table["gleason_cues"])
    group = _alternation(table["grade_group_cues"])
    cues = [c for c in table["grade_cues"] if str(c).lower() != "g"]
    grade = _alternation(cues)
    return (
        re.compile(rf"(?i)\b{gleason}\b\s*(?:score|summe|sum)?\s*[:=]?\s*(\d)\s*\+\s*(\d)(?:\s*=\s*(\d{{1,2}}))?"),
        re.compile(rf"(?i)\b{gleason}\b\s*(?:score|summe|sum)?\s*[:=]?\s*(\d{{1,2}})\s*\(\s*(\d)\s*\+\s*(\d)\s*\)"),
        re.compile(rf"(?i)(?<![A-Za-z]){group}\s*[:=]?\s*([1-5])(?![\d.,])"),
        re.compile(rf"(?i)\b{grade}\b\s*[:=]?\s*(III|II|IV|I|[1-4])(?![\dA-Za-z]|[.,]\d)"),
    )


def gleason_grade(text: str) -> GradeHit | None:
    """Gleason score and ISUP grade group, e.g. 'Gleason 4+3=7, GG3'."""
    plus, paren, group_re, _ = _regexes()
    groups = {str(k): int(v) for k, v in lexicon("patient")["gleason_grade_groups"].items()}
    m = plus.search(text)
    primary = secondary = None
    start = end = -1
    if m:
        primary, secondary = int(m.group(1)), int(m.group(2))
        start, end = m.start(), m.end()
    else:
        p = paren.search(text)
        if p:
            primary, secondary = int(p.group(2)), int(p.group(3))
            start, end = p.start(), p.end()
    gg_match = group_re.search(text)
    grade_group = int(gg_match.group(1)) if gg_match else None
    if primary is None and grade_group is None:
        return None
    parts: list[str] = []
    if primary is not None and secondary is not None:
        parts.append(f"Gleason {primary}+{secondary}={primary + secondary}")
        grade_group = grade_group or groups.get(f"{primary}+{secondary}")
    if grade_group is not None:
        parts.append(f"GG{grade_group}")
    if gg_match and (start < 0):
        start, end = gg_match.start(), gg_match.end()
    return GradeHit(start, end, text[start:end], ", ".join(parts))


def histologic_grade(text: str, ctx: TextContext) -> GradeHit | None:
    """The first affirmed histological grade, written G1..G4."""
    candidates: list[GradeHit] = []
    for m in _G.finditer(text):
        if m.group(1) != "X":
            candidates.append(GradeHit(m.start(), m.end(), m.group(0), f"G{m.group(1)}"))
    *_, grade_re = _regexes()
    for m in grade_re.finditer(text):
        raw = m.group(1).upper()
        value = _ROMAN.get(raw) or int(raw)
        candidates.append(GradeHit(m.start(), m.end(), m.group(0), f"G{value}"))
    for hit in matcher("patient", "grade_words").find(text):
        if ctx.assertion(hit.start, hit.end) == "affirmed":
            candidates.append(GradeHit(hit.start, hit.end, hit.text, hit.value))
    if not candidates:
        return None
    return min(candidates, key=lambda g: g.start)
