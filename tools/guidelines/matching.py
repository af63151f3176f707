"""Which recommendations of the tables apply to a patient, and which drugs point the wrong way."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from oncoboard.domain import Findings, Tumor
from tools.guidelines.profile import PatientProfile, build_profile, match_conditions
from tools.guidelines.table import CommonTable, Recommendation, SiteGuideline, common_table, site_guideline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchedRecommendation:
    """A recommendation that applies, with the patient facts that made it apply."""

    rec: Recommendation
    reasons: tuple[str, ...]
    order: int


@dataclass(frozen=True)
class GuidelineRules:
    """Everything the planner and the checker need to know about one case's guideline situation."""

    profile: PatientProfile
    common: CommonTable
    table: SiteGuideline | None
    eligible: tuple[MatchedRecommendation, ...] = ()
    not_recommended: dict[str, str] = field(default_factory=dict)
    limited_reason: str | None = None
    excluded_drugs: frozenset[str] = frozenset()
    withheld: tuple[MatchedRecommendation, ...] = ()
    forbidden: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per eligible recommendation id, its drugs that a critical safety rule forbids for this patient."""

    def preferred(self) -> MatchedRecommendation | None:
        """The option an evidence_priority scheme should follow: the strongest-evidence standard
        recommendation (table order breaks ties) without a drug the safety review excluded."""
        usable = [m for m in self.eligible if not (m.rec.drugs() & self.excluded_drugs)]
        pool = [m for m in usable if "standard" in m.rec.kinds] or [
            m for m in usable if "lower_toxicity" in m.rec.kinds
        ]
        if not pool:
            return None
        return min(pool, key=lambda m: (self.common.level_rank(m.rec.evidence_level), m.order))

    @property
    def best_level(self) -> str | None:
        """Strongest evidence level among the applicable standard recommendations."""
        standard = [m.rec.evidence_level for m in self.eligible if "standard" in m.rec.kinds]
        pool = standard or [m.rec.evidence_level for m in self.eligible]
        return min(pool, key=self.common.level_rank) if pool else None

    def lowest_risk_pool(self) -> tuple[list[MatchedRecommendation], set[str]]:
        """Options a lowest_risk scheme may follow, and the drugs that kept the others out.

        Standard or lower-toxicity options without a drug the safety review excluded; an option a
        critical safety rule is certain to stop for this patient (fluoropyrimidines with complete
        DPD deficiency) is left out, its forbidden drugs returned instead.
        """
        acceptable = [
            m
            for m in self.eligible
            if {"standard", "lower_toxicity"} & set(m.rec.kinds) and not (m.rec.drugs() & self.excluded_drugs)
        ]
        safe = [m for m in acceptable if not self.forbidden.get(m.rec.id)]
        foreseen = {d for m in acceptable for d in self.forbidden.get(m.rec.id, frozenset())}
        return safe, foreseen

    def allowed_drugs(self) -> set[str]:
        """Drugs of every applicable recommendation."""
        return {d for m in self.eligible for d in m.rec.drugs()}


def eligible_recommendations(
    profile: PatientProfile, table: SiteGuideline, common: CommonTable | None = None
) -> list[MatchedRecommendation]:
    """Recommendations of ``table`` whose conditions (with their drugs' organ-function
    requirements) the patient meets, in table order."""
    common = common or common_table()
    out: list[MatchedRecommendation] = []
    for order, rec in enumerate(table.recommendations):
        reasons = match_conditions(common.conditions_for(rec), profile)
        if reasons is not None:
            out.append(MatchedRecommendation(rec=rec, reasons=tuple(dict.fromkeys(reasons)), order=order))
    return out


# Conditions that test whether this patient can tolerate a regimen rather than whether the regimen
# fits the disease; a recommendation failing only these is withheld, not inapplicable.
_FITNESS_FIELDS: dict[str, object] = {
    "labs": [],
    "ecog_max": None,
    "child_pugh": None,
    "age_max": None,
    "conditions_none": [],
}


def withheld_recommendations(
    profile: PatientProfile, table: SiteGuideline, common: CommonTable | None = None
) -> list[MatchedRecommendation]:
    """Recommendations that fit the disease but not the patient's fitness or organ function.

    A regimen that only an organ-function limit, performance status, liver function, age or a
    comorbidity keeps from the patient is what the tumour board would otherwise have offered
    (cisplatin chemoradiotherapy in a patient with renal failure): the safety review names why.
    """
    common = common or common_table()
    out: list[MatchedRecommendation] = []
    for order, rec in enumerate(table.recommendations):
        if match_conditions(common.conditions_for(rec), profile) is not None:
            continue
        relaxed = rec.conditions.model_copy(update=_FITNESS_FIELDS)
        reasons = match_conditions(relaxed, profile)
        if reasons is not None:
            out.append(MatchedRecommendation(rec=rec, reasons=tuple(dict.fromkeys(reasons)), order=order))
    return out


def not_recommended_drugs(profile: PatientProfile, table: SiteGuideline) -> dict[str, str]:
    """Drugs ruled out for this patient (a biomarker or setting), with the reason."""
    out: dict[str, str] = {}
    for rule in table.not_recommended:
        reasons = match_conditions(rule.when, profile)
        if reasons is None:
            continue
        basis = f" ({', '.join(reasons)})" if reasons else ""
        for drug in rule.drugs:
            out.setdefault(drug.lower(), f"{rule.reason}{basis} [{rule.id}]")
    return out


def rules_for_case(
    findings: Findings, tumors: list[Tumor], *, excluded_drugs: set[str] | None = None
) -> GuidelineRules:
    """The guideline situation of a case: its profile, the applicable recommendations and exclusions.

    ``limited_reason`` says why no recommendation can be drawn (site not covered, staging missing,
    contradictory data, no matching recommendation).
    """
    common = common_table()
    profile = build_profile(findings, tumors, common)
    site = profile.site
    if site is None or site == "other":
        reason = "no primary site the guideline tables cover" if site else "no tumour site stated"
        return GuidelineRules(profile=profile, common=common, table=None, limited_reason=reason)
    primaries = sorted({t.site for t in tumors if t.primary})
    if len(primaries) > 1:
        # independent primaries compete for sequencing and tolerance: one table cannot order them
        reason = f"multiple independent primary tumours ({', '.join(primaries)})"
        return GuidelineRules(profile=profile, common=common, table=None, limited_reason=reason)
    table = site_guideline(site)
    if table is None:
        return GuidelineRules(
            profile=profile, common=common, table=None, limited_reason=f"no guideline table for site {site}"
        )
    if profile.histology and any(h.lower() in profile.histology.lower() for h in table.histology_none):
        reason = f"histology '{profile.histology}' is not covered by the {site} guideline table"
        return GuidelineRules(profile=profile, common=common, table=table, limited_reason=reason)
    if profile.contradictions:
        reason = "contradictory data: " + "; ".join(profile.contradictions)
        return GuidelineRules(profile=profile, common=common, table=table, limited_reason=reason)
    if table.staging_required and not profile.staged:
        reason = {
            "liver": "BCLC stage missing",
            "prostate": "risk group cannot be derived (T category, PSA and grade group needed)",
        }.get(site, "stage missing")
        return GuidelineRules(profile=profile, common=common, table=table, limited_reason=reason)
    eligible = eligible_recommendations(profile, table, common)
    excluded = not_recommended_drugs(profile, table)
    withheld = withheld_recommendations(profile, table, common)
    limited = None
    if not any({"standard", "lower_toxicity"} & set(m.rec.kinds) for m in eligible):
        stage = profile.stage_text or profile.bclc or profile.risk_group or "unstaged"
        setting = profile.setting.replace("_", " ")
        limited = f"no {site} recommendation matches {stage} in the {setting} setting"
        if withheld:
            titles = ", ".join(f"'{m.rec.title}' [{m.rec.id}]" for m in withheld)
            limited = (
                f"every {site} option for {stage} in the {setting} setting is withheld for this patient's "
                f"organ function, performance status or comorbidity ({titles})"
            )
    logger.debug("guideline rules for %s: %d eligible, limited=%s", site, len(eligible), limited)
    # imported here: the safety engine reads doses through this package, so a module-level
    # import would make the two packages import each other while initialising
    from tools.safety.engine import assess_drugs

    forbidden = {
        m.rec.id: frozenset(
            f.drug.lower() for f in assess_drugs(findings, sorted(m.rec.drugs())) if f.severity == "critical" and f.drug
        )
        for m in eligible
    }
    return GuidelineRules(
        profile=profile,
        common=common,
        table=table,
        eligible=tuple(eligible),
        not_recommended=excluded,
        limited_reason=limited,
        excluded_drugs=frozenset(d.lower() for d in (excluded_drugs or set())),
        withheld=tuple(withheld),
        forbidden={k: v for k, v in forbidden.items() if v},
    )
