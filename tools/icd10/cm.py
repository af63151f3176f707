"""ICD-10-CM renderings of WHO ICD-10 codes.

CM splits several WHO codes by laterality (lung, adrenal, ovary, kidney) or by sex and side
(breast), and gives some concepts another code (the unknown primary is C80.1 in CM, while CM
C80.0 means disseminated disease). Only codes that exist as billable leaves of the
``simple_icd_10_cm`` code set are rendered.
"""

from __future__ import annotations

import logging
from typing import Final

from oncoboard.domain import ICD10Code
from tools.icd10.tables import cm_codes, cm_tables, is_valid_cm

logger = logging.getLogger(__name__)

CM_SYSTEM: Final = "ICD-10-CM"


def describe_cm(code: str) -> str:
    """The ICD-10-CM title of ``code``."""
    cm = cm_codes()
    if not cm.is_valid_item(code):
        raise ValueError(f"not an ICD-10-CM code: {code!r}")
    return str(cm.get_description(code))


def _sex_key(sex: str | None) -> str | None:
    """Findings carry sex as free text (English or German); reduce it to female / male."""
    if not sex:
        return None
    s = sex.strip().lower()
    if s in {"f", "female", "woman", "w", "weiblich", "frau"}:
        return "female"
    if s in {"m", "male", "man", "maennlich", "männlich", "mann"}:
        return "male"
    return None


def cm_code_for(who_code: str, *, laterality: str | None = None, sex: str | None = None) -> str | None:
    """The CM code for a WHO code, or None when CM has no counterpart or the data cannot decide it."""
    tables = cm_tables()
    if who_code in tables.direct:
        return tables.direct[who_code]
    for rule in tables.lateral:
        if who_code not in rule.prefixes:
            continue
        side = laterality if laterality in ("right", "left") else "unspecified"
        sex_digit = ""
        if rule.sex_digit is not None:
            key = _sex_key(sex)
            if key is None or key not in rule.sex_digit:
                logger.debug("no CM rendering of %s: sex not stated", who_code)
                return None
            sex_digit = rule.sex_digit[key]
        candidate = rule.templates[side].format(code=who_code, sex=sex_digit)
        return candidate if is_valid_cm(candidate) else None
    if is_valid_cm(who_code):
        return who_code
    logger.debug("no CM leaf for WHO %s", who_code)
    return None


def cm_rendering(who_code: str, *, laterality: str | None = None, sex: str | None = None) -> ICD10Code | None:
    """The CM rendering of ``who_code`` as an ``additional`` entry, or None."""
    code = cm_code_for(who_code, laterality=laterality, sex=sex)
    if code is None:
        return None
    if not is_valid_cm(code):
        raise ValueError(f"CM rendering {code!r} of {who_code} is not an ICD-10-CM leaf code")
    detail = f", {laterality}" if laterality in ("right", "left") else ""
    return ICD10Code(
        code=code,
        system=CM_SYSTEM,
        description=describe_cm(code),
        role="additional",
        rule=f"ICD-10-CM rendering of WHO {who_code}{detail}",
    )
