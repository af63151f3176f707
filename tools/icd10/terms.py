"""Term matching over normalised clinical text (English and German).

Knowledge tables list terms as plain words; a word ending in ``*`` also matches any longer word
so that German inflections (``oberen``, ``Oberlappens``) are covered by one entry. Longer terms are
matched first and consume their text, so a precise phrase never also counts as its shorter parts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_GERMAN_FOLDS = (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"))
_NON_WORD = re.compile(r"[^a-z0-9*]+")


def normalize(text: str) -> str:
    """Lower-case ``text``, spell out umlauts, drop accents and turn punctuation into single spaces."""
    lowered = text.lower()
    for umlaut, spelled in _GERMAN_FOLDS:
        lowered = lowered.replace(umlaut, spelled)
    decomposed = unicodedata.normalize("NFKD", lowered)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", ascii_only).strip()


def compile_term(term: str) -> re.Pattern[str]:
    """Regular expression for one table term (whole words; ``word*`` matches a word prefix)."""
    words = normalize(term).split()
    if not words:
        raise ValueError(f"empty term: {term!r}")
    parts = [re.escape(w[:-1]) + r"[a-z0-9]*" if w.endswith("*") else re.escape(w) for w in words]
    return re.compile(r"(?<![a-z0-9])" + r"\s+".join(parts) + r"(?![a-z0-9])")


def expand_coordination(normalized_text: str, heads: Iterable[str]) -> str:
    """Spell out a head word shared by a coordinated phrase in ``normalized_text``.

    "upper and middle lobe" becomes "upper lobe and middle lobe"; the German suspended compound
    "ober und mittellappen" (from "Ober- und Mittellappen") becomes "oberlappen und mittellappen".
    """
    words = sorted({normalize(h) for h in heads}, key=len, reverse=True)
    if not words:
        return normalized_text
    head = "|".join(re.escape(w) for w in words)
    english = re.compile(rf"(?<![a-z0-9])([a-z]+) (and|or|to|und|oder|bis) ([a-z]+) ({head})(?![a-z0-9])")
    german = re.compile(rf"(?<![a-z0-9])([a-z]+) (und|oder|bis) ([a-z]+?)({head})(?![a-z0-9])")

    def _english(m: re.Match[str]) -> str:
        if any(m.group(1).endswith(w) for w in words):
            return m.group(0)
        return f"{m.group(1)} {m.group(4)} {m.group(2)} {m.group(3)} {m.group(4)}"

    def _german(m: re.Match[str]) -> str:
        if any(m.group(1).endswith(w) for w in words):
            return m.group(0)
        return f"{m.group(1)}{m.group(4)} {m.group(2)} {m.group(3)}{m.group(4)}"

    return german.sub(_german, english.sub(_english, normalized_text))


@dataclass(frozen=True)
class TermHit:
    """One term found in a text: the key it stands for and where it matched."""

    key: str
    term: str
    start: int
    end: int


class TermSet:
    """Terms grouped under keys (a code, a region, a site), matched longest first."""

    def __init__(self, groups: Iterable[tuple[str, Sequence[str]]]) -> None:
        """Build from ``(key, terms)`` pairs; a key may appear in several pairs."""
        entries: list[tuple[str, str, re.Pattern[str]]] = []
        for key, terms in groups:
            for term in terms:
                entries.append((key, term, compile_term(str(term))))
        # Longest normalised term first; the table order breaks ties so the table decides.
        self._entries = sorted(entries, key=lambda e: -len(normalize(e[1])))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[str]]) -> TermSet:
        """Build from a ``{key: [terms]}`` mapping."""
        return cls(mapping.items())

    def find(self, normalized_text: str) -> list[TermHit]:
        """All non-overlapping hits in ``normalized_text`` (already passed through :func:`normalize`)."""
        taken: list[tuple[int, int]] = []
        hits: list[TermHit] = []
        for key, term, pattern in self._entries:
            for match in pattern.finditer(normalized_text):
                start, end = match.span()
                if any(start < t_end and t_start < end for t_start, t_end in taken):
                    continue
                taken.append((start, end))
                hits.append(TermHit(key=key, term=term, start=start, end=end))
        return sorted(hits, key=lambda h: h.start)

    def keys_in(self, text: str) -> list[str]:
        """Distinct keys found in raw ``text``, in order of first appearance."""
        seen: dict[str, None] = {}
        for hit in self.find(normalize(text)):
            seen.setdefault(hit.key, None)
        return list(seen)

    def matches(self, text: str | None) -> bool:
        """Whether any term occurs in raw ``text``."""
        return bool(text) and bool(self.find(normalize(text or "")))
