"""Rule checks on free text the language model writes, before it may enter a report.

The model only explains schemes that the rule engines drafted. Its text is accepted when it stays
inside the facts: it speaks about this scheme (names one of its drugs or treatments), names no drug
outside the scheme, no dose that the scheme does not carry, and is neither empty, runaway nor
degenerate (the same phrase over and over). Anything else is dropped (and the trace records why), never repaired.
"""

from __future__ import annotations

import re
from functools import lru_cache

from oncoboard.domain import Scheme
from oncoboard.knowledge import load_table

_DOSE = re.compile(r"\b(\d+(?:[.,]\d+)?)\s*(mg/m2|mg/m²|mg/kg|mg|µg|mcg|g)\b", re.IGNORECASE)
_WORD_CHARS = r"[\w/-]"
MIN_CHARS = 20
MAX_CHARS = 1200
REPEAT_LIMIT = 3


@lru_cache(maxsize=1)
def _drug_terms() -> dict[str, str]:
    """Every known drug name and synonym (lower case) -> its generic id."""
    terms: dict[str, str] = {}
    for drug in load_table("kg/drugs.yaml").get("drugs", []):
        generic = str(drug["id"]).lower()
        for name in [generic, *drug.get("synonyms", [])]:
            terms[str(name).lower()] = generic
    return terms


@lru_cache(maxsize=1)
def _drug_pattern() -> re.Pattern[str]:
    names = sorted(_drug_terms(), key=len, reverse=True)
    return re.compile(
        rf"(?<!{_WORD_CHARS})(" + "|".join(re.escape(n) for n in names) + rf")(?!{_WORD_CHARS})", re.IGNORECASE
    )


def ungrounded_statements(text: str, scheme: Scheme) -> list[str]:
    """Why ``text`` cannot be shown as an explanation of ``scheme`` (empty when it can)."""
    problems: list[str] = []
    stripped = text.strip()
    if len(stripped) < MIN_CHARS:
        problems.append("explanation is empty or too short")
    if len(stripped) > MAX_CHARS:
        problems.append("explanation is too long")
    allowed = {d.lower() for t in scheme.treatments for d in t.drugs}
    allowed |= {t.name.lower() for t in scheme.treatments}
    lowered = stripped.lower()
    if allowed and not any(name in lowered for name in allowed):
        problems.append("does not mention any drug or treatment of the scheme")
    words = re.findall(r"\w+", lowered)
    grams = [" ".join(words[i : i + 4]) for i in range(max(0, len(words) - 3))]
    if grams and max(grams.count(g) for g in set(grams)) >= REPEAT_LIMIT:
        problems.append("repeats the same phrase")
    terms = _drug_terms()
    for match in _drug_pattern().finditer(stripped):
        generic = terms[match.group(1).lower()]
        if generic not in allowed and not any(generic in a for a in allowed):
            problems.append(f"names a drug outside the scheme: {match.group(1)}")
    scheme_doses = " ".join(t.dose or "" for t in scheme.treatments).lower().replace(",", ".")
    for match in _DOSE.finditer(stripped):
        amount = match.group(1).replace(",", ".")
        if amount not in scheme_doses:
            problems.append(f"states a dose the scheme does not carry: {match.group(0)}")
    return problems
