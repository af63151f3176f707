"""Domain types shared by every layer: the case, the findings, and the ConsultReport contract.

All models are frozen: a specialist returns a new value instead of mutating another's output,
which keeps the one-writer-per-key rule of the graph state honest.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Final = "1"
LIMITED_EVIDENCE_TEXT = "limited evidence, multidisciplinary consultation recommended"

Language = Literal["en", "de"]
Site = Literal[
    "lung",
    "breast",
    "colorectal",
    "liver",
    "esophagus",
    "stomach",
    "pancreas",
    "prostate",
    "kidney",
    "thyroid",
    "unknown_primary",
    "other",
]
ReportStatus = Literal["final", "needs_review", "locked", "rejected"]
SchemeKind = Literal["evidence_priority", "lowest_risk", "innovative"]
SCHEME_KINDS: tuple[SchemeKind, ...] = ("evidence_priority", "lowest_risk", "innovative")


class Frozen(BaseModel):
    """Base for immutable domain values."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- input


class StructuredData(BaseModel):
    """Structured fields a caller may send with the text; they win over the text."""

    model_config = ConfigDict(frozen=True, extra="allow")

    age: int | None = Field(default=None, ge=0, le=130, description="Age in years.")
    sex: Literal["male", "female", "other"] | None = Field(default=None, description="Sex.")
    ecog: int | None = Field(default=None, ge=0, le=5, description="ECOG performance status.")
    labs: dict[str, float] = Field(
        default_factory=dict, description="Named lab values, e.g. creatinine_clearance_ml_min."
    )
    medications: list[str] = Field(default_factory=list, description="Current medications.")

    @model_validator(mode="after")
    def _extras_fit_64_bits(self) -> StructuredData:
        """Extra fields travel with the case through storage and checkpoints, which hold 64-bit integers."""
        stack: list[object] = list((self.model_extra or {}).values())
        while stack:
            value = stack.pop()
            if isinstance(value, bool):
                continue
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError("structured: an integer outside the 64-bit range")
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
        return self


class CaseInput(BaseModel):
    """One case as submitted (CONTRACT.md 'Case input')."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str | None = Field(default=None, description="The caller's reference; never echoed into the report.")
    text: str = Field(description="Free-text notes, English or German.")
    lang: Literal["auto", "en", "de"] = Field(default="auto", description="Language of the text or auto.")
    structured: StructuredData = Field(default_factory=StructuredData, description="Structured data.")


# --------------------------------------------------------------------------- findings
#
# Controlled vocabularies shared by the extractor (writer) and the stager, coder, planner and
# safety reviewer (readers). A term outside these lists is a bug in the extractor.

EXTENT_TERMS: frozenset[str] = frozenset(
    {
        # lung
        "main_bronchus",
        "atelectasis",
        "visceral_pleura",
        "parietal_pleura",
        "chest_wall",
        "phrenic_nerve",
        "pericardium",
        "diaphragm",
        "mediastinum",
        "heart",
        "great_vessels",
        "trachea",
        "recurrent_laryngeal_nerve",
        "vertebral_body",
        "carina",
        "esophagus_wall",
        "separate_nodule_same_lobe",
        "separate_nodule_other_ipsilateral_lobe",
        "separate_nodule_contralateral_lobe",
        "superior_sulcus",
        # breast
        "skin_ulceration",
        "skin_nodules",
        "skin_edema",
        "chest_wall_breast",
        "inflammatory",
        # hollow organs
        "lamina_propria",
        "muscularis_mucosae",
        "submucosa",
        "muscularis_propria",
        "subserosa",
        "adventitia",
        "serosa",
        "visceral_peritoneum",
        "adjacent_structures",
        "adjacent_organs",
        "pleura_pericardium_azygos",
        "aorta_vertebra_airway",
        # liver
        "vascular_invasion",
        "microvascular_invasion",
        "portal_vein",
        "hepatic_vein",
        "gallbladder_invasion",
        # pancreas
        "celiac_axis",
        "superior_mesenteric_artery",
        "common_hepatic_artery",
        # prostate
        "extraprostatic_extension",
        "seminal_vesicle",
        "bladder_neck",
        "rectum_invasion",
        "pelvic_wall",
        "nonpalpable",
        "half_lobe_or_less",
        "more_than_half_lobe",
        "both_lobes",
        "organ_confined",
        # kidney
        "perinephric_fat",
        "renal_sinus_fat",
        "pelvicalyceal_system",
        "renal_vein",
        "vena_cava",
        "vena_cava_below_diaphragm",
        "vena_cava_above_diaphragm",
        "gerota_fascia",
        "ipsilateral_adrenal",
        # thyroid
        "extrathyroidal_extension",
        "minimal_extrathyroidal_extension",
        "gross_extrathyroidal_extension",
        "strap_muscles",
        "subcutaneous_tissue",
        "larynx",
        "prevertebral_fascia",
        "carotid_or_mediastinal_vessels",
    }
)
METASTASIS_SITES: frozenset[str] = frozenset(
    {
        "lung",
        "contralateral_lung",
        "liver",
        "bone",
        "brain",
        "adrenal",
        "pleura",
        "pleural_effusion",
        "pericardial_effusion",
        "peritoneum",
        "distant_lymph_nodes",
        "skin",
        "ovary",
        "kidney",
        "mediastinum",
        "spleen",
        "bladder",
        "other",
    }
)
LAB_KEYS: frozenset[str] = frozenset(
    {
        "creatinine_clearance_ml_min",
        "creatinine_mg_dl",
        "egfr_ml_min",
        "lvef_percent",
        "bilirubin_mg_dl",
        "albumin_g_dl",
        "inr",
        "child_pugh_score",
        "psa_ng_ml",
        "afp_ng_ml",
        "ca19_9_u_ml",
        "cea_ng_ml",
        "neutrophils_per_nl",
        "platelets_per_nl",
        "hemoglobin_g_dl",
        "qtc_ms",
    }
)
CONDITION_TERMS: frozenset[str] = frozenset(
    {
        "child_pugh_a",
        "child_pugh_b",
        "child_pugh_c",
        "cirrhosis",
        "varices",
        "ascites",
        "encephalopathy",
        "pregnancy",
        "breastfeeding",
        "long_qt_syndrome",
        "organ_transplant",
        "immunosuppression",
        "autoimmune_disease",
        "active_autoimmune_disease",
        "interstitial_lung_disease",
        "recent_major_surgery",
        "recent_bleeding",
        "gi_perforation",
        "hearing_loss",
        "peripheral_neuropathy",
        "heart_failure",
        "coronary_artery_disease",
        "hypertension",
        "diabetes",
        "chronic_kidney_disease",
        "dpyd_deficiency",
        "hiv",
        "hepatitis_b",
        "hepatitis_c",
        "copd",
        "stroke",
        "thrombosis",
        "resected",
        "post_neoadjuvant",
        "metastatic",
        "recurrent",
    }
)


class Span(Frozen):
    """Character span into the (de-identified) case text that supports a finding."""

    start: int
    end: int
    text: str


class Entity(Frozen):
    """A recognised mention."""

    text: str
    label: str
    start: int
    end: int
    code: str | None = None


class Biomarker(Frozen):
    """A biomarker result as reported."""

    name: str
    result: str
    status: Literal["positive", "negative", "unknown"]


class NodeFinding(Frozen):
    """Regional lymph node findings."""

    positive: int | None = None
    examined: int | None = None
    stations: tuple[str, ...] = ()
    contralateral: bool = False
    supraclavicular: bool = False
    fixed_or_matted: bool = False
    negated: bool = False


class TumorFinding(Frozen):
    """What the text says about one tumour."""

    site: Site
    primary: bool = True
    subsite: str | None = None
    laterality: Literal["right", "left", "bilateral"] | None = None
    histology: str | None = None
    icdo3_morphology: str | None = None
    size_cm: float | None = None
    extent: tuple[str, ...] = ()
    nodes: NodeFinding = NodeFinding()
    metastases: tuple[str, ...] = ()
    metastases_negated: bool = False
    stated_tnm: str | None = None
    grade: str | None = None
    count: int | None = None
    lesion_sizes_cm: tuple[float, ...] = ()
    evidence: tuple[Span, ...] = ()


class Findings(Frozen):
    """Everything the extractor found in the case."""

    oncology: bool
    tumors: tuple[TumorFinding, ...] = ()
    biomarkers: tuple[Biomarker, ...] = ()
    entities: tuple[Entity, ...] = ()
    age: int | None = None
    sex: str | None = None
    ecog: int | None = None
    labs: dict[str, float] = Field(default_factory=dict)
    conditions: tuple[str, ...] = ()
    medications: tuple[str, ...] = ()
    pregnant: bool = False
    setting_hint: str | None = None
    fields_from_llm: tuple[str, ...] = ()


# --------------------------------------------------------------------------- report parts


class TNM(Frozen):
    """TNM categories (without prefix) and the stage group with one rationale line per decision."""

    prefix: Literal["c", "p", "yp"] | None = None
    t: str | None = None
    n: str | None = None
    m: str | None = None
    stage_group: str | None = None
    system: str = "AJCC 8th"
    rationale: list[str] = Field(default_factory=list)


class Tumor(Frozen):
    """One tumour in the report."""

    primary: bool = True
    site: Site
    subsite: str | None = None
    laterality: Literal["right", "left", "bilateral"] | None = None
    histology: str | None = None
    icdo3_morphology: str | None = None
    tnm: TNM = TNM()
    other_staging: dict[str, str] = Field(default_factory=dict)


class ICD10Code(Frozen):
    """A coded diagnosis with the rule that produced it."""

    code: str
    system: Literal["ICD-10-WHO-2019", "ICD-10-CM"] = "ICD-10-WHO-2019"
    description: str
    role: Literal["primary", "secondary", "additional"]
    rule: str


class EvidenceHit(Frozen):
    """A retrieved literature or guideline card."""

    id: str
    title: str
    year: int | None = None
    level: str | None = None
    score: float
    explanation: dict[str, float] = Field(default_factory=dict)


class KGLink(Frozen):
    """A mention linked to a knowledge-graph node."""

    mention: str
    node: str
    code: str | None = None
    method: str = "exact"


class KGConflict(Frozen):
    """Something in the case or plan that the graph does not support."""

    kind: str
    subject: str
    detail: str
    path: list[str] = Field(default_factory=list)


class KGResult(Frozen):
    """Output of the knowledge-graph verifier."""

    linked: list[KGLink] = Field(default_factory=list)
    conflicts: list[KGConflict] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list)


class Compliance(Frozen):
    """Guideline compliance of the evidence_priority scheme (the case's score)."""

    score: int
    level: Literal["fully_compliant", "partially_compliant", "non_compliant"]
    threshold: int = 80
    passed: bool
    iterations: int = 1
    findings: list[str] = Field(default_factory=list)
    scheme_scores: dict[str, int] = Field(default_factory=dict)


class SafetyFinding(Frozen):
    """One safety concern; `critical` ones stop the report."""

    severity: Literal["info", "warning", "critical"]
    drug: str | None = None
    reason: str
    basis: str
    rule_id: str | None = None


class Safety(Frozen):
    """The safety reviewer's verdict."""

    status: Literal["ok", "warning", "emergency_stop"]
    findings: list[SafetyFinding] = Field(default_factory=list)


class Treatment(Frozen):
    """One component of a scheme."""

    name: str
    drugs: list[str] = Field(default_factory=list)
    dose: str | None = None
    schedule: str | None = None


class SchemeBases(Frozen):
    """Interpretability marks: what a scheme rests on."""

    patient_data: list[str] = Field(default_factory=list)
    literature: list[str] = Field(default_factory=list)
    model_reasoning: str | None = None


class Scheme(Frozen):
    """A treatment scheme."""

    kind: SchemeKind
    title: str
    treatments: list[Treatment] = Field(default_factory=list)
    rationale: str
    bases: SchemeBases = SchemeBases()
    limited_evidence: bool = False
    guideline_ref: str | None = None


class Provenance(Frozen):
    """Which backend produced which report fields."""

    llm: str = "none"
    fields_from_llm: list[str] = Field(default_factory=list)


Role = Literal["resident", "attending", "chief"]


class Approval(Frozen):
    """A chief physician's decision on a locked report."""

    decision: Literal["approved", "rejected"]
    by: str
    role: Role = Field(description="Role of the person deciding; only a chief may release a lock.")
    reason: str | None = None
    at: str


class ConsultReport(BaseModel):
    """The report of one consultation (CONTRACT.md, schema_version 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal["1"] = SCHEMA_VERSION
    case_id: str
    status: ReportStatus
    error: str | None = None
    language: Language = "en"
    oncology: bool = False
    tumors: list[Tumor] = Field(default_factory=list)
    icd10: list[ICD10Code] = Field(default_factory=list)
    biomarkers: list[Biomarker] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    evidence: list[EvidenceHit] = Field(default_factory=list)
    kg: KGResult = KGResult()
    compliance: Compliance | None = None
    safety: Safety = Safety(status="ok")
    schemes: list[Scheme] = Field(default_factory=list)
    limited_evidence: bool = False
    provenance: Provenance = Provenance()
    trace_id: str | None = None
    review_reasons: list[str] = Field(default_factory=list)
    approval: Approval | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        return self.model_dump(mode="json")


def rejected_report(case_id: str, error: str, language: Language = "en") -> ConsultReport:
    """A report for input that could not be consulted at all."""
    return ConsultReport(case_id=case_id, status="rejected", error=error, language=language)
