"""Typed view of the guideline tables in ``knowledge/guidelines/``.

Each site file holds recommendations keyed by the situation they apply to (stage group, BCLC stage,
risk group, biomarkers, setting, fitness) with the regimen, dose ranges, evidence level and the
trial or guideline behind it. ``common.yaml`` holds what the sites share: biomarker features,
setting synonyms, the evidence-level order, scoring margins and the fallback schemes.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oncoboard.knowledge import KnowledgeError, knowledge_path, load_table

logger = logging.getLogger(__name__)

GUIDELINE_DIR = "guidelines"
COMMON_TABLE = f"{GUIDELINE_DIR}/common.yaml"
DoseUnit = Literal["mg", "mg/m2", "mg/kg", "AUC", "Gy", "GBq"]
RecommendationKind = Literal["standard", "lower_toxicity", "innovative"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DoseSpec(_Model):
    """Accepted dose of one drug in a regimen: a single value, discrete values or a range."""

    drug: str = Field(description="Drug this dose belongs to (lower case).")
    unit: DoseUnit = Field(description="Unit of the dose.")
    value: float | None = Field(default=None, description="The labelled dose.")
    values: list[float] = Field(default_factory=list, description="Further accepted discrete doses.")
    min: float | None = Field(default=None, description="Lower end of an accepted range.")
    max: float | None = Field(default=None, description="Upper end of an accepted range.")
    note: str | None = Field(default=None, description="Qualifier printed after the dose (loading, bolus ...).")
    alternative: bool = Field(default=False, description="Accepted alternative dosing, not printed in a scheme.")

    @model_validator(mode="after")
    def _has_amount(self) -> DoseSpec:
        if self.value is None and (self.min is None or self.max is None):
            raise ValueError(f"dose of {self.drug}: give 'value' or both 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"dose of {self.drug}: min above max")
        return self

    def ranges(self) -> list[tuple[float, float]]:
        """Every accepted (low, high) interval of this dose."""
        out: list[tuple[float, float]] = []
        if self.min is not None and self.max is not None:
            out.append((self.min, self.max))
        if self.value is not None:
            out.append((self.value, self.value))
        out.extend((v, v) for v in self.values)
        return out

    def display(self) -> str:
        """The dose as printed in a scheme (``80 mg``, ``1000-1250 mg/m2``, ``AUC 5``)."""
        amount = _num(self.value) if self.value is not None else f"{_num(self.min or 0)}-{_num(self.max or 0)}"
        text = f"AUC {amount}" if self.unit == "AUC" else f"{amount} {self.unit}"
        return f"{text} {self.note}" if self.note else text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class TreatmentSpec(_Model):
    """One component of a recommended regimen (a drug combination, a procedure, radiotherapy)."""

    name: str
    drugs: list[str] = Field(default_factory=list)
    doses: list[DoseSpec] = Field(default_factory=list)
    schedule: str | None = None

    def component_key(self) -> frozenset[str]:
        """What identifies this component when comparing plans: its drugs, else its name."""
        if self.drugs:
            return frozenset(d.lower() for d in self.drugs)
        return frozenset({self.name.lower()})

    def dose_text(self) -> str | None:
        """The dose string of the component, drug names first when it combines several drugs."""
        shown = [d for d in self.doses if not d.alternative]
        if not shown:
            return None
        if len(self.drugs) <= 1:
            return ", then ".join(d.display() for d in shown)
        return " + ".join(f"{d.drug} {d.display()}" for d in shown)


class LabRequirement(_Model):
    """An organ-function requirement of a regimen (unknown values do not exclude unless ``required``)."""

    lab: str
    min: float | None = None
    max: float | None = None
    label: str | None = None
    required: bool = Field(
        default=False, description="The value must be known: the requirement describes the patient, not a limit."
    )


class Conditions(_Model):
    """When a recommendation (or a not-recommended rule) applies; ``None`` means no constraint."""

    settings: list[str] | None = None
    stage_groups: list[str] | None = None
    bclc: list[str] | None = None
    risk_groups: list[str] | None = None
    t_any: list[str] | None = None
    n_any: list[str] | None = None
    histology_any: list[str] | None = None
    histology_none: list[str] | None = None
    subsite: Literal["colon", "rectum"] | None = None
    sidedness: Literal["left", "right"] | None = None
    biomarkers_all: list[str] = Field(default_factory=list)
    biomarkers_any: list[str] = Field(default_factory=list)
    biomarkers_none: list[str] = Field(default_factory=list)
    numeric: dict[str, dict[str, float]] = Field(default_factory=dict)
    residual_disease: bool | None = None
    resectability: Literal["resectable", "unresectable"] | None = None
    microvascular_invasion: bool | None = Field(
        default=None,
        description=(
            "True: cite microvascular invasion as a basis when present; patients without it are not excluded."
        ),
    )
    age_min: int | None = None
    age_max: int | None = None
    ecog_max: int | None = None
    ecog_min: int | None = None
    child_pugh: list[str] | None = None
    labs: list[LabRequirement] = Field(default_factory=list)
    conditions_none: list[str] = Field(default_factory=list)


class Recommendation(_Model):
    """One guideline recommendation."""

    id: str
    title: str
    summary: str
    conditions: Conditions
    treatments: list[TreatmentSpec]
    evidence_level: str
    kinds: list[RecommendationKind]
    sources: list[str]
    evidence_keys: list[str] = Field(default_factory=list)
    toxicity: int = Field(ge=0, le=5, description="0 none (surveillance) to 5 intensive multimodal therapy.")

    def drugs(self) -> set[str]:
        """Every drug of the regimen."""
        return {d.lower() for t in self.treatments for d in t.drugs}

    def components(self) -> set[frozenset[str]]:
        """Component keys of the regimen (see ``TreatmentSpec.component_key``)."""
        return {t.component_key() for t in self.treatments}

    def dose_specs(self, drug: str) -> list[DoseSpec]:
        """Every dose entry for one drug across the regimen."""
        return [d for t in self.treatments for d in t.doses if d.drug.lower() == drug.lower()]


class NotRecommended(_Model):
    """Drugs that point the wrong way in a situation (a biomarker or setting rules them out)."""

    id: str
    drugs: list[str]
    when: Conditions
    reason: str


class SiteGuideline(_Model):
    """The recommendations for one cancer site."""

    site: str
    source: str
    edition: str
    recommendations: list[Recommendation]
    not_recommended: list[NotRecommended] = Field(default_factory=list)
    histology_none: list[str] = Field(default_factory=list, description="Histologies the table does not cover.")
    staging_required: bool = Field(
        default=True,
        description="Whether a stage (or BCLC stage, risk group) is needed; false where the site has no TNM stage.",
    )
    description: str | None = None
    risk_groups: list[dict[str, Any]] = Field(default_factory=list)


class BiomarkerFeature(_Model):
    """How a reported biomarker result maps to a feature the recommendations test."""

    key: str
    label: str
    names: list[str] = Field(default_factory=list)
    status: Literal["positive", "negative"] | None = None
    result_any: list[str] = Field(default_factory=list)
    result_none: list[str] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list)
    derived_all: list[str] = Field(default_factory=list)


class NumericBiomarker(_Model):
    """A biomarker with a numeric score (PD-L1 TPS/CPS)."""

    key: str
    label: str
    names: list[str]
    result_has: list[str] = Field(default_factory=list)
    result_lacks: list[str] = Field(default_factory=list)


class FallbackScheme(_Model):
    """Text of a scheme used when the tables do not cover the case."""

    title: str
    treatment: str


class ScoringTable(_Model):
    """Scores of the guideline checker."""

    full: int
    accepted_alternative: int
    incomplete_regimen: int
    missing_dose: int
    unit_mismatch: int
    non_compliant: int
    dose_margins: list[dict[str, float]]
    level_bands: dict[str, list[int]]


class CommonTable(_Model):
    """Shared vocabulary of the guideline tables."""

    source: str
    edition: str
    evidence_levels: list[str]
    settings: dict[str, list[str]]
    stage_iv_is_metastatic: list[str]
    biomarker_features: list[BiomarkerFeature]
    numeric_biomarkers: list[NumericBiomarker]
    gleason_to_grade_group: dict[str, int]
    gleason_sum_to_grade_group: dict[str, int]
    sidedness: dict[str, list[str]]
    rectum_terms: list[str]
    microvascular_terms: list[str]
    resectability_terms: dict[str, list[str]]
    scoring: ScoringTable
    fallback: dict[str, FallbackScheme]
    innovative_trial: FallbackScheme
    no_alternative_text: str
    description: str | None = None
    drug_requirements: dict[str, list[LabRequirement]] = Field(
        default_factory=dict, description="Organ-function requirements a regimen inherits from each of its drugs."
    )

    def conditions_for(self, rec: Recommendation) -> Conditions:
        """The recommendation's conditions plus the organ-function requirements of its drugs."""
        inherited = [req for drug in sorted(rec.drugs()) for req in self.drug_requirements.get(drug, [])]
        if not inherited:
            return rec.conditions
        return rec.conditions.model_copy(update={"labs": [*rec.conditions.labs, *inherited]})

    def level_rank(self, level: str) -> int:
        """Position of an evidence level (lower is stronger); unknown levels rank last."""
        try:
            return self.evidence_levels.index(level)
        except ValueError:
            return len(self.evidence_levels)


def _validate(relative: str, model: type[_Model]) -> Any:
    data = load_table(relative)
    try:
        return model.model_validate(data)
    except ValueError as exc:
        raise KnowledgeError(f"{relative}: {exc}") from exc


@lru_cache(maxsize=1)
def common_table() -> CommonTable:
    """The shared guideline vocabulary (``knowledge/guidelines/common.yaml``)."""
    return _validate(COMMON_TABLE, CommonTable)  # type: ignore[no-any-return]


def site_table_names() -> list[str]:
    """Relative names of every site table (``guidelines/<site>.yaml`` except ``common.yaml``)."""
    folder = knowledge_path(GUIDELINE_DIR)
    return sorted(f"{GUIDELINE_DIR}/{p.name}" for p in folder.glob("*.yaml") if p.name != "common.yaml")


@lru_cache(maxsize=1)
def site_guidelines() -> dict[str, SiteGuideline]:
    """Every site table, keyed by site; refuses duplicate recommendation ids."""
    out: dict[str, SiteGuideline] = {}
    seen: set[str] = set()
    for name in site_table_names():
        table: SiteGuideline = _validate(name, SiteGuideline)
        for rec in table.recommendations:
            if rec.id in seen:
                raise KnowledgeError(f"{name}: duplicate recommendation id {rec.id}")
            seen.add(rec.id)
            for treatment in rec.treatments:
                for dose in treatment.doses:
                    if dose.drug.lower() not in {d.lower() for d in treatment.drugs}:
                        raise KnowledgeError(f"{name}: {rec.id}: dose for {dose.drug} not in the drug list")
        out[table.site] = table
    logger.debug("loaded %d guideline site tables", len(out))
    return out


def site_guideline(site: str) -> SiteGuideline | None:
    """The table for one site, or ``None`` when the knowledge does not cover it."""
    return site_guidelines().get(site)
