"""Safety rule engine: contraindications, warnings, interactions and dose limits."""

from tools.safety.engine import assess_drugs, critical_drugs, dose_limit_findings, review_safety, withheld_findings
from tools.safety.rules import SafetyKnowledge, SafetyRule, safety_knowledge

__all__ = [
    "SafetyKnowledge",
    "SafetyRule",
    "assess_drugs",
    "critical_drugs",
    "dose_limit_findings",
    "review_safety",
    "safety_knowledge",
    "withheld_findings",
]
