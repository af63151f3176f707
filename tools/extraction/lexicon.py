"""Phrase matching over lexicon terms, compiled once per table.

A lexicon term is written in lower case; blanks or hyphens separate its tokens and match any
run of blanks or hyphens in the text (or none, so OCR that glues "lymph node" still matches);
``*`` stands for any run of letters or digits, so German compounds ("leber*metastas*") are
expressible without listing every inflection (a backslash before ``*`` makes it a literal star).
Umlauts also match their ASCII spelling (``ö`` -> ``oe``). Terms compile into one trie-shaped
regular expression per table, which keeps matching close to linear in the text length even for a
few hundred terms.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from oncoboard.knowledge import load_table

logger = logging.getLogger(__name__)

V = TypeVar("V")

_SEP = "\x00sep"
_WILD = "\x00wild"
_SEP_RE = r"[\s\-]*"
_WILD_RE = r"\w*"
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_SPLIT = re.compile(r"[\s\-]+")


@dataclass(frozen=True, slots=True)
class Hit(Generic[V]):
    """One phrase found in a text: offsets into the text and the payload of its term."""

    start: int
    end: int
    text: str
    value: V


def _atoms(term: str) -> list[str]:
    """The atom sequence of a term: characters, separators and wildcards."""
    atoms: list[str] = []
    tokens = [t for t in _SPLIT.split(term.strip().lower()) if t]
    for i, token in enumerate(tokens):
        if i:
            atoms.append(_SEP)
        escaped = False
        for ch in token:
            if escaped:
                atoms.append(ch)
                escaped = False
            elif ch == "\\":
                # "\\*" is a literal star (allele names such as DPYD*2A)
                escaped = True
            else:
                atoms.append(_WILD if ch == "*" else ch)
    return atoms


def _atom_re(atom: str) -> str:
    if atom == _SEP:
        return _SEP_RE
    if atom == _WILD:
        return _WILD_RE
    return re.escape(atom)


class _Trie:
    __slots__ = ("children", "end")

    def __init__(self) -> None:
        self.children: dict[str, _Trie] = {}
        self.end = False

    def add(self, atoms: list[str]) -> None:
        node = self
        for atom in atoms:
            node = node.children.setdefault(atom, _Trie())
        node.end = True

    def pattern(self) -> str:
        alternatives = [
            _atom_re(atom) + child.pattern()
            # literal continuations before separators before wildcards: the longest term wins
            for atom, child in sorted(self.children.items(), key=lambda kv: (kv[0] == _WILD, kv[0] == _SEP, kv[0]))
        ]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        if self.end:
            # greedy optional part: the longest term wins at a position, shorter ones on backtrack
            return "(?:" + body + ")?"
        return body


def _key(surface: str) -> str:
    return _SPLIT.sub("", surface.lower())


def term_variants(term: str) -> list[str]:
    """The term and, when it has umlauts, its ASCII transliteration."""
    low = term.strip().lower()
    alt = low.translate(_TRANSLIT)
    return [low] if alt == low else [low, alt]


class PhraseMatcher(Generic[V]):
    """Finds lexicon terms in text, leftmost and longest first, never overlapping."""

    def __init__(self, entries: Iterable[tuple[str, V]]) -> None:
        """Compile ``(term, payload)`` pairs; later duplicates of a term are ignored."""
        self._exact: dict[str, V] = {}
        # (literal length, regex, payload): the most specific wildcard term decides a match
        self._wild: list[tuple[int, re.Pattern[str], V]] = []
        lead = _Trie()
        rest = _Trie()
        punct = _Trie()
        has_lead = has_rest = has_punct = False
        for term, value in entries:
            for variant in term_variants(term):
                atoms = _atoms(variant)
                if not atoms or all(a in (_SEP, _WILD) for a in atoms):
                    continue
                if _WILD in atoms:
                    one = "".join(_atom_re(a) for a in atoms)
                    literal = sum(1 for a in atoms if a not in (_SEP, _WILD))
                    self._wild.append((literal, re.compile(one, re.IGNORECASE), value))
                else:
                    self._exact.setdefault("".join(a for a in atoms if a != _SEP), value)
                if atoms[0] == _WILD:
                    lead.add(atoms[1:])
                    has_lead = True
                elif not (atoms[0].isalnum() or atoms[0] == "_"):
                    # a term opening with punctuation (": no") may follow a word directly
                    punct.add(atoms)
                    has_punct = True
                else:
                    rest.add(atoms)
                    has_rest = True
        self._wild.sort(key=lambda item: -item[0])
        parts = []
        if has_rest:
            parts.append(r"\b" + rest.pattern() + r"(?!\w)")
        if has_lead:
            parts.append(r"\b\w*?" + lead.pattern() + r"(?!\w)")
        if has_punct:
            parts.append(punct.pattern() + r"(?!\w)")
        self._pattern = "|".join(parts)
        # terms are lower case: matching the lower-cased text is about twice as fast as IGNORECASE
        self._regex = re.compile(self._pattern) if parts else None
        self._regex_ci: re.Pattern[str] | None = None
        # the last text scanned and its hits: several readers scan the same case text
        self._last: tuple[str, list[Hit[V]]] | None = None

    def _value(self, surface: str) -> V | None:
        exact = self._exact.get(_key(surface))
        if exact is not None:
            return exact
        for _, regex, value in self._wild:
            if regex.fullmatch(surface):
                return value
        return None

    def find(self, text: str) -> list[Hit[V]]:
        """All non-overlapping matches in ``text``."""
        if self._regex is None:
            return []
        last = self._last
        if last is not None and last[0] is text:
            return list(last[1])
        lowered = text.lower()
        regex = self._regex
        if len(lowered) != len(text):
            # a few characters change length when lower-cased (e.g. "İ"); keep offsets exact
            if self._regex_ci is None:
                self._regex_ci = re.compile(self._pattern, re.IGNORECASE)
            regex, lowered = self._regex_ci, text
        hits: list[Hit[V]] = []
        for m in regex.finditer(lowered):
            if m.end() == m.start():
                continue
            surface = text[m.start() : m.end()]
            value = self._value(surface)
            if value is None:
                logger.debug("matched %r without a lexicon entry", surface)
                continue
            hits.append(Hit(m.start(), m.end(), surface, value))
        if len(text) > 256:
            self._last = (text, hits)
        return list(hits)


@lru_cache(maxsize=64)
def lexicon(name: str) -> dict[str, Any]:
    """A lexicon table from ``knowledge/lexicons/`` (with its source/edition header checked)."""
    return load_table(f"lexicons/{name}.yaml")


def terms_of(mapping: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """Flatten ``{label: [terms]}`` into ``(term, label)`` pairs."""
    return [(term, label) for label, terms in mapping.items() for term in terms]


@lru_cache(maxsize=128)
def matcher(name: str, section: str) -> PhraseMatcher[str]:
    """A compiled matcher for a ``{label: [terms]}`` section of a lexicon table."""
    table = lexicon(name)
    data = table.get(section)
    if not isinstance(data, dict):
        raise KeyError(f"lexicons/{name}.yaml has no mapping section {section!r}")
    return PhraseMatcher(terms_of(data))


@lru_cache(maxsize=128)
def flat_matcher(name: str, section: str) -> PhraseMatcher[str]:
    """A compiled matcher for a plain list section; the payload is the section name."""
    data = lexicon(name).get(section)
    if not isinstance(data, list):
        raise KeyError(f"lexicons/{name}.yaml has no list section {section!r}")
    return PhraseMatcher((str(term), section) for term in data)


class HitIndex(Generic[V]):
    """Hits sorted by start, for looking up those near a position without scanning them all."""

    def __init__(self, hits: Iterable[Hit[V]]) -> None:
        """Index ``hits`` by their start offset."""
        self.hits: list[Hit[V]] = sorted(hits, key=lambda h: h.start)
        self._starts = [h.start for h in self.hits]

    def between(self, lo: int, hi: int) -> list[Hit[V]]:
        """Hits that start in ``[lo, hi)``."""
        i = bisect.bisect_left(self._starts, lo)
        j = bisect.bisect_left(self._starts, hi)
        return self.hits[i:j]

    def __len__(self) -> int:
        return len(self.hits)
