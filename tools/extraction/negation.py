"""Assertion status of a mention: affirmed, negated, uncertain or hypothetical.

NegEx-style: a cue (from ``knowledge/lexicons/cues.yaml``) governs a mention when both sit in
the same clause, the cue comes before the mention within a few words (pre-cues such as "no",
"keine", "Verdacht auf") or just after it (post-cues such as "ausgeschlossen", "not
identified"), and no terminator ("but", "jedoch") stands between them. A suspected finding is
never stated as fact: callers keep only affirmed mentions as facts.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from tools.extraction.lexicon import Hit, PhraseMatcher, lexicon

Assertion = Literal["affirmed", "negated", "uncertain", "hypothetical"]

_WORD = re.compile(r"\w+")
# the words between a finding and the relative it belongs to: "in her", "of his", "beim", "bei der"
_RELATIVE_LINK = re.compile(
    r"(?i)\s*(?:[\w-]+\s+){0,2}?"
    r"(?:in|of|bei|beim|des|der)\s+(?:(?:his|her|the|a|their|seiner|seinem|ihrer|ihrem|der|dem|des)\s+)?"
)
# clause ends: a line break, a semicolon, or a full stop/!/? followed by blank space; a colon is
# not an end because "Distant metastases: none" and "ER: 90 %" read across it
_BOUNDARY = re.compile(r"\n\s*|[;!?](?=\s|$)|\.(?=\s|$)|\s[•·▪]\s")

_CUE_KINDS: dict[str, tuple[Assertion | None, Literal["pre", "post", "stop"]]] = {
    "negation_pre": ("negated", "pre"),
    "negation_post": ("negated", "post"),
    "uncertain_pre": ("uncertain", "pre"),
    "uncertain_post": ("uncertain", "post"),
    "hypothetical_pre": ("hypothetical", "pre"),
    "hypothetical_post": ("hypothetical", "post"),
    "pseudo": (None, "stop"),
    "terminators": (None, "stop"),
}


@dataclass(frozen=True, slots=True)
class Cue:
    """A cue as found in the text."""

    kind: Assertion | None
    direction: Literal["pre", "post", "both", "stop"]


@lru_cache(maxsize=1)
def _cue_matcher() -> PhraseMatcher[Cue]:
    table = lexicon("cues")
    merged: dict[str, Cue] = {}
    for section, (kind, direction) in _CUE_KINDS.items():
        for raw in table.get(section, []):
            term = str(raw).lower()
            old = merged.get(term)
            if old is None:
                merged[term] = Cue(kind, direction)
            elif old.kind == kind and {old.direction, direction} == {"pre", "post"}:
                # "possible", "absent": the same word governs in either direction
                merged[term] = Cue(kind, "both")
    return PhraseMatcher(merged.items())


@lru_cache(maxsize=1)
def _abbreviations() -> frozenset[str]:
    return frozenset(str(a).lower() for a in lexicon("cues").get("abbreviations", []))


@lru_cache(maxsize=1)
def _list_breaks() -> re.Pattern[str]:
    """A comma followed by a word that opens a new noun phrase ("no nodes, multiple liver metastases")."""
    words = sorted((re.escape(str(w).lower()) for w in lexicon("cues").get("list_breakers", [])), key=len, reverse=True)
    if not words:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?i),\s*(?:" + "|".join(words) + r")(?![\wäöüß])")


@lru_cache(maxsize=1)
def _comma_bound() -> frozenset[str]:
    """Pre-cues that negate only the word or phrase right after them ("nicht amplifiziert")."""
    return frozenset(str(c).lower() for c in lexicon("cues").get("comma_bound_pre", []))


def _closes_bracket(span: str) -> bool:
    """Whether ``span`` closes a bracket that it did not open: the cue before it sat inside one."""
    depth = 0
    for ch in span:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                return True
    return False


@lru_cache(maxsize=1)
def _experiencer_matcher() -> PhraseMatcher[str]:
    """Words naming a relative: what follows them in the clause is the relative's, not the patient's."""
    return PhraseMatcher((str(term).lower(), "experiencer") for term in lexicon("cues").get("experiencer_pre", []))


@lru_cache(maxsize=1)
def _windows() -> tuple[int, int]:
    win = lexicon("cues").get("window_words", {})
    return int(win.get("pre", 8)), int(win.get("post", 4))


class TextContext:
    """Clause boundaries, word positions and assertion cues of one text, computed once."""

    def __init__(self, text: str) -> None:
        """Scan ``text`` once for clause boundaries, words and cues."""
        self.text = text
        abbreviations = _abbreviations()
        ends: list[int] = []
        for m in _BOUNDARY.finditer(text):
            if m.group(0) == ".":
                word_start = m.start()
                while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] == "."):
                    word_start -= 1
                token = text[word_start : m.end()].lower()
                if token in abbreviations:
                    continue
            ends.append(m.end())
        self._ends = ends
        self._words = [m.start() for m in _WORD.finditer(text)]
        self.cues: list[Hit[Cue]] = _cue_matcher().find(text)
        self._cue_starts = [c.start for c in self.cues]
        relatives = _experiencer_matcher().find(text)
        self._relatives = [h.end for h in relatives]
        self._relative_starts = [h.start for h in relatives]

    def clause(self, pos: int) -> tuple[int, int]:
        """The clause (start, end) that contains position ``pos``."""
        i = bisect.bisect_right(self._ends, pos)
        start = self._ends[i - 1] if i > 0 else 0
        end = self._ends[i] if i < len(self._ends) else len(self.text)
        return start, end

    def words_between(self, start: int, end: int) -> int:
        """How many words begin in ``[start, end)``."""
        if end <= start:
            return 0
        return bisect.bisect_left(self._words, end) - bisect.bisect_left(self._words, start)

    def assertion(self, start: int, end: int, pre_words: int | None = None) -> Assertion:
        """How the text asserts the mention at ``[start, end)``."""
        default_pre, post_words = _windows()
        pre_limit = default_pre if pre_words is None else pre_words
        c_start, c_end = self.clause(start)
        # "Vater mit 57 an Pankreas-Ca verstorben", "mother with breast cancer": a relative named
        # before the mention in its clause makes it the relative's finding ("with" does not end this)
        k = bisect.bisect_right(self._relatives, start) - 1
        if k >= 0 and self._relatives[k] > c_start and self.words_between(self._relatives[k], start) <= pre_limit:
            return "hypothetical"
        # "BRCA1 mutation in her mother", "Kolonkarzinom beim Vater"
        k = bisect.bisect_left(self._relative_starts, end)
        if (
            k < len(self._relative_starts)
            and self._relative_starts[k] < c_end
            and _RELATIVE_LINK.fullmatch(self.text[end : self._relative_starts[k]])
        ):
            return "hypothetical"
        lo = bisect.bisect_left(self._cue_starts, c_start)
        hi = bisect.bisect_left(self._cue_starts, c_end)
        found: Assertion | None = None
        # pre-cues: the nearest governing cue before the mention, unless a stop word intervenes;
        # the scan stops at the first cue beyond the word window, so it stays local in long clauses
        first_before = bisect.bisect_left(self._cue_starts, start) - 1
        for i in range(first_before, lo - 1, -1):
            cue = self.cues[i]
            if cue.end > start:
                continue
            if self.words_between(cue.end, start) > pre_limit:
                break
            # A colon opens a new statement: "Vor geplanter Chemotherapie DPYD-Testung: DPD-Mangel".
            if ":" in self.text[cue.end : start]:
                break
            if cue.value.direction == "stop":
                break
            # "without nodal enlargement, multiple liver metastases": a new counted item after a
            # comma leaves the scope of the cue before it
            if cue.value.direction in ("pre", "both") and _list_breaks().search(self.text, cue.end, start):
                break
            between = self.text[cue.end : start]
            # "HER2 negativ (Score 1+, ISH nicht amplifiziert), Ki-67 70 %": a cue inside a bracket
            # that closes before the mention negates only what the bracket holds
            if _closes_bracket(between):
                break
            # "ISH nicht amplifiziert, Ki-67 70 %": an adverbial "nicht"/"not" negates the phrase it
            # stands before; the next list item after a comma is a statement of its own
            if "," in between and cue.text.lower() in _comma_bound():
                break
            if cue.value.direction in ("pre", "both"):
                found = cue.value.kind
                break
        if found is not None:
            return found
        for i in range(bisect.bisect_left(self._cue_starts, end, lo, hi), hi):
            cue = self.cues[i]
            if self.words_between(end, cue.start) > post_words:
                break
            if cue.value.direction == "stop":
                break
            # a post-cue does not reach back over a comma: "extension right, seminal vesicles free"
            if cue.value.direction in ("post", "both") and "," not in self.text[end : cue.start]:
                return cue.value.kind or "affirmed"
        return "affirmed"

    def cue_inside(self, start: int, end: int) -> Assertion | None:
        """A cue that lies inside ``[start, end)`` (e.g. "kein" within a matched phrase)."""
        lo = bisect.bisect_left(self._cue_starts, start)
        for i in range(lo, len(self.cues)):
            cue = self.cues[i]
            if cue.start >= end:
                break
            if cue.end <= end and cue.value.kind is not None:
                return cue.value.kind
        return None
