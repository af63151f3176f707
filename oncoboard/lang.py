"""Language identification for case texts (English or German).

Counts frequent function words of each language (``knowledge/lexicons/language.yaml``), the
characters only German spelling uses (ä, ö, ü, ß) and, weighted lower, typical German endings;
the language with more evidence wins and a tie, including an empty text, goes to English.
Deterministic and linear in the text length.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Literal

from oncoboard.knowledge import load_table

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=1)
def _cues() -> tuple[frozenset[str], frozenset[str], frozenset[str], float, tuple[str, ...], float]:
    table = load_table("lexicons/language.yaml")
    stop = table["stopwords"]
    en = frozenset(str(w).lower() for w in stop["en"])
    de = frozenset(str(w).lower() for w in stop["de"])
    # a word in both lists (e.g. "patient") says nothing about the language
    shared = en & de
    chars = frozenset(str(table.get("german_characters", "")))
    suffixes = tuple(str(s).lower() for s in table.get("german_suffixes", []))
    return (
        en - shared,
        de - shared,
        chars,
        float(table.get("german_character_weight", 1)),
        suffixes,
        float(table.get("german_suffix_weight", 0)),
    )


def language_scores(text: str) -> dict[str, float]:
    """Evidence for each language: stop-word hits, plus weighted German-only characters."""
    en, de, chars, weight, suffixes, suffix_weight = _cues()
    scores = {"en": 0.0, "de": 0.0}
    for m in _WORD.finditer(text):
        word = m.group(0).lower()
        if word in en:
            scores["en"] += 1
        elif word in de:
            scores["de"] += 1
        elif suffixes and len(word) > 5 and word.endswith(suffixes):
            scores["de"] += suffix_weight
    scores["de"] += weight * sum(1 for ch in text if ch in chars)
    return scores


def detect_language(text: str) -> Literal["en", "de"]:
    """The language of ``text``: "de" when German evidence outweighs English, else "en"."""
    scores = language_scores(text)
    lang: Literal["en", "de"] = "de" if scores["de"] > scores["en"] else "en"
    logger.debug("language scores %s -> %s", scores, lang)
    return lang
