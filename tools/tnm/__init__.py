"""AJCC 8th TNM staging: parse stated TNM, derive categories from findings, stage groups, BCLC."""

from tools.tnm.bclc import BclcResult, bclc_stage, child_pugh_class
from tools.tnm.engine import StageGroupResult, StagingResult, stage_group, stage_tumor
from tools.tnm.parse import ParsedTNM, parse_tnm, strip_prefix

__all__ = [
    "BclcResult",
    "ParsedTNM",
    "StageGroupResult",
    "StagingResult",
    "bclc_stage",
    "child_pugh_class",
    "parse_tnm",
    "stage_group",
    "stage_tumor",
    "strip_prefix",
]
