"""Typed view of the safety tables in ``knowledge/safety/``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oncoboard.domain import CONDITION_TERMS, LAB_KEYS
from oncoboard.knowledge import KnowledgeError, load_table

RULES_TABLE = "safety/rules.yaml"
CLASSES_TABLE = "safety/drug_classes.yaml"
MAX_DOSE_TABLE = "safety/max_doses.yaml"
Severity = Literal["info", "warning", "critical"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Trigger(_Model):
    """One patient finding that sets a rule off (the rule fires when any trigger holds)."""

    lab: str | None = None
    fallback_labs: list[str] = Field(default_factory=list)
    lt: float | None = None
    ge: float | None = None
    conditions: list[str] = Field(default_factory=list)
    pregnancy: bool = False
    biomarker: list[str] = Field(default_factory=list)
    status: Literal["positive", "negative"] | None = None
    result_any: list[str] = Field(default_factory=list)
    medication_groups: list[str] = Field(default_factory=list)
    ecog_min: int | None = None

    @model_validator(mode="after")
    def _known_terms(self) -> Trigger:
        for key in [self.lab, *self.fallback_labs]:
            if key is not None and key not in LAB_KEYS:
                raise ValueError(f"unknown lab key {key}")
        for term in self.conditions:
            if term not in CONDITION_TERMS:
                raise ValueError(f"unknown condition term {term}")
        if self.lab is not None and self.lt is None and self.ge is None:
            raise ValueError(f"lab trigger {self.lab} needs 'lt' or 'ge'")
        return self


class SafetyRule(_Model):
    """A drug or class, its triggers, severity, reason and source."""

    id: str
    severity: Severity
    drugs: list[str] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    triggers: list[Trigger]
    reason: str
    source: str
    group: str | None = None


class LabLabel(_Model):
    """How a lab value is printed."""

    label: str
    unit: str


class ConditionQualifier(_Model):
    """Cues in a condition's sentence that mark it as treated, or as still at risk despite treatment."""

    treated: list[str] = Field(description="Words that state the condition as already treated (banded, ligated).")
    still_at_risk: list[str] = Field(
        default_factory=list,
        description="Words that keep the condition active even with a treated cue (untreated, bleeding, planned).",
    )
    note: str = Field(description="How a finding's basis names the set-aside condition.")


class RulesTable(_Model):
    """``knowledge/safety/rules.yaml``."""

    source: str
    edition: str
    description: str | None = None
    lab_labels: dict[str, LabLabel]
    condition_qualifiers: dict[str, ConditionQualifier] = Field(default_factory=dict)
    rules: list[SafetyRule]

    @model_validator(mode="after")
    def _known_qualified_conditions(self) -> RulesTable:
        for term in self.condition_qualifiers:
            if term not in CONDITION_TERMS:
                raise ValueError(f"unknown qualified condition term {term}")
        return self


class MaxDose(_Model):
    """Highest labelled single dose of a drug."""

    drug: str
    max: float
    unit: str


class SafetyKnowledge(_Model):
    """All safety tables, with drug classes expanded to drug sets."""

    rules: RulesTable
    classes: dict[str, frozenset[str]]
    medication_groups: dict[str, frozenset[str]]
    max_doses: dict[str, list[MaxDose]]

    def rule_drugs(self, rule: SafetyRule) -> frozenset[str]:
        """Every drug a rule covers."""
        out = {d.lower() for d in rule.drugs}
        for cls in rule.classes:
            out |= self.classes[cls]
        return frozenset(out)


def _expand(raw: dict[str, object]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}

    def resolve(name: str, trail: tuple[str, ...]) -> frozenset[str]:
        if name in out:
            return out[name]
        if name in trail:
            raise KnowledgeError(f"{CLASSES_TABLE}: class cycle through {name}")
        spec = raw.get(name)
        if spec is None:
            raise KnowledgeError(f"{CLASSES_TABLE}: unknown class {name}")
        if isinstance(spec, list):
            members = {str(d).lower() for d in spec}
        elif isinstance(spec, dict):
            members = {str(d).lower() for d in spec.get("drugs", [])}
            for inc in spec.get("include", []):
                members |= resolve(str(inc), (*trail, name))
        else:
            raise KnowledgeError(f"{CLASSES_TABLE}: class {name} must be a list or a mapping")
        out[name] = frozenset(members)
        return out[name]

    for key in raw:
        resolve(key, ())
    return out


@lru_cache(maxsize=1)
def safety_knowledge() -> SafetyKnowledge:
    """Load and cross-check the safety tables (unknown classes or groups are refused)."""
    try:
        rules = RulesTable.model_validate(load_table(RULES_TABLE))
    except ValueError as exc:
        raise KnowledgeError(f"{RULES_TABLE}: {exc}") from exc
    raw_classes = load_table(CLASSES_TABLE)
    classes = _expand(dict(raw_classes.get("classes", {})))
    groups = {k: frozenset(str(m).lower() for m in v) for k, v in raw_classes.get("medication_groups", {}).items()}
    max_doses: dict[str, list[MaxDose]] = {}
    for item in load_table(MAX_DOSE_TABLE).get("max_doses", []):
        dose = MaxDose.model_validate(item)
        max_doses.setdefault(dose.drug.lower(), []).append(dose)
    for rule in rules.rules:
        for cls in rule.classes:
            if cls not in classes:
                raise KnowledgeError(f"{RULES_TABLE}: rule {rule.id} names unknown class {cls}")
        for trig in rule.triggers:
            for grp in trig.medication_groups:
                if grp not in groups:
                    raise KnowledgeError(f"{RULES_TABLE}: rule {rule.id} names unknown medication group {grp}")
    return SafetyKnowledge(rules=rules, classes=classes, medication_groups=groups, max_doses=max_doses)
