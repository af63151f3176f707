"""Guideline checker: how far a scheme follows the applicable recommendations.

100 = the principle, the drugs and every dose follow a recommendation; 60-80 = a partial
deviation (a dose within the table's margin, an accepted alternative, an incomplete regimen);
0 = the wrong direction (a drug a biomarker or the setting rules out, a drug no applicable
recommendation contains, a dose far outside its range). The scores and margins come from
``knowledge/guidelines/common.yaml``.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from oncoboard.domain import Compliance, Findings, Scheme, Tumor
from tools.guidelines.doses import deviation, parse_dose_text
from tools.guidelines.matching import GuidelineRules, MatchedRecommendation, rules_for_case
from tools.guidelines.table import CommonTable

logger = logging.getLogger(__name__)

Level = Literal["fully_compliant", "partially_compliant", "non_compliant"]


class ScoreResult(BaseModel):
    """Score of one scheme against the guideline rules."""

    model_config = ConfigDict(frozen=True)

    score: int = Field(ge=0, le=100, description="0-100 compliance score.")
    level: Level = Field(description="Band of the score.")
    findings: list[str] = Field(default_factory=list, description="What lowered the score, phrased as a fix.")
    recommendation_id: str | None = Field(default=None, description="The recommendation the scheme was held to.")


def score_level(score: int, common: CommonTable) -> Level:
    """The compliance band of a score."""
    for level in ("fully_compliant", "partially_compliant", "non_compliant"):
        low, high = common.scoring.level_bands[level]
        if low <= score <= high:
            return level  # type: ignore[return-value]
    return "non_compliant"


def _scheme_drugs(scheme: Scheme) -> set[str]:
    return {d.lower() for t in scheme.treatments for d in t.drugs}


def _scheme_components(scheme: Scheme) -> set[frozenset[str]]:
    return {
        frozenset(d.lower() for d in t.drugs) if t.drugs else frozenset({t.name.lower()}) for t in scheme.treatments
    }


def _fits_kind(scheme: Scheme, match: MatchedRecommendation, rules: GuidelineRules) -> bool:
    rec = match.rec
    if scheme.kind == "evidence_priority":
        top = rules.preferred()
        return top is not None and top.rec.id == rec.id
    if scheme.kind == "lowest_risk":
        return bool({"standard", "lower_toxicity"} & set(rec.kinds))
    return True


def _closest(scheme: Scheme, rules: GuidelineRules) -> tuple[MatchedRecommendation | None, bool]:
    """The recommendation the scheme follows (exact component match first, else most overlap)."""
    components = _scheme_components(scheme)
    exact = [m for m in rules.eligible if m.rec.components() == components]
    if exact:
        fitting = [m for m in exact if _fits_kind(scheme, m, rules)]
        return (fitting or exact)[0], True
    best: MatchedRecommendation | None = None
    best_overlap = 0.0
    for m in rules.eligible:
        rec_items = {x for c in m.rec.components() for x in c}
        own = {x for c in components for x in c}
        union = rec_items | own
        overlap = len(rec_items & own) / len(union) if union else 0.0
        if overlap > best_overlap:
            best, best_overlap = m, overlap
    return best, False


def compliance_score(scheme: Scheme, rules: GuidelineRules) -> ScoreResult:
    """Score one scheme against the guideline rules of its case (pure: no I/O, no state)."""
    sc = rules.common.scoring
    kind = scheme.kind
    if rules.limited_reason is not None or not rules.eligible:
        reason = rules.limited_reason or "no applicable recommendation"
        return ScoreResult(
            score=sc.non_compliant,
            level=score_level(sc.non_compliant, rules.common),
            findings=[f"{kind}: no guideline recommendation covers this case ({reason}); refer to the tumour board"],
        )
    if scheme.limited_evidence:
        safe, foreseen = rules.lowest_risk_pool()
        if kind == "lowest_risk" and foreseen and not safe:
            # every acceptable option carries a drug a critical safety rule forbids for this patient:
            # deferring to the tumour board is the compliant lowest-risk choice
            return ScoreResult(score=sc.full, level=score_level(sc.full, rules.common))
        top = rules.preferred()
        if top is None:
            excluded = ", ".join(sorted(rules.excluded_drugs))
            return ScoreResult(
                score=sc.non_compliant,
                level=score_level(sc.non_compliant, rules.common),
                findings=[f"{kind}: no guideline option remains without {excluded}; refer to the tumour board"],
            )
        first = top.rec
        return ScoreResult(
            score=sc.non_compliant,
            level=score_level(sc.non_compliant, rules.common),
            findings=[f"{kind}: a guideline recommendation applies; draft '{first.title}' [{first.id}]"],
        )

    trial_names = {
        rules.common.innovative_trial.treatment.lower(),
        rules.common.fallback["innovative"].treatment.lower(),
    }
    if (
        kind == "innovative"
        and scheme.treatments
        and all(not t.drugs and t.name.lower() in trial_names for t in scheme.treatments)
    ):
        # trial participation is always open as the innovative option
        return ScoreResult(score=sc.full, level=score_level(sc.full, rules.common))

    scores: list[int] = []
    notes: list[str] = []
    drugs = _scheme_drugs(scheme)
    for drug in sorted(drugs & set(rules.not_recommended)):
        scores.append(sc.non_compliant)
        notes.append(f"{kind}: drug '{drug}' is not recommended: {rules.not_recommended[drug]}; replace it")
    allowed = rules.allowed_drugs()
    for drug in sorted(drugs - allowed - set(rules.not_recommended)):
        scores.append(sc.non_compliant)
        notes.append(
            f"{kind}: drug '{drug}' is not part of any guideline recommendation for this situation; replace it"
        )

    match, exact = _closest(scheme, rules)
    if match is None:
        scores.append(sc.non_compliant)
        notes.append(f"{kind}: the scheme follows no applicable recommendation; use '{rules.eligible[0].rec.title}'")
        return _result(scores, notes, None, rules)
    rec = match.rec
    if not exact:
        own = {x for c in _scheme_components(scheme) for x in c}
        wanted = {x for c in rec.components() for x in c}
        missing, extra = sorted(wanted - own), sorted(own - wanted)
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not in it {', '.join(extra)}" if extra else "",
            )
            if part
        )
        scores.append(sc.incomplete_regimen)
        notes.append(f"{kind}: the regimen differs from '{rec.title}' [{rec.id}] ({detail}); complete it")
    elif not _fits_kind(scheme, match, rules):
        scores.append(sc.accepted_alternative)
        if kind == "evidence_priority":
            top = rules.preferred()
            best = f"'{top.rec.title}' [{top.rec.id}], level {top.rec.evidence_level}" if top else "none"
            notes.append(
                f"{kind}: '{rec.title}' [{rec.id}] is an accepted alternative (level {rec.evidence_level}); "
                f"the preferred guideline option is {best}"
            )
        else:
            notes.append(f"{kind}: '{rec.title}' [{rec.id}] is an accepted alternative, not a {kind} option")

    for treatment in scheme.treatments:
        if not treatment.drugs:
            continue
        amounts = parse_dose_text(treatment.dose, treatment.drugs)
        for drug in (d.lower() for d in treatment.drugs):
            specs = rec.dose_specs(drug)
            if not specs:
                continue
            stated = [a for a in amounts if a.drug == drug]
            guideline = " or ".join(s.display() for s in specs)
            if not stated:
                scores.append(sc.missing_dose)
                notes.append(f"{kind}: state the dose of {drug} (guideline: {guideline}) [{rec.id}]")
                continue
            for amount in stated:
                dev = deviation(amount, specs)
                if dev is None:
                    scores.append(sc.unit_mismatch)
                    notes.append(
                        f"{kind}: {drug} dose {amount.display()} is in a unit the guideline does not use; "
                        f"use {guideline} [{rec.id}]"
                    )
                    continue
                band = next((int(m["score"]) for m in sc.dose_margins if dev <= m["max_deviation"]), None)
                score = sc.non_compliant if band is None else band
                scores.append(score)
                if dev > 0:
                    notes.append(
                        f"{kind}: {drug} dose {amount.display()} deviates {dev:.0%} from the guideline dose "
                        f"{guideline}; correct it to {guideline} [{rec.id}]"
                    )
    return _result(scores, notes, rec.id, rules)


def _result(scores: list[int], notes: list[str], rec_id: str | None, rules: GuidelineRules) -> ScoreResult:
    score = min(scores) if scores else rules.common.scoring.full
    return ScoreResult(score=score, level=score_level(score, rules.common), findings=notes, recommendation_id=rec_id)


def check_compliance(
    findings: Findings,
    tumors: list[Tumor],
    schemes: list[Scheme],
    *,
    threshold: int = 80,
    iteration: int = 1,
    excluded_drugs: set[str] | None = None,
) -> Compliance:
    """Score every scheme of a case; the case's score is the ``evidence_priority`` scheme's.

    ``excluded_drugs`` (critical safety findings) are taken out of the preferred option, so a
    scheme that replaced an excluded drug by the next option is not marked down for it.
    """
    rules = rules_for_case(findings, tumors, excluded_drugs=excluded_drugs)
    results = {s.kind: compliance_score(s, rules) for s in schemes}
    primary = results.get("evidence_priority")
    if primary is None:
        score, notes = (
            rules.common.scoring.non_compliant,
            ["evidence_priority: no evidence_priority scheme drafted"],
        )
    else:
        score, notes = primary.score, list(primary.findings)
    for kind, result in results.items():
        if kind != "evidence_priority":
            notes.extend(result.findings)
    compliance = Compliance(
        score=score,
        level=score_level(score, rules.common),
        threshold=threshold,
        passed=score >= threshold,
        iterations=iteration,
        findings=notes,
        scheme_scores={kind: r.score for kind, r in results.items()},
    )
    logger.info("guideline check iteration %d: score %d (%s)", iteration, score, compliance.level)
    return compliance
