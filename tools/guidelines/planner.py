"""Planner: three treatment schemes per case drawn from the guideline tables.

evidence_priority = the highest-level applicable standard; lowest_risk = the least toxic
acceptable option once comorbidities, organ function and ECOG are weighed (a safety finding
makes an option costlier, and one a critical finding is certain to stop is left out for
the tumour board); innovative = newer or trial-based evidence, else trial participation.
When the tables do not cover the case, every scheme defers to the tumour board with the limited
evidence text and proposes no drug. A stronger standard that the patient's organ function,
performance status or comorbidity withholds is named in the evidence_priority rationale.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from oncoboard.domain import (
    LIMITED_EVIDENCE_TEXT,
    EvidenceHit,
    Findings,
    Scheme,
    SchemeBases,
    SchemeKind,
    Treatment,
    Tumor,
)
from tools.guidelines.matching import GuidelineRules, MatchedRecommendation, rules_for_case
from tools.guidelines.profile import PatientProfile
from tools.guidelines.table import Recommendation

logger = logging.getLogger(__name__)

_SAFETY_PENALTY = {"critical": 10, "warning": 2, "info": 0}
_YEAR = re.compile(r"\(\s*\d{4}\s*\)")


def _norm(text: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split()) + " "


def literature_ids(rec: Recommendation, evidence: Sequence[EvidenceHit]) -> list[str]:
    """Ids of retrieved cards whose title or id names a trial or guideline behind ``rec``."""
    keys = [_norm(k) for k in rec.evidence_keys]
    keys += [_norm(_YEAR.sub("", s)) for s in rec.sources]
    keys = [k for k in keys if k.strip()]
    out: list[str] = []
    for hit in evidence:
        haystack = _norm(hit.title) + _norm(hit.id)
        if any(k in haystack for k in keys) and hit.id not in out:
            out.append(hit.id)
    return out


def _treatments(rec: Recommendation) -> list[Treatment]:
    return [
        Treatment(name=t.name, drugs=list(t.drugs), dose=t.dose_text(), schedule=t.schedule) for t in rec.treatments
    ]


def _fitness_facts(profile: PatientProfile) -> list[str]:
    facts: list[str] = []
    if profile.ecog is not None:
        facts.append(f"ECOG {profile.ecog}")
    if profile.child_pugh is not None:
        facts.append(f"Child-Pugh {profile.child_pugh}")
    if profile.age is not None:
        facts.append(f"age {profile.age}")
    return facts


def _patient_data(match: MatchedRecommendation, profile: PatientProfile, extra: Sequence[str] = ()) -> list[str]:
    facts = [profile.site or ""]
    if profile.histology:
        facts.append(profile.histology)
    facts += list(match.reasons) + list(extra)
    return [f for f in dict.fromkeys(facts) if f]


def _sources(rec: Recommendation) -> str:
    return ", ".join(rec.sources)


def _limited_schemes(rules: GuidelineRules, reason: str) -> list[Scheme]:
    profile = rules.profile
    facts = [f for f in (profile.site, profile.histology, profile.stage_text and f"stage {profile.stage_text}") if f]
    out: list[Scheme] = []
    for kind in ("evidence_priority", "lowest_risk", "innovative"):
        fb = rules.common.fallback[kind]
        out.append(
            Scheme(
                kind=kind,  # type: ignore[arg-type]
                title=fb.title,
                treatments=[Treatment(name=fb.treatment)],
                rationale=f"{reason}; {LIMITED_EVIDENCE_TEXT}.",
                bases=SchemeBases(patient_data=[str(f) for f in facts]),
                limited_evidence=True,
            )
        )
    return out


def _rank_level(rules: GuidelineRules, match: MatchedRecommendation) -> tuple[int, int]:
    return rules.common.level_rank(match.rec.evidence_level), match.order


def _risk(findings: Findings, match: MatchedRecommendation) -> int:
    # imported here: the safety engine reads doses through this package, so a module-level
    # import would make the two packages import each other while initialising
    from tools.safety.engine import assess_drugs

    penalty = sum(_SAFETY_PENALTY[f.severity] for f in assess_drugs(findings, sorted(match.rec.drugs())))
    return match.rec.toxicity + penalty


def _no_alternative(
    kind: SchemeKind, blocked: set[str], rules: GuidelineRules, profile: PatientProfile, *, foreseen: bool = False
) -> Scheme:
    drugs = ", ".join(sorted(blocked))
    why = (
        "forbidden for this patient by a critical safety rule"
        if foreseen
        else "excluded after the safety review (critical finding)"
    )
    return Scheme(
        kind=kind,
        title=f"No guideline alternative without {drugs}",
        treatments=[Treatment(name=rules.common.fallback["evidence_priority"].treatment)],
        rationale=f"{drugs} {why}; {rules.common.no_alternative_text}; {LIMITED_EVIDENCE_TEXT}.",
        bases=SchemeBases(patient_data=[f for f in (profile.site, profile.stage_group) if f]),
        limited_evidence=True,
    )


def draft_schemes(
    findings: Findings,
    tumors: list[Tumor],
    evidence: list[EvidenceHit],
    *,
    feedback: list[str] | None = None,
    iteration: int = 1,
    excluded_drugs: set[str] | None = None,
) -> list[Scheme]:
    """Draft the three schemes (evidence_priority, lowest_risk, innovative) for a case.

    ``feedback`` holds the guideline checker's findings of the previous round; the revision is
    redrawn from the table, so doses fall inside their ranges and only drugs of applicable
    recommendations appear, and the rationale records what was addressed. ``excluded_drugs``
    are drugs the safety reviewer flagged critical: an option containing one is replaced by the
    next applicable option, or the scheme states that none exists. A non-oncology case gets none.
    """
    if not findings.oncology:
        return []
    rules = rules_for_case(findings, tumors, excluded_drugs=excluded_drugs)
    if rules.limited_reason is not None:
        logger.info("limited evidence: %s", rules.limited_reason)
        return _limited_schemes(rules, rules.limited_reason)
    profile = rules.profile
    excluded = {d.lower() for d in (excluded_drugs or set())}
    usable = [m for m in rules.eligible if not (m.rec.drugs() & excluded)]
    blocked = {d for m in rules.eligible for d in m.rec.drugs() & excluded}
    revision = ""
    if feedback:
        addressed = "; ".join(feedback[:4])
        revision = (
            f" Revision {iteration}: redrawn from the guideline table (doses inside the recommended "
            f"ranges, only drugs of applicable recommendations) to address the guideline check: {addressed}."
        )
    safety_note = (
        f" {', '.join(sorted(blocked))} excluded after the safety review (critical finding)." if blocked else ""
    )

    ep = rules.preferred()
    withheld = [
        m
        for m in rules.withheld
        if "standard" in m.rec.kinds
        and (
            ep is None
            or rules.common.level_rank(m.rec.evidence_level) <= rules.common.level_rank(ep.rec.evidence_level)
        )
    ]
    withheld_note = (
        " Withheld for this patient's organ function, performance status or comorbidity: "
        + ", ".join(f"'{m.rec.title}' [{m.rec.id}]" for m in withheld)
        + "."
        if withheld
        else ""
    )
    # the lowest-risk scheme never offers an option a critical safety rule is certain to stop
    # (fluoropyrimidines with complete DPD deficiency): a safe option, else the tumour board
    safe, foreseen = rules.lowest_risk_pool()
    lr = min(safe, key=lambda m: (_risk(findings, m), *_rank_level(rules, m))) if safe else None
    used = {m.rec.id for m in (ep, lr) if m is not None}
    newer = [m for m in usable if "innovative" in m.rec.kinds and m.rec.id not in used]
    newer = newer or [m for m in usable if "innovative" in m.rec.kinds]
    inn = min(newer, key=lambda m: _rank_level(rules, m)) if newer else None

    schemes: list[Scheme] = []
    if ep is None:
        schemes.append(_no_alternative("evidence_priority", blocked, rules, profile))
    else:
        rec = ep.rec
        schemes.append(
            Scheme(
                kind="evidence_priority",
                title=f"Guideline standard: {rec.title}",
                treatments=_treatments(rec),
                rationale=(
                    "Highest-level guideline option matching the patient "
                    f"(evidence level {rec.evidence_level}; {_sources(rec)}). {rec.summary}"
                    f"{withheld_note}{safety_note}{revision}"
                ),
                bases=SchemeBases(
                    patient_data=_patient_data(ep, profile, _fitness_facts(profile)[:1]),
                    literature=literature_ids(rec, evidence),
                ),
                guideline_ref=rec.id,
            )
        )
    if lr is None and foreseen and not blocked:
        schemes.append(_no_alternative("lowest_risk", foreseen, rules, profile, foreseen=True))
    elif lr is None:
        schemes.append(_no_alternative("lowest_risk", blocked | foreseen, rules, profile))
    else:
        rec = lr.rec
        same = ep is not None and lr.rec.id == ep.rec.id
        fitness = _fitness_facts(profile)
        weighed = f" weighed against {', '.join(fitness)}" if fitness else ""
        schemes.append(
            Scheme(
                kind="lowest_risk",
                title=f"Lowest risk: {rec.title}",
                treatments=_treatments(rec),
                rationale=(
                    f"Least toxic acceptable guideline option{weighed} (toxicity grade {rec.toxicity}/5, "
                    f"evidence level {rec.evidence_level}; {_sources(rec)}). {rec.summary}"
                    + (" The evidence-priority option is also the least toxic acceptable one." if same else "")
                    + safety_note
                    + revision
                ),
                bases=SchemeBases(
                    patient_data=_patient_data(lr, profile, fitness), literature=literature_ids(rec, evidence)
                ),
                guideline_ref=rec.id,
            )
        )
    if inn is None:
        trial = rules.common.innovative_trial
        facts = [
            f for f in (profile.site, profile.histology, profile.stage_text and f"stage {profile.stage_text}") if f
        ]
        schemes.append(
            Scheme(
                kind="innovative",
                title=trial.title,
                treatments=[Treatment(name=trial.treatment)],
                rationale=(
                    "Newer or trial-based evidence: the guideline table holds no newer option for this "
                    f"situation; screen for an open clinical trial.{revision}"
                ),
                bases=SchemeBases(patient_data=[str(f) for f in facts]),
            )
        )
    else:
        rec = inn.rec
        schemes.append(
            Scheme(
                kind="innovative",
                title=f"Innovative (newer evidence): {rec.title}",
                treatments=_treatments(rec),
                rationale=(
                    f"Newer or trial-based evidence, not yet the established standard (evidence level "
                    f"{rec.evidence_level}; {_sources(rec)}). {rec.summary} Offer within a clinical trial or "
                    f"after multidisciplinary discussion.{safety_note}{revision}"
                ),
                bases=SchemeBases(
                    patient_data=_patient_data(inn, profile, _fitness_facts(profile)[:1]),
                    literature=literature_ids(rec, evidence),
                ),
                guideline_ref=rec.id,
            )
        )
    logger.info("drafted schemes %s", [s.guideline_ref for s in schemes])
    return schemes
