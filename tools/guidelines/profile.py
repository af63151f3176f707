"""The patient as the guideline tables see it: site, stage, biomarkers, setting and fitness.

Built once from the extractor's findings and the stager's tumours, then matched against the
conditions of each recommendation. Every matched condition yields a readable line for the
scheme's ``patient_data`` basis.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from oncoboard.domain import Biomarker, Findings, Tumor, TumorFinding
from tools.guidelines.table import BiomarkerFeature, CommonTable, Conditions, SiteGuideline, common_table

_ROMAN = re.compile(r"^(IV|III|II|I|0)")
_NUMBER = re.compile(r"(\d+(?:[.,]\d+)?)")
_GLEASON_PATTERN = re.compile(r"(\d)\s*\+\s*(\d)")
_GRADE_GROUP = re.compile(r"(?:grade\s*group|isup|gg|gradgruppe)\s*(?:grade\s*)?([1-5])", re.IGNORECASE)
_GLEASON_SUM = re.compile(r"gleason\D{0,12}(\d{1,2})", re.IGNORECASE)


def normalise_name(text: str) -> str:
    """Lower case, accents stripped, only letters and digits (``PD-L1`` -> ``pdl1``)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def _name_matches(name: str, aliases: list[str]) -> bool:
    norm = normalise_name(name)
    for alias in aliases:
        a = normalise_name(alias)
        # short aliases (ER, PR, HR, MSI) must match exactly or ERBB2 would count as ER
        if norm == a or (len(a) >= 4 and norm.startswith(a)):
            return True
    return False


def _contains_any(text: str, needles: list[str]) -> bool:
    low = text.lower()
    return any(n.lower() in low for n in needles)


@dataclass(frozen=True)
class PatientProfile:
    """Normalised patient facts the recommendation conditions are tested against."""

    site: str | None
    histology: str | None
    subsite: str | None
    stage_group: str | None
    prefix: str | None
    t: str | None
    n: str | None
    m: str | None
    bclc: str | None
    risk_group: str | None
    psa: float | None
    grade_group: int | None
    setting: str
    metastatic: bool
    features: dict[str, str] = field(default_factory=dict)
    numeric: dict[str, float] = field(default_factory=dict)
    numeric_labels: dict[str, str] = field(default_factory=dict)
    ecog: int | None = None
    age: int | None = None
    child_pugh: str | None = None
    labs: dict[str, float] = field(default_factory=dict)
    conditions: frozenset[str] = frozenset()
    rectal: bool = False
    sidedness: str | None = None
    residual_disease: bool | None = None
    resectability: str | None = None
    microvascular_invasion: bool = False
    contradictions: tuple[str, ...] = ()
    stage_candidates: tuple[str, ...] = ()

    @property
    def stage_text(self) -> str | None:
        """The stage group, or the groups the unknown N category leaves open."""
        if self.stage_group:
            return self.stage_group
        if self.stage_candidates:
            return " or ".join(self.stage_candidates) + " (N not known)"
        return None

    @property
    def staged(self) -> bool:
        """Whether the profile carries enough staging to pick a recommendation."""
        if self.site == "liver":
            return self.bclc is not None or self.setting == "adjuvant"
        if self.site == "prostate":
            return self.metastatic or self.risk_group is not None or self.setting == "adjuvant"
        if self.setting == "post_neoadjuvant" and self.residual_disease is not None:
            # ypT0 ypN0 has no AJCC stage group, yet the response itself decides what follows
            return True
        return self.stage_group is not None or self.metastatic or bool(self.stage_candidates)


def _primary_tumor(tumors: list[Tumor]) -> Tumor | None:
    for tumor in tumors:
        if tumor.primary:
            return tumor
    return tumors[0] if tumors else None


def _tumor_finding(findings: Findings, site: str | None) -> TumorFinding | None:
    for tf in findings.tumors:
        if tf.primary and (site is None or tf.site == site):
            return tf
    for tf in findings.tumors:
        if site is None or tf.site == site:
            return tf
    return None


def _marker_has(marker: Biomarker, feature: BiomarkerFeature) -> bool:
    if not _name_matches(marker.name, feature.names):
        return False
    if feature.status is not None and marker.status != feature.status:
        return False
    if feature.result_any and not _contains_any(marker.result, feature.result_any):
        return False
    return not (feature.result_none and _contains_any(marker.result, feature.result_none))


def biomarker_features(biomarkers: tuple[Biomarker, ...], common: CommonTable) -> dict[str, str]:
    """Feature keys present in the reported biomarkers, each with the readable result behind it.

    Plain features are read first; features defined by the absence of another (RAS wild type
    needs no RAS mutation) or by a combination (triple negative) are resolved afterwards.
    """
    found: dict[str, str] = {}
    plain = [f for f in common.biomarker_features if not (f.derived_all or f.absent)]
    later = [f for f in common.biomarker_features if f.derived_all or f.absent]
    for feature in plain + later:
        if feature.derived_all:
            if all(k in found for k in feature.derived_all):
                found[feature.key] = feature.label
            continue
        if any(k in found for k in feature.absent):
            continue
        for marker in biomarkers:
            if _marker_has(marker, feature):
                found[feature.key] = f"{marker.name} {marker.result}".strip()
                break
    return found


def numeric_biomarkers(
    biomarkers: tuple[Biomarker, ...], common: CommonTable
) -> tuple[dict[str, float], dict[str, str]]:
    """Numeric scores (PD-L1 TPS/CPS) read from the biomarker results."""
    values: dict[str, float] = {}
    labels: dict[str, str] = {}
    for spec in common.numeric_biomarkers:
        for marker in biomarkers:
            if not _name_matches(marker.name, spec.names):
                continue
            text = f"{marker.name} {marker.result}".lower()
            if spec.result_has and not _contains_any(text, spec.result_has):
                continue
            if spec.result_lacks and _contains_any(text, spec.result_lacks):
                continue
            number = _NUMBER.search(marker.result.replace("<", " ").replace(">", " "))
            if number is None:
                if marker.status == "negative":
                    values[spec.key], labels[spec.key] = 0.0, f"{marker.name} {marker.result}"
                continue
            amount = float(number.group(1).replace(",", "."))
            if "<" in marker.result and amount > 0:
                amount -= 0.5  # "<1%" lies below its threshold
            values[spec.key], labels[spec.key] = amount, f"{marker.name} {marker.result}".strip()
            break
    return values, labels


def grade_group(grade: str | None, common: CommonTable) -> int | None:
    """ISUP grade group from a grade text (``Grade Group 2``, ``Gleason 3+4=7``, ``Gleason 8``)."""
    if not grade:
        return None
    hit = _GRADE_GROUP.search(grade)
    if hit:
        return int(hit.group(1))
    pattern = _GLEASON_PATTERN.search(grade)
    if pattern:
        return common.gleason_to_grade_group.get(f"{pattern.group(1)}+{pattern.group(2)}")
    total = _GLEASON_SUM.search(grade)
    if total:
        return common.gleason_sum_to_grade_group.get(total.group(1))
    return None


def _risk_group(
    table: SiteGuideline | None, t: str | None, n: str | None, psa: float | None, gg: int | None
) -> str | None:
    """First risk group whose criteria hold (tables list them from highest to lowest)."""
    if table is None:
        return None
    for group in table.risk_groups:
        checks: list[bool | None] = []
        crit = group.get("criteria", {})
        if "t_any" in crit:
            checks.append(None if t is None else any(t.startswith(x) for x in crit["t_any"]))
        if "n_any" in crit:
            checks.append(None if n is None else any(n.startswith(x) for x in crit["n_any"]))
        for key, op in (("psa_gt", float.__gt__), ("psa_ge", float.__ge__), ("psa_lt", float.__lt__)):
            if key in crit:
                checks.append(None if psa is None else op(float(psa), float(crit[key])))
        for key, op_i in (("grade_group_min", int.__ge__), ("grade_group_max", int.__le__)):
            if key in crit:
                checks.append(None if gg is None else op_i(gg, int(crit[key])))
        if group.get("match", "any") == "any":
            if any(c is True for c in checks):
                return str(group["group"])
        elif checks and all(c is True for c in checks):
            return str(group["group"])
    return None


def _child_pugh(findings: Findings) -> str | None:
    for cls in ("c", "b", "a"):
        if f"child_pugh_{cls}" in findings.conditions:
            return cls.upper()
    score = findings.labs.get("child_pugh_score")
    if score is None:
        return None
    return "A" if score <= 6 else "B" if score <= 9 else "C"


def _normalise_setting(hint: str | None, common: CommonTable) -> str | None:
    if not hint:
        return None
    norm = normalise_name(hint)
    for setting, synonyms in common.settings.items():
        if norm == normalise_name(setting) or any(norm == normalise_name(s) for s in synonyms):
            return setting
    return None


# Nodal categories tried when N is unknown; a category a site's table lacks resolves to no group.
_N_CATEGORIES = ("N0", "N1", "N1a", "N1b", "N1c", "N2", "N2a", "N2b", "N2c", "N3", "N3a", "N3b", "N3c")


def stage_candidates(
    site: str | None, t: str | None, n: str | None, m: str | None, prefix: str | None
) -> tuple[str, ...]:
    """Stage groups an unknown N category leaves open for a known T and M0 (empty otherwise).

    A treatment decision that is the same for every group N could give (locally advanced rectal
    cancer is cT3 whatever the nodes) need not wait for N; the candidates let a recommendation
    apply when it covers all of them.
    """
    if site is None or t is None or n is not None or m is None or not m.upper().startswith("M0"):
        return ()
    from tools.tnm import stage_group

    groups: set[str] = set()
    node_positive = False
    for category in _N_CATEGORIES:
        result = stage_group(site, t, category, m, prefix=prefix)
        if result.group is None:
            continue
        groups.add(result.group)
        node_positive = node_positive or category != "N0"
    if not node_positive or not any(g for g in groups):
        return ()
    return tuple(sorted(groups))


def build_profile(findings: Findings, tumors: list[Tumor], common: CommonTable | None = None) -> PatientProfile:
    """The guideline view of one patient, from the extractor's findings and the staged tumours."""
    from tools.guidelines.table import site_guideline

    common = common or common_table()
    tumor = _primary_tumor(tumors)
    site = tumor.site if tumor else (findings.tumors[0].site if findings.tumors else None)
    tf = _tumor_finding(findings, site)
    tnm = tumor.tnm if tumor else None
    histology = (tumor.histology if tumor else None) or (tf.histology if tf else None)
    subsite = (tumor.subsite if tumor else None) or (tf.subsite if tf else None)
    stage = tnm.stage_group if tnm else None
    t, n, m = (tnm.t, tnm.n, tnm.m) if tnm else (None, None, None)
    prefix = tnm.prefix if tnm else None
    contradictions: list[str] = []

    metastatic_by_m = m is not None and m.upper().startswith("M1")
    metastatic_by_stage = stage is not None and stage.upper().startswith("IV") and site in common.stage_iv_is_metastatic
    metastatic_by_findings = bool(tf and tf.metastases and not tf.metastases_negated)
    if m is not None and m.upper().startswith("M0") and metastatic_by_stage:
        contradictions.append(f"stage {stage} contradicts {m}")
    if metastatic_by_m and stage is not None and not stage.upper().startswith("IV"):
        contradictions.append(f"stage {stage} contradicts {m}")
    metastatic = (
        metastatic_by_m
        or metastatic_by_stage
        or metastatic_by_findings
        or "metastatic" in findings.conditions
        or "recurrent" in findings.conditions
    )

    setting = _normalise_setting(findings.setting_hint, common)
    if setting is None:
        if prefix == "yp" or "post_neoadjuvant" in findings.conditions:
            setting = "post_neoadjuvant"
        elif metastatic:
            setting = "first_line"
        elif prefix == "p" or "resected" in findings.conditions:
            setting = "adjuvant"
        else:
            setting = "primary"

    features = biomarker_features(findings.biomarkers, common)
    numeric, numeric_labels = numeric_biomarkers(findings.biomarkers, common)
    by_name: dict[str, set[str]] = {}
    for marker in findings.biomarkers:
        if marker.status != "unknown":
            by_name.setdefault(normalise_name(marker.name), set()).add(marker.status)
    for name, statuses in by_name.items():
        if len(statuses) > 1 and not name.startswith("pdl1"):
            contradictions.append(f"biomarker {name} reported both positive and negative")

    psa = findings.labs.get("psa_ng_ml")
    gg = grade_group(tf.grade if tf else None, common)
    risk = _risk_group(site_guideline(site) if site else None, t, n, psa, gg) if site == "prostate" else None

    rectal = bool(subsite and _contains_any(subsite, common.rectum_terms))
    sidedness = None
    if subsite:
        for side, terms in common.sidedness.items():
            if _contains_any(subsite, terms):
                sidedness = side
                break
    if rectal:
        sidedness = "left"

    residual: bool | None = None
    if prefix == "yp" and t is not None and n is not None:
        residual = not (t.upper() in {"T0", "TIS"} and n.upper().startswith("N0"))

    resectability = None
    hint = (findings.setting_hint or "").lower()
    # the table lists "unresectable" before "resectable", which it contains
    for key, terms in common.resectability_terms.items():
        if _contains_any(hint, terms):
            resectability = key
            break
    extent = set(tf.extent) if tf else set()
    mvi = bool(extent & set(common.microvascular_terms))

    return PatientProfile(
        site=site,
        histology=histology,
        subsite=subsite,
        stage_group=stage,
        prefix=prefix,
        t=t,
        n=n,
        m=m,
        bclc=(tumor.other_staging.get("bclc") if tumor else None),
        risk_group=risk,
        psa=psa,
        grade_group=gg,
        setting=setting,
        metastatic=metastatic,
        features=features,
        numeric=numeric,
        numeric_labels=numeric_labels,
        ecog=findings.ecog,
        age=findings.age,
        child_pugh=_child_pugh(findings),
        labs=dict(findings.labs),
        conditions=frozenset(findings.conditions),
        rectal=rectal,
        sidedness=sidedness,
        residual_disease=residual,
        resectability=resectability,
        microvascular_invasion=mvi,
        contradictions=tuple(contradictions),
        stage_candidates=() if stage else stage_candidates(site, t, n, m, prefix),
    )


def stage_matches(stage: str, wanted: str) -> bool:
    """``wanted`` covers ``stage`` when it is the same group or a parent (``III`` covers ``IIIA``)."""
    s, w = stage.upper(), wanted.upper()
    if not s.startswith(w):
        return False
    rest = s[len(w) :]
    # "I" must not cover "II", "III" or "IV"
    return not rest or rest[0] not in "IV"


def match_conditions(cond: Conditions, p: PatientProfile) -> list[str] | None:
    """Readable patient facts that satisfy ``cond``, or ``None`` when a condition fails."""
    why: list[str] = []
    if cond.settings is not None:
        if p.setting not in cond.settings:
            return None
        why.append(f"setting: {p.setting.replace('_', ' ')}")
    if cond.stage_groups is not None:
        staged = p.stage_group is not None and any(stage_matches(p.stage_group, w) for w in cond.stage_groups)
        # N unknown: the recommendation holds when it holds for every group N could give
        open_n = (
            p.stage_group is None
            and bool(p.stage_candidates)
            and all(any(stage_matches(c, w) for w in cond.stage_groups) for c in p.stage_candidates)
        )
        # an unstaged metastatic patient still meets a stage IV condition
        if not (staged or open_n) and not (p.metastatic and any(w.upper().startswith("IV") for w in cond.stage_groups)):
            return None
        if p.stage_group:
            why.append(f"stage {p.stage_group}")
        elif open_n:
            why.append(f"stage {p.stage_text}")
        else:
            why.append("metastatic disease")
    if cond.bclc is not None:
        if p.bclc is None or p.bclc.upper() not in {b.upper() for b in cond.bclc}:
            return None
        why.append(f"BCLC {p.bclc}")
    if cond.risk_groups is not None:
        if p.risk_group is None or p.risk_group not in cond.risk_groups:
            return None
        parts = [
            f"c{p.t}" if p.t else None,
            f"PSA {p.psa:g} ng/ml" if p.psa is not None else None,
            f"ISUP grade group {p.grade_group}" if p.grade_group is not None else None,
        ]
        detail = ", ".join(x for x in parts if x)
        why.append(f"{p.risk_group.replace('_', ' ')} risk" + (f" ({detail})" if detail else ""))
    for attr, wanted in (("t", cond.t_any), ("n", cond.n_any)):
        value = getattr(p, attr)
        if wanted is not None:
            if value is None or not any(value.upper().startswith(w.upper()) for w in wanted):
                return None
            why.append(f"{p.prefix or ''}{value}")
    if cond.histology_any is not None:
        if p.histology is None or not _contains_any(p.histology, cond.histology_any):
            return None
        why.append(p.histology)
    if cond.histology_none and p.histology and _contains_any(p.histology, cond.histology_none):
        return None
    if cond.subsite is not None:
        if (cond.subsite == "rectum") != p.rectal:
            return None
        why.append(p.subsite or cond.subsite)
    if cond.sidedness is not None:
        if p.sidedness != cond.sidedness:
            return None
        why.append(f"{p.sidedness}-sided primary")
    for key in cond.biomarkers_all:
        if key not in p.features:
            return None
        why.append(p.features[key])
    if cond.biomarkers_any:
        hits = [k for k in cond.biomarkers_any if k in p.features]
        if not hits:
            return None
        why.append(p.features[hits[0]])
    if any(k in p.features for k in cond.biomarkers_none):
        return None
    for key, bounds in cond.numeric.items():
        value = p.numeric.get(key)
        if value is None:
            return None
        if "min" in bounds and value < bounds["min"]:
            return None
        if "max" in bounds and value > bounds["max"]:
            return None
        why.append(p.numeric_labels.get(key, f"{key} {value:g}"))
    if cond.residual_disease is not None:
        if p.residual_disease is None or p.residual_disease != cond.residual_disease:
            return None
        why.append(f"yp{p.t} yp{p.n}: {'residual disease' if p.residual_disease else 'complete response'}")
    if cond.resectability is not None and p.resectability not in (None, cond.resectability):
        return None
    if cond.microvascular_invasion and p.microvascular_invasion:
        why.append("microvascular invasion")
    if cond.age_min is not None and p.age is not None and p.age < cond.age_min:
        return None
    if cond.age_max is not None and p.age is not None and p.age > cond.age_max:
        return None
    if cond.ecog_max is not None and p.ecog is not None:
        if p.ecog > cond.ecog_max:
            return None
        why.append(f"ECOG {p.ecog}")
    if cond.ecog_min is not None:
        if p.ecog is None or p.ecog < cond.ecog_min:
            return None
        why.append(f"ECOG {p.ecog}")
    if cond.child_pugh is not None and p.child_pugh is not None:
        if p.child_pugh not in cond.child_pugh:
            return None
        why.append(f"Child-Pugh {p.child_pugh}")
    for req in cond.labs:
        value = p.labs.get(req.lab)
        if value is None:
            if req.required:
                return None
            continue
        if (req.min is not None and value < req.min) or (req.max is not None and value > req.max):
            return None
        why.append(f"{req.label or req.lab.replace('_', ' ')} {value:g}")
    if any(c in p.conditions for c in cond.conditions_none):
        return None
    return why
