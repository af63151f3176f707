"""Patient-level facts: age, sex, ECOG, laboratory values, conditions, medications, setting."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from oncoboard.domain import CONDITION_TERMS, LAB_KEYS, Entity
from oncoboard.knowledge import load_table
from tools.extraction.lexicon import PhraseMatcher, flat_matcher, lexicon, matcher
from tools.extraction.negation import TextContext
from tools.extraction.numbers import NUMBER, parse_number

logger = logging.getLogger(__name__)

_AFTER_VALUE = re.compile(rf"^[^\n\d]{{0,22}}?(?P<cmp>[<>≤≥]=?)?\s*(?P<val>{NUMBER})(?![\d])\s*(?P<unit>[^\s,;()]*)")
_ECOG_VALUE = re.compile(r"^\W{0,4}(?:(?:score|status|of|von|=|:|is|was|ist|war)\W{0,3}){0,3}([0-5])(?![\d%]|[.,]\d)")
_KPS_VALUE = re.compile(
    r"^\W{0,4}(?:(?:score|status|of|von|=|:|is|was|ist|war)\W{0,3}){0,3}(\d{2,3})(?:\s*%)?(?![\d.,])"
)
_CP_SCORE = re.compile(r"(?i)^\s*[\(\-]?\s*(?:(?:score|punkte|points)\s*:?\s*)?(\d{1,2})(?!\d|[.,]\d)")


@dataclass
class PatientFacts:
    """What the text says about the patient."""

    age: int | None = None
    sex: str | None = None
    ecog: int | None = None
    labs: dict[str, float] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)
    medications: list[str] = field(default_factory=list)
    setting_hint: str | None = None
    entities: list[Entity] = field(default_factory=list)


def _lab_entries() -> list[tuple[str, str]]:
    labs = lexicon("labs")["labs"]
    return [(str(t), key) for key, spec in labs.items() for t in spec["terms"]]


@lru_cache(maxsize=1)
def _lab_matcher() -> PhraseMatcher[str]:
    return PhraseMatcher(_lab_entries())


@lru_cache(maxsize=1)
def _age_regex() -> tuple[re.Pattern[str], re.Pattern[str]]:
    table = lexicon("patient")
    words = sorted((re.escape(str(w)).replace(r"\ ", r"[\s\-]*") for w in table["age_words"]), key=len, reverse=True)
    prefixes = sorted((re.escape(str(w)).replace(r"\ ", r"\s+") for w in table["age_prefix"]), key=len, reverse=True)
    after = re.compile(r"(?i)(?<![\d.,])(\d{1,3})\s*[\-\s]?\s*(?:" + "|".join(words) + r")(?!\w)")
    before = re.compile(r"(?i)(?<!\w)(?:" + "|".join(prefixes) + r")\s*:?\s*(\d{1,3})(?![\d.,])")
    return after, before


@lru_cache(maxsize=1)
def _drug_matcher() -> PhraseMatcher[tuple[str, ...]]:
    table = lexicon("medications")
    entries: list[tuple[str, tuple[str, ...]]] = []
    for generic, names in table["drugs"].items():
        entries.append((str(generic), (str(generic),)))
        entries.extend((str(n), (str(generic),)) for n in names)
    for regimen, drugs in table.get("regimens", {}).items():
        entries.append((str(regimen), tuple(str(d) for d in drugs)))
    return PhraseMatcher(entries)


def normalise_medication(name: str) -> list[str]:
    """Generic lower-case names for a medication as written (brand or generic, EN/DE)."""
    hits = _drug_matcher().find(name)
    if hits:
        return [g for h in hits for g in h.value]
    cleaned = " ".join(name.lower().split())
    return [cleaned] if cleaned else []


def extract_patient(text: str, ctx: TextContext, lang: str) -> PatientFacts:
    """Age, sex, ECOG, labs, conditions, medications and setting stated in ``text``."""
    facts = PatientFacts()
    _age(text, facts)
    _sex(text, ctx, facts)
    _ecog(text, facts)
    _labs(text, ctx, facts)
    _conditions(text, ctx, facts)
    _medications(text, ctx, facts)
    _setting(text, ctx, facts)
    return facts


def _age(text: str, facts: PatientFacts) -> None:
    after, before = _age_regex()
    for regex in (after, before):
        m = regex.search(text)
        if m and 0 < int(m.group(1)) <= 120:
            facts.age = int(m.group(1))
            facts.entities.append(Entity(text=m.group(0), label="AGE", start=m.start(), end=m.end()))
            return


def _sex(text: str, ctx: TextContext, facts: PatientFacts) -> None:
    for hit in matcher("patient", "sex").find(text):
        if ctx.assertion(hit.start, hit.end) != "affirmed":
            continue
        # German "Patient" is male only with an article or an age ("der Patient", "64-jähriger
        # Patient"); the lexicon lists only those forms, never the bare word
        facts.sex = hit.value
        facts.entities.append(Entity(text=hit.text, label="SEX", start=hit.start, end=hit.end, code=hit.value))
        return


def _ecog(text: str, facts: PatientFacts) -> None:
    for hit in flat_matcher("patient", "ecog_cues").find(text):
        if hit.text.lower() == "ps" and not hit.text.isupper():
            continue
        m = _ECOG_VALUE.match(text[hit.end : hit.end + 40])
        if m:
            facts.ecog = int(m.group(1))
            end = hit.end + m.end()
            facts.entities.append(Entity(text=text[hit.start : end], label="ECOG", start=hit.start, end=end))
            return
    table = lexicon("patient")["karnofsky_to_ecog"]
    mapping = {int(k): int(v) for k, v in table.items()}
    for hit in flat_matcher("patient", "karnofsky_cues").find(text):
        m = _KPS_VALUE.match(text[hit.end : hit.end + 40])
        if m:
            kps = int(m.group(1))
            if kps in mapping:
                facts.ecog = mapping[kps]
                end = hit.end + m.end()
                facts.entities.append(
                    Entity(text=text[hit.start : end], label="ECOG", start=hit.start, end=end, code=f"KPS {kps}")
                )
                return


def _labs(text: str, ctx: TextContext, facts: PatientFacts) -> None:
    specs: dict[str, Any] = lexicon("labs")["labs"]
    for hit in _lab_matcher().find(text):
        key = hit.value
        if key not in LAB_KEYS or key in facts.labs:
            continue
        spec = specs[key]
        m = _AFTER_VALUE.match(text[hit.end : hit.end + 60])
        if not m:
            continue
        value = parse_number(m.group("val"))
        if value is None:
            continue
        unit_raw = (m.group("unit") or "").lower().rstrip(".")
        units: dict[str, float] = {str(u).lower(): float(f) for u, f in (spec.get("units") or {}).items()}
        factor = None
        for unit, f in units.items():
            if unit_raw.startswith(unit) or unit_raw.replace("μ", "µ").startswith(unit):
                factor = f
                break
        if factor is None:
            if spec.get("require_unit"):
                continue
            # a bare % belongs to LVEF only; any other foreign unit means a different quantity
            if unit_raw and units and not unit_raw[0].isalpha() and unit_raw not in ("", "%"):
                continue
            factor = 1.0
        value = round(value * factor, 3)
        low, high = spec.get("range", [float("-inf"), float("inf")])
        if not (low <= value <= high):
            continue
        facts.labs[key] = value
        end = hit.end + m.end()
        while end > hit.end and text[end - 1] in ".:":
            end -= 1
        facts.entities.append(Entity(text=text[hit.start : end], label="LAB", start=hit.start, end=end, code=key))
    _child_pugh(text, ctx, facts)


@lru_cache(maxsize=1)
def _child_pugh_spec() -> tuple[re.Pattern[str], dict[str, str], frozenset[str], frozenset[str]]:
    """The Child-Pugh pattern, letter -> condition, short cues and capital-only cues."""
    spec = lexicon("labs")["child_pugh"]

    def alternation(terms: list[Any]) -> str:
        # blanks and hyphens between tokens match any run of them, as in the phrase matcher
        tokens = (re.split(r"[\s\-]+", str(t).strip().lower()) for t in terms)
        escaped = (r"[\s\-]*".join(re.escape(tok) for tok in toks) for toks in tokens)
        return "|".join(sorted(escaped, key=len, reverse=True))

    pattern = re.compile(
        rf"(?i)(?<![\w\-])(?P<cue>{alternation(spec['cues'])})(?P<sep>[\s\-:]*)"
        rf"(?:(?:{alternation(spec['class_words'])})[\s\-:]*)?"
        r"(?P<cls>[abc])(?:[\s\-]?(?P<pts>\d{1,2}))?(?![\w])"
    )
    classes = {str(k).lower(): str(v) for k, v in spec["classes"].items()}
    short = frozenset(str(c).lower() for c in spec.get("short_cues", []))
    upper = frozenset(str(c).lower() for c in spec.get("upper_case_cues", []))
    return pattern, classes, short, upper


@lru_cache(maxsize=1)
def _child_pugh_bands() -> dict[str, tuple[int, int]]:
    """Child-Pugh class -> (min, max) points, from the table the BCLC stager reads."""
    bands = load_table("tnm/bclc.yaml")["child_pugh"]["score_classes"]
    return {str(b["class"]).upper(): (int(b["min"]), int(b["max"])) for b in bands}


def _child_pugh(text: str, ctx: TextContext, facts: PatientFacts) -> None:
    """Child-Pugh class (a condition) and points (a lab value) as stated."""
    pattern, classes, short, upper = _child_pugh_spec()
    bands = _child_pugh_bands()
    for m in pattern.finditer(text):
        cue = re.sub(r"[\s\-]+", " ", m.group("cue").lower())
        letter = m.group("cls")
        if cue in short and (not letter.isupper() or not m.group("sep")):
            continue
        if cue in upper and not m.group("cue").isupper():
            continue
        if ctx.assertion(m.start(), m.end()) != "affirmed":
            continue
        condition = classes[letter.lower()]
        points_text = m.group("pts")
        end = m.end()
        if points_text is None:
            after = _CP_SCORE.match(text[end : end + 16])
            points_text = after.group(1) if after else None
        points = int(points_text) if points_text is not None else None
        low, high = bands.get(letter.upper(), (5, 15))
        if points is not None and not (low <= points <= high):
            lowest, highest = min(b[0] for b in bands.values()), max(b[1] for b in bands.values())
            if lowest <= points <= highest:
                # "Child-Pugh A9": class and points disagree; which one is wrong cannot be told from
                # the text, so neither becomes a fact and the mention stays visible for review
                logger.warning("Child-Pugh class %s with %d points is inconsistent; not used", letter.upper(), points)
                facts.entities.append(
                    Entity(text=m.group(0), label="CONDITION_UNCERTAIN", start=m.start(), end=end, code=condition)
                )
                continue
            points = None
        _add_condition(facts, condition)
        facts.entities.append(Entity(text=m.group(0), label="CONDITION", start=m.start(), end=end, code=condition))
        if points is not None and "child_pugh_score" not in facts.labs:
            facts.labs["child_pugh_score"] = float(points)


def _add_condition(facts: PatientFacts, condition: str) -> None:
    if condition in CONDITION_TERMS and condition not in facts.conditions:
        facts.conditions.append(condition)


@lru_cache(maxsize=1)
def _condition_matcher() -> PhraseMatcher[tuple[str, ...]]:
    """Condition phrases; a phrase listed under several conditions names them all.

    "Ösophagusvarizenblutung" is both varices and a recent bleeding: the safety rules read each
    on its own (treated varices no longer count, a bleeding two weeks ago still does).
    """
    by_term: dict[str, list[str]] = {}
    for condition, terms in lexicon("conditions")["terms"].items():
        for term in terms:
            named = by_term.setdefault(str(term).lower(), [])
            if str(condition) not in named:
                named.append(str(condition))
    return PhraseMatcher((term, tuple(conditions)) for term, conditions in by_term.items())


def _conditions(text: str, ctx: TextContext, facts: PatientFacts) -> None:
    table = lexicon("conditions")
    active = flat_matcher("conditions", "active_cues").find(text)
    for hit in _condition_matcher().find(text):
        status = ctx.assertion(hit.start, hit.end)
        for condition in hit.value:
            if status != "affirmed":
                facts.entities.append(
                    Entity(
                        text=hit.text,
                        label=f"CONDITION_{status.upper()}",
                        start=hit.start,
                        end=hit.end,
                        code=condition,
                    )
                )
                continue
            if condition == "autoimmune_disease" and any(
                ctx.clause(a.start) == ctx.clause(hit.start) and abs(a.start - hit.start) < 60 for a in active
            ):
                condition = "active_autoimmune_disease"
            _add_condition(facts, condition)
            facts.entities.append(
                Entity(text=hit.text, label="CONDITION", start=hit.start, end=hit.end, code=condition)
            )
    for source, implied in table.get("implies", {}).items():
        if source in facts.conditions:
            for cond in implied:
                _add_condition(facts, str(cond))


def _medications(text: str, ctx: TextContext, facts: PatientFacts) -> None:
    for hit in _drug_matcher().find(text):
        # "ASS" is aspirin only in capitals; lower-case "ass" is noise in OCR text
        if len(hit.text) <= 3 and not hit.text.isupper():
            continue
        status = ctx.assertion(hit.start, hit.end)
        label = "DRUG" if status == "affirmed" else f"DRUG_{status.upper()}"
        facts.entities.append(Entity(text=hit.text, label=label, start=hit.start, end=hit.end, code=hit.value[0]))
        if status != "affirmed":
            continue
        for generic in hit.value:
            if generic not in facts.medications:
                facts.medications.append(generic)


def _setting(text: str, ctx: TextContext, facts: PatientFacts) -> None:
    table = lexicon("patient")
    priority = [str(p) for p in table["setting_priority"]]
    found: set[str] = set()
    for hit in matcher("patient", "setting").find(text):
        status = ctx.assertion(hit.start, hit.end)
        if status == "negated":
            continue
        found.add(hit.value)
        facts.entities.append(Entity(text=hit.text, label="SETTING", start=hit.start, end=hit.end, code=hit.value))
    for setting in priority:
        if setting in found:
            facts.setting_hint = setting
            return
