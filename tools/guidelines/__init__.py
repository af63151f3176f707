"""Guideline knowledge: table loading, patient matching, scheme drafting and compliance scoring."""

from tools.guidelines.compliance import ScoreResult, check_compliance, compliance_score, score_level
from tools.guidelines.matching import GuidelineRules, MatchedRecommendation, rules_for_case
from tools.guidelines.planner import draft_schemes, literature_ids
from tools.guidelines.profile import PatientProfile, build_profile
from tools.guidelines.table import Recommendation, SiteGuideline, common_table, site_guidelines

__all__ = [
    "GuidelineRules",
    "MatchedRecommendation",
    "PatientProfile",
    "Recommendation",
    "ScoreResult",
    "SiteGuideline",
    "build_profile",
    "check_compliance",
    "common_table",
    "compliance_score",
    "draft_schemes",
    "literature_ids",
    "rules_for_case",
    "score_level",
    "site_guidelines",
]
