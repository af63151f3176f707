"""TNM stager: AJCC 8th categories and stage groups for every tumour, with rationale and conflicts."""

from __future__ import annotations

from langgraph.runtime import Runtime

from agents.base import ConsultContext, call_tool
from graphs.state import ConsultState, Staging
from oncoboard.domain import Tumor
from tools.tnm import stage_tumor


def tnm_stager(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
    """Stage each tumour the extractor found; a stated category contradicted by the text is a conflict."""
    findings = state["findings"]
    tumors: list[Tumor] = []
    conflicts: list[str] = []
    for finding in findings.tumors:
        result = call_tool(runtime, "stage_tumor", stage_tumor, tumor=finding, findings=findings)
        tumors.append(
            Tumor(
                primary=finding.primary,
                site=finding.site,
                subsite=finding.subsite,
                laterality=finding.laterality,
                histology=finding.histology,
                icdo3_morphology=finding.icdo3_morphology,
                tnm=result.tnm,
                other_staging=dict(result.other_staging),
            )
        )
        conflicts.extend(result.conflicts)
    # The contract promises tumors[0] is the primary tumour when there is one.
    tumors.sort(key=lambda t: not t.primary)
    return {"staging": Staging(tumors=tuple(tumors), conflicts=tuple(conflicts))}
