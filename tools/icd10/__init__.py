"""WHO ICD-10 (2019) coding of oncology findings, with ICD-10-CM renderings.

Public API: :func:`code_case`, :func:`describe`, :func:`is_valid_who`, :func:`is_valid_cm`,
:func:`cm_code_for`. The mappings live in ``knowledge/icd10/``.
"""

from tools.icd10.cm import cm_code_for
from tools.icd10.coder import code_case, code_case_who, describe, primary_code
from tools.icd10.tables import is_valid_cm, is_valid_who, validate_all

__all__ = [
    "cm_code_for",
    "code_case",
    "code_case_who",
    "describe",
    "is_valid_cm",
    "is_valid_who",
    "primary_code",
    "validate_all",
]
