"""Explicitly stated TNM classifications (``pT2 pN1 M0``, ``ypT2N1``, ``cT1c cN0 cM0``,
``pT2a pN0 (0/12) L0 V0``), kept as the raw text the report wrote.

The letters T, N and M are read case-sensitively: OCR noise rarely changes them, while lower-case
"t2" or "n0" appear in unrelated prose. A lone bare category ("T2") is MRI vocabulary
("T2-weighted") unless a TNM keyword stands right before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = re.compile(
    r"(?P<prefix>yp|yc|rp|p|c|r|a|y|u)?\s?"
    r"(?P<cat>T(?:is|[0-4xX])(?:mi|[a-d])?[1-3]?(?:\s?\((?:m|\d+|is)\))?"
    r"|N[0-3xXO](?:mi|[a-c])?(?:\s?\((?:sn|i\+|i-|mol\+|mol-|mi|\d+\s*/\s*\d+)\))?"
    r"|M[01xXO](?:[a-d])?(?:\s?\((?:i\+|[a-z]{3})\))?)"
    r"(?![a-z0-9])"
)
_GAP = re.compile(r"^[\s,;/\-]*$")
_TRAIL = re.compile(r"^(?:[\s,;]*(?:\(\s*\d+\s*/\s*\d+\s*\)|L[01X]\b|V[012X]\b|Pn[01X]\b|R[012X]\b|G[1-4X]\b))+")
# Words after which a lone category is a staging statement ("Stadium: N1", "CT präoperativ: M0").
_KEYWORD = re.compile(
    r"(?i)(tnm|stage|staging|stadium|klassifikation|classification|pathologic|ajcc|uicc|"
    r"\bct|\bpet|pet-ct|\bmrt|\bmri|präoperativ|preoperative|imaging|bildgebung)\W{0,12}$"
)


@dataclass(frozen=True, slots=True)
class StatedTNM:
    """One stated TNM group as written in the text."""

    start: int
    end: int
    text: str
    prefix: str | None
    categories: tuple[str, ...]

    @property
    def letters(self) -> frozenset[str]:
        """Which of T, N and M the statement gives."""
        return frozenset(c[0] for c in self.categories)

    @property
    def rank(self) -> tuple[int, int, int]:
        """Preference: a statement with T; then post-therapy pathological over pathological over
        clinical (the latest describes the tumour now); then completeness."""
        order = {"yp": 3, "p": 2, "c": 1}
        return int("T" in self.letters), order.get(self.prefix or "", 0), len(self.letters)


def find_stated_tnm(text: str) -> list[StatedTNM]:
    """All TNM statements in text order."""
    comps: list[re.Match[str]] = []
    for m in _COMPONENT.finditer(text):
        first = m.start("prefix") if m.group("prefix") else m.start("cat")
        glued = first > 0 and text[first - 1].isalnum()
        # a component glued to a word counts only right after another one ("ypT2N1", "T3N1M0")
        if glued and not (comps and comps[-1].end() == m.start()):
            continue
        # OCR writes the digit 0 as the letter O ("pNO", "MO"); accept that only in a TNM context
        if "O" in m.group("cat") and not (m.group("prefix") or (comps and comps[-1].end() >= m.start() - 2)):
            continue
        comps.append(m)
    groups: list[list[re.Match[str]]] = []
    for m in comps:
        if groups and _GAP.match(text[groups[-1][-1].end() : m.start()]):
            previous_letters = {g.group("cat")[0] for g in groups[-1]}
            if m.group("cat")[0] not in previous_letters:
                groups[-1].append(m)
                continue
        groups.append([m])
    found: list[StatedTNM] = []
    for group in groups:
        letters = {g.group("cat")[0] for g in group}
        prefixes = [g.group("prefix") for g in group if g.group("prefix")]
        start = group[0].start()
        keyword = _KEYWORD.search(text[max(0, start - 40) : start]) is not None
        if len(letters) < 2 and not prefixes and not keyword:
            continue
        if len(letters) < 2 and prefixes and prefixes[0] in {"a", "u", "r", "y"} and not keyword:
            continue
        end = group[-1].end()
        trail = _TRAIL.match(text[end : end + 80])
        if trail:
            end += trail.end()
        prefix = _normal_prefix(prefixes[0]) if prefixes else None
        # the optional blank after a prefix may open a match that has no prefix: trim it so the
        # span and the text agree
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        found.append(StatedTNM(start, end, text[start:end], prefix, tuple(g.group("cat") for g in group)))
    return found


def _normal_prefix(prefix: str) -> str | None:
    if prefix in ("yp", "yc"):
        return "yp" if prefix == "yp" else "c"
    if prefix in ("p", "rp"):
        return "p"
    if prefix in ("c", "u"):
        # endosonographic staging ("uT3 uN1") is clinical staging
        return "c"
    return None


def best_stated(statements: list[StatedTNM]) -> StatedTNM | None:
    """The statement that best describes the tumour now (yp over p over c, then completeness)."""
    if not statements:
        return None
    return max(statements, key=lambda s: (s.rank, -s.start))


def combine_stated(statements: list[StatedTNM]) -> list[StatedTNM]:
    """The statements that together give the stated categories of one tumour, in text order.

    Reports often spread the categories over a sentence ("cT3, four suspicious nodes (cN2a),
    liver metastases (cM1)"): the best statement gives T, and an axis it lacks is taken from the
    best statement that has it.
    """
    best = best_stated(statements)
    if best is None:
        return []
    chosen = [best]
    for letter in ("T", "N", "M"):
        if any(letter in s.letters for s in chosen):
            continue
        holders = [s for s in statements if letter in s.letters and _same_time(best, s, letter)]
        if holders:
            chosen.append(max(holders, key=lambda s: (s.rank, -s.start)))
    return sorted(chosen, key=lambda s: s.start)


def _same_time(best: StatedTNM, other: StatedTNM, letter: str) -> bool:
    """Whether ``other`` may complete ``best``: both describe the tumour at the same point.

    A pre-treatment "cT3 cN1" must not complete a post-therapy "ypT2"; an unprefixed category
    and the clinical M beside a pathological T and N ("pT2 pN0, cM0") may.
    """
    if other.prefix is None or other.prefix == best.prefix:
        return True
    return letter == "M" and best.prefix == "p" and other.prefix == "c"
