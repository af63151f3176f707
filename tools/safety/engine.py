"""Safety reviewer: contraindications, warnings, interactions and dose limits of the drafted schemes.

Each rule of ``knowledge/safety/rules.yaml`` names drugs or classes and the patient findings
that trigger it; a critical finding stops the report (emergency stop) until a chief decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal

from oncoboard.domain import Findings, Safety, SafetyFinding, Scheme, Tumor
from tools.guidelines.doses import parse_dose_text
from tools.guidelines.profile import normalise_name
from tools.safety.qualifiers import resolved_conditions
from tools.safety.rules import SafetyKnowledge, SafetyRule, Trigger, safety_knowledge

logger = logging.getLogger(__name__)

_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def _fmt(value: float) -> str:
    return f"{value:g}"


def _trigger_basis(
    trigger: Trigger, findings: Findings, know: SafetyKnowledge, resolved: Mapping[str, str] | None = None
) -> str | None:
    """The patient data that satisfies ``trigger``, or ``None``; ``resolved`` conditions do not count."""
    if trigger.lab is not None:
        for key in [trigger.lab, *trigger.fallback_labs]:
            value = findings.labs.get(key)
            if value is None:
                continue
            if (trigger.lt is not None and value < trigger.lt) or (trigger.ge is not None and value >= trigger.ge):
                label = know.rules.lab_labels.get(key)
                return f"{label.label} {_fmt(value)} {label.unit}" if label else f"{key} {_fmt(value)}"
            return None
        return None
    if trigger.pregnancy:
        return "pregnancy" if findings.pregnant or "pregnancy" in findings.conditions else None
    if trigger.conditions:
        hits = [c for c in trigger.conditions if c in findings.conditions and c not in (resolved or {})]
        return ", ".join(c.replace("_", " ") for c in hits) if hits else None
    if trigger.biomarker:
        wanted = {normalise_name(n) for n in trigger.biomarker}
        for marker in findings.biomarkers:
            if normalise_name(marker.name) not in wanted:
                continue
            if trigger.status is not None and marker.status != trigger.status:
                continue
            if trigger.result_any and not any(r.lower() in marker.result.lower() for r in trigger.result_any):
                continue
            return f"{marker.name} {marker.result}".strip()
        return None
    if trigger.medication_groups:
        members: set[str] = set()
        for grp in trigger.medication_groups:
            members |= know.medication_groups[grp]
        for med in findings.medications:
            low = med.lower()
            if any(m == low or low.startswith(m + " ") or m in low.split() for m in members):
                return f"{med} (current medication)"
        return None
    if trigger.ecog_min is not None:
        if findings.ecog is not None and findings.ecog >= trigger.ecog_min:
            return f"ECOG {findings.ecog}"
        return None
    return None


def _rule_basis(
    rule: SafetyRule, findings: Findings, know: SafetyKnowledge, resolved: Mapping[str, str] | None = None
) -> str | None:
    for trigger in rule.triggers:
        basis = _trigger_basis(trigger, findings, know, resolved)
        if basis is not None:
            return basis
    return None


def _set_aside_findings(
    rule: SafetyRule, drugs: list[str], findings: Findings, know: SafetyKnowledge, resolved: Mapping[str, str]
) -> list[SafetyFinding]:
    """Info findings for a rule that only a condition stated as treated kept from firing."""
    if not resolved or _rule_basis(rule, findings, know) is None:
        return []
    conditions = [c for t in rule.triggers for c in t.conditions if c in resolved]
    evidence = "; ".join(resolved[c] for c in dict.fromkeys(conditions))
    return [
        SafetyFinding(
            severity="info",
            drug=drug,
            reason=f"not applied, the text states the condition as treated ({rule.id}: {rule.reason})",
            basis=evidence,
            rule_id=f"{rule.id}-SET-ASIDE",
        )
        for drug in drugs
    ]


def assess_drugs(
    findings: Findings, drugs: Iterable[str], resolved: Mapping[str, str] | None = None
) -> list[SafetyFinding]:
    """Rule findings for a set of drugs and one patient (dose limits are not part of this).

    ``resolved`` maps conditions the case text states as treated (see
    ``tools.safety.qualifiers.resolved_conditions``) to their evidence: they do not trigger a rule,
    and a rule they alone would have fired is reported as an info finding for the audit.
    """
    know = safety_knowledge()
    wanted = sorted({d.lower() for d in drugs})
    fired: dict[tuple[str, str], tuple[SafetyRule, str]] = {}
    set_aside: list[SafetyFinding] = []
    for rule in know.rules.rules:
        covered = know.rule_drugs(rule)
        hits = [d for d in wanted if d in covered]
        if not hits:
            continue
        basis = _rule_basis(rule, findings, know, resolved)
        if basis is None:
            set_aside += _set_aside_findings(rule, hits, findings, know, resolved or {})
            continue
        for drug in hits:
            key = (rule.group or rule.id, drug)
            held = fired.get(key)
            # tiers of one concern: only the most severe tier that fires is reported
            if held is None or _SEVERITY_RANK[rule.severity] > _SEVERITY_RANK[held[0].severity]:
                fired[key] = (rule, basis)
    return [
        SafetyFinding(severity=rule.severity, drug=drug, reason=rule.reason, basis=basis, rule_id=rule.id)
        for (_, drug), (rule, basis) in sorted(fired.items(), key=lambda kv: (kv[0][1], kv[1][0].id))
    ] + set_aside


def dose_limit_findings(schemes: Iterable[Scheme]) -> list[SafetyFinding]:
    """Critical findings for any scheme dose above the table's highest single dose."""
    know = safety_knowledge()
    out: dict[tuple[str, str], SafetyFinding] = {}
    for scheme in schemes:
        for treatment in scheme.treatments:
            for amount in parse_dose_text(treatment.dose, treatment.drugs):
                if amount.drug is None:
                    continue
                for limit in know.max_doses.get(amount.drug, []):
                    if limit.unit == amount.unit and amount.high > limit.max:
                        key = (amount.drug, amount.display())
                        out.setdefault(
                            key,
                            SafetyFinding(
                                severity="critical",
                                drug=amount.drug,
                                reason=(
                                    f"dose above the highest labelled single dose of {amount.drug} "
                                    f"({_fmt(limit.max)} {limit.unit})"
                                ),
                                basis=f"{scheme.kind} scheme dose {amount.display()}",
                                rule_id=f"SAF-MAXDOSE-{normalise_name(amount.drug).upper()}",
                            ),
                        )
    return list(out.values())


def withheld_findings(
    findings: Findings, tumors: list[Tumor], schemes: list[Scheme], resolved: Mapping[str, str] | None = None
) -> list[SafetyFinding]:
    """Warnings for the drugs of guideline regimens the patient's own condition rules out.

    When the stage and biomarkers call for a regimen (cisplatin chemoradiotherapy, dual HER2
    blockade) that the tables withhold because of organ function, performance status or a
    comorbidity, no scheme carries its drugs and no drug rule can fire on them; the board still
    has to see that the standard was set aside and why. Each such drug that a safety rule
    forbids or restricts for this patient gets a warning (not an emergency stop: the plan avoids
    it) naming the withheld regimen.
    """
    if not findings.oncology or not tumors:
        return []
    # imported here: the guideline package reads the safety engine while ranking options
    from tools.guidelines.matching import rules_for_case

    rules = rules_for_case(findings, tumors)
    proposed = {d.lower() for s in schemes for t in s.treatments for d in t.drugs}
    regimens: dict[str, list[str]] = {}
    for match in rules.withheld:
        for drug in sorted(match.rec.drugs() - proposed):
            regimens.setdefault(drug, []).append(f"'{match.rec.title}' [{match.rec.id}]")
    out: list[SafetyFinding] = []
    for finding in assess_drugs(findings, list(regimens), resolved):
        if finding.severity == "info" or finding.drug is None:
            continue
        withheld = ", ".join(dict.fromkeys(regimens[finding.drug]))
        out.append(
            SafetyFinding(
                severity="warning",
                drug=finding.drug,
                reason=f"guideline option withheld: {withheld}; {finding.reason}",
                basis=finding.basis,
                rule_id=f"{finding.rule_id}-WITHHELD",
            )
        )
    return out


def review_safety(
    findings: Findings, schemes: list[Scheme], tumors: list[Tumor] | None = None, text: str | None = None
) -> Safety:
    """Review every drug of every scheme against the safety rules and the dose limits.

    With ``tumors``, regimens the guideline tables withhold for this patient's condition are
    named too (see ``withheld_findings``). With the de-identified case ``text`` the extractor's
    spans point into, a condition every mention of which is stated as treated (banded varices)
    does not trigger the rules about its untreated state. Status: ``emergency_stop`` with any
    critical finding, ``warning`` with any warning, else ``ok``.
    """
    resolved = resolved_conditions(findings, text)
    drugs = {d.lower() for s in schemes for t in s.treatments for d in t.drugs}
    result = assess_drugs(findings, drugs, resolved) + dose_limit_findings(schemes)
    if tumors:
        result += withheld_findings(findings, tumors, schemes, resolved)
    severities = {f.severity for f in result}
    status: Literal["ok", "warning", "emergency_stop"] = (
        "emergency_stop" if "critical" in severities else "warning" if "warning" in severities else "ok"
    )
    if result:
        logger.info("safety review: %s (%d findings)", status, len(result))
    return Safety(status=status, findings=result)


def critical_drugs(safety: Safety) -> set[str]:
    """Drugs named by critical findings: what the planner must replace on its next round."""
    return {f.drug for f in safety.findings if f.severity == "critical" and f.drug}
