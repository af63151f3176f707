"""Conditions that the case text states as already treated, so a rule about the untreated state stays quiet.

The extractor reports a condition (``varices``) wherever the text affirms it, without saying whether it
was treated. Where a safety rule concerns only the untreated state (anti-VEGF therapy with untreated
varices), the sentence of each mention is read for the qualifiers of ``condition_qualifiers`` in
``knowledge/safety/rules.yaml``. The check fails closed: a condition is set aside only when every
affirmed mention of it carries a 'treated' cue and none carries a 'still at risk' cue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from oncoboard.domain import Entity, Findings
from tools.extraction.findings import unwrap_soft_breaks
from tools.safety.rules import ConditionQualifier, safety_knowledge

# A sentence ends at . ! ? ; or a line break, but not at the decimal point of "2.5 cm".
_SENTENCE_END = re.compile(r"(?<!\d)[.!?;](?!\d)|\n")


@lru_cache(maxsize=64)
def _cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str]:
    # whole words only: "treated" must not match inside "untreated", nor "behandelt" inside "unbehandelt"
    alternatives = "|".join(re.escape(c.lower()) for c in sorted(cues, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def mention_sentence(text: str, entity: Entity) -> str:
    """The sentence of ``text`` that holds ``entity`` (its span clipped to the text).

    Hard-wrapped lines are joined first, as the extractor does, so a line break inside a sentence
    ("small varices,\nbanded last month") does not split it; offsets stay valid.
    """
    text = unwrap_soft_breaks(text)
    start, end = max(0, min(entity.start, len(text))), max(0, min(entity.end, len(text)))
    left = 0
    for hit in _SENTENCE_END.finditer(text, 0, start):
        left = hit.end()
    right_hit = _SENTENCE_END.search(text, end)
    right = right_hit.start() if right_hit else len(text)
    return text[left:right].strip()


def mention_is_treated(sentence: str, qualifier: ConditionQualifier) -> bool:
    """Whether one mention's sentence states the condition as treated and not still at risk."""
    low = sentence.lower()
    if qualifier.still_at_risk and _cue_pattern(tuple(qualifier.still_at_risk)).search(low):
        return False
    return bool(qualifier.treated) and bool(_cue_pattern(tuple(qualifier.treated)).search(low))


def resolved_conditions(
    findings: Findings, text: str | None, qualifiers: Mapping[str, ConditionQualifier] | None = None
) -> dict[str, str]:
    """Conditions every affirmed mention of which the text states as treated, each with its evidence.

    The evidence is the qualifier note and the mention sentences, for the finding's basis. A
    condition without a located mention (given as structured data, or implied by another) is never
    set aside.
    """
    if not text:
        return {}
    table = safety_knowledge().rules.condition_qualifiers if qualifiers is None else qualifiers
    out: dict[str, str] = {}
    for condition, qualifier in table.items():
        if condition not in findings.conditions:
            continue
        mentions = [e for e in findings.entities if e.label == "CONDITION" and e.code == condition]
        if not mentions:
            continue
        sentences = [mention_sentence(text, e) for e in mentions]
        if all(mention_is_treated(s, qualifier) for s in sentences):
            quoted = "; ".join(f"'{s}'" for s in dict.fromkeys(sentences))
            out[condition] = f"{qualifier.note}: {quoted}"
    return out


def active_conditions(findings: Findings, resolved: Iterable[str]) -> tuple[str, ...]:
    """The patient's conditions less those the text states as treated."""
    gone = set(resolved)
    return tuple(c for c in findings.conditions if c not in gone)
