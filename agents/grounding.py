"""Rule checks on free text the language model writes, before it may enter a report.

The model only explains schemes that the rule engines drafted. Its text is accepted when it stays
inside the facts: it speaks about this scheme (names one of its drugs or treatments), names no drug
outside the scheme, no word built like a drug or chemical name that is no known drug, no dose that the
scheme does not carry, describes the scheme's drugs only by classes they belong to, and is neither
empty, runaway nor degenerate (the same phrase over and over). Anything else is dropped (and the trace
records why), never repaired.
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
def _drug_classes() -> dict[str, tuple[str, ...]]:
    """Generic drug id -> its knowledge-graph classes; antibodies by their INN stem also count as such."""
    classes: dict[str, tuple[str, ...]] = {}
    for drug in load_table("kg/drugs.yaml").get("drugs", []):
        generic = str(drug["id"]).lower()
        names = [str(c) for c in drug.get("classes", [])]
        if generic.split()[0].endswith("mab"):
            names.append("monoclonal antibody")
        classes[generic] = tuple(names)
    return classes


@lru_cache(maxsize=1)
def _word_rules() -> dict:
    return load_table("grounding/drug_words.yaml")


@lru_cache(maxsize=1)
def _class_claims() -> list[tuple[re.Pattern[str], tuple[str, ...]]]:
    claims = []
    for rule in _word_rules()["class_claims"]:
        phrases = sorted((str(p) for p in rule["phrases"]), key=len, reverse=True)
        pattern = re.compile(
            rf"(?<!{_WORD_CHARS})(" + "|".join(re.escape(p) for p in phrases) + rf")(?!{_WORD_CHARS})",
            re.IGNORECASE,
        )
        claims.append((pattern, tuple(str(w).lower() for w in rule["class_words"])))
    return claims


def _unknown_substances(text: str) -> list[str]:
    """Words shaped like a drug (an INN stem) or a systematic chemical name that are no known drug."""
    rules = _word_rules()
    suffixes = tuple(str(s) for s in rules["inn_suffixes"])
    parts = tuple(str(p) for p in rules["chemical_parts"])
    min_length = int(rules["chemical_min_length"])
    known = set(_drug_terms()) | {w for term in _drug_terms() for w in re.findall(r"[a-z]+", term)}
    found: list[str] = []
    for word in re.findall(r"[A-Za-zÄÖÜäöüß]+", text):
        lowered = word.lower()
        if lowered in known:
            continue
        drug_like = len(lowered) > 5 and lowered.endswith(suffixes)
        chemical = len(lowered) >= min_length and any(p in lowered for p in parts)
        if drug_like or chemical:
            found.append(word)
    return found


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", text.replace(",", ".")))


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
    for word in _unknown_substances(stripped):
        problems.append(f"names a substance that is no known drug: {word}")
    scheme_amounts = _numbers(" ".join(t.dose or "" for t in scheme.treatments))
    for match in _DOSE.finditer(stripped):
        if match.group(1).replace(",", ".") not in scheme_amounts:
            problems.append(f"states a dose the scheme does not carry: {match.group(0)}")
    problems += _wrong_class_claims(stripped, scheme, allowed)
    return problems


def _wrong_class_claims(text: str, scheme: Scheme, allowed: set[str]) -> list[str]:
    """A description of how the drugs work (antibody, kinase inhibitor, ...) that none of them fits."""
    classes = _drug_classes()
    terms = _drug_terms()
    scheme_classes = " ".join(c for name in allowed for c in classes.get(terms.get(name, name), ())).lower()
    scheme_words = " ".join([scheme.title, *(t.name for t in scheme.treatments)]).lower()
    problems = []
    for pattern, class_words in _class_claims():
        for match in pattern.finditer(text):
            phrase = match.group(1).lower()
            if phrase in scheme_words or any(w in scheme_classes for w in class_words):
                continue
            problems.append(f"describes the scheme's drugs as {match.group(1)!r}, a class none of them belongs to")
            break
    return problems


def unsupported_by_facts(text: str, facts: str) -> list[str]:
    """Why a rephrasing of ``facts`` cannot be shown: it adds a drug, a substance or a number the facts lack."""
    problems: list[str] = []
    if not text.strip():
        return ["answer is empty"]
    terms = _drug_terms()
    facts_lower = facts.lower()
    known = {terms[m.group(1).lower()] for m in _drug_pattern().finditer(facts)}
    for match in _drug_pattern().finditer(text):
        generic = terms[match.group(1).lower()]
        if generic not in known and match.group(1).lower() not in facts_lower:
            problems.append(f"names a drug the facts do not: {match.group(1)}")
    problems += [f"names a substance that is no known drug: {w}" for w in _unknown_substances(text)]
    missing = _numbers(text) - _numbers(facts)
    if missing:
        problems.append("states numbers the facts do not: " + ", ".join(sorted(missing)))
    return problems
