"""Deterministic WHO ICD-10 (2019) coding of extracted findings with the multi-site rules.

The order of decisions follows the WHO rules for neoplasms: a morphology-defined category
(liver cell carcinoma, melanoma, lymphoma ...) wins over the organ's subdivision; otherwise the
most specific subdivision the findings name is coded, and one tumour spanning contiguous parts
is an overlapping lesion (.8). Several independent primaries are each coded and flagged with
C97; an unknown primary is C80.0. Spread is coded as secondary sites (C77 nodes by region,
C78-C79 organs). Every code carries a one-line rule.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from oncoboard.domain import METASTASIS_SITES, Findings, ICD10Code, TumorFinding
from tools.icd10.cm import CM_SYSTEM, cm_rendering, describe_cm
from tools.icd10.tables import (
    HistologyRule,
    SiteTable,
    first_prefix,
    histology_tables,
    is_valid_who,
    rule_codes,
    sites_tables,
    spread_tables,
    who_codes,
)
from tools.icd10.terms import expand_coordination, normalize
from tools.tnm.parse import parse_tnm

logger = logging.getLogger(__name__)

WHO_SYSTEM: Final = "ICD-10-WHO-2019"
Role = Literal["primary", "secondary", "additional"]
_CLOCK = re.compile(r"(?<![0-9])(1[0-2]|[1-9])(?:\s+([0-5][0-9]))?\s*(?:o\s*clock|uhr|h)(?![a-z])")
# Stated Tis means an in-situ primary; ypTis (residual in situ after neoadjuvant therapy) does
# not change the diagnosis that was treated, hence no letter may precede the c/p prefix.
_TIS = re.compile(r"(?<![A-Za-z])[cp]?T\s?is(?![a-z])")


def describe(code: str, system: str = WHO_SYSTEM) -> str:
    """The official title of ``code`` in the WHO 2019 (default) or the ICD-10-CM code set."""
    if system == WHO_SYSTEM:
        if not is_valid_who(code):
            raise ValueError(f"not a WHO ICD-10 2019 code: {code!r}")
        return str(who_codes().get_description(code))
    if system == CM_SYSTEM:
        return describe_cm(code)
    raise ValueError(f"unknown code system {system!r}")


@dataclass(frozen=True)
class Coded:
    """A WHO code chosen for one finding, before it becomes an :class:`ICD10Code`."""

    code: str
    role: Role
    rule: str
    laterality: str | None = None


# --------------------------------------------------------------------------- primary site


def _histology_rule_applies(rule: HistologyRule, tumor: TumorFinding, subsite_found: bool) -> bool:
    if rule.sites and tumor.site not in rule.sites:
        return False
    if rule.only_without_subsite and subsite_found:
        return False
    histology_hit = rule.histology is not None and rule.histology.matches(tumor.histology)
    morphology_hit = bool(tumor.icdo3_morphology) and any(
        (tumor.icdo3_morphology or "").startswith(m) for m in rule.morphology
    )
    if not (histology_hit or morphology_hit):
        return False
    if rule.not_histology is not None and rule.not_histology.matches(tumor.histology):
        return False
    if rule.subsite is not None and not rule.subsite.matches(tumor.subsite):
        return False
    return not (rule.not_subsite is not None and rule.not_subsite.matches(tumor.subsite))


def _clock_code(table: SiteTable, tumor: TumorFinding, text: str) -> tuple[str, str] | None:
    """Breast quadrant from clock positions; needs the side, since the dial mirrors between breasts."""
    if table.clock is None or not text:
        return None
    hours = [int(m.group(1)) for m in _CLOCK.finditer(text)]
    if not hours:
        return None
    if tumor.laterality not in ("right", "left"):
        logger.debug("clock position without laterality: quadrant left open")
        return None
    where = ", ".join(f"{h} o'clock" for h in hours)
    if any(h in table.clock.boundary_hours for h in hours) and table.overlap:
        return (
            table.overlap,
            f"{where} lies on a quadrant border of the {tumor.laterality} breast -> overlapping lesion",
        )
    codes = {table.clock.by_side[tumor.laterality][h] for h in hours}
    if len(codes) == 1:
        code = codes.pop()
        return code, f"{where} in the {tumor.laterality} breast -> {describe(code).split(': ')[-1].lower()}"
    if table.overlap:
        return (
            table.overlap,
            f"{where} span several quadrants of the {tumor.laterality} breast -> overlapping lesion",
        )
    return None


def _subsite_code(table: SiteTable, tumor: TumorFinding) -> tuple[str, str] | None:
    """The code of the subdivision(s) the subsite text names, with the reason; None if none named."""
    text = expand_coordination(normalize(tumor.subsite or ""), sites_tables().coordination_heads)
    hits = table.matcher.find(text) if text else []
    strong = [table.subsites[int(h.key)] for h in hits if not table.subsites[int(h.key)].weak]
    chosen = strong or [table.subsites[int(h.key)] for h in hits]
    if not chosen:
        return _clock_code(table, tumor, text)
    # Parallel schemes (oesophagus by region and by thirds) describe the same tube twice: keep the
    # scheme listed first in the table among those named.
    order = {s.scheme: i for i, s in reversed(list(enumerate(table.subsites)))}
    scheme = min({s.scheme for s in chosen}, key=lambda name: order[name])
    codes = sorted({s.code for s in chosen if s.scheme == scheme})
    named = ", ".join(sorted({h.term for h in hits}))
    if len(codes) == 1:
        return codes[0], f"subsite '{tumor.subsite}' ({named}) -> {describe(codes[0]).split(': ')[-1]}"
    parts = " + ".join(codes)
    for rule in table.overlap_rules:
        if rule.if_any & set(codes):
            return rule.code, f"one tumour over {parts}: {rule.why}"
    if table.overlap:
        return table.overlap, f"one tumour spanning contiguous subsites {parts} -> overlapping lesion"
    return table.default, f"several subsites named ({parts}) and no overlap code for {table.site}"


def _other_site_code(tumor: TumorFinding) -> tuple[str, str] | None:
    organs = sites_tables().other_organs
    for label, text in (("subsite", tumor.subsite), ("histology", tumor.histology)):
        if not text:
            continue
        hits = organs.find(normalize(text))
        if hits:
            # Longer terms already consumed their shorter parts; the organ named first is the
            # one the phrase is about ("seminoma with retroperitoneal nodes").
            best = hits[0]
            return best.key, f"{label} names '{best.term}' -> {describe(best.key)}"
    return None


def _in_situ(tumor: TumorFinding) -> bool:
    tables = histology_tables().in_situ
    if tumor.icdo3_morphology and tumor.icdo3_morphology.strip().endswith(tables.behaviour_suffix):
        return True
    if tables.terms.matches(tumor.histology):
        return True
    return bool(tumor.stated_tnm and _TIS.search(tumor.stated_tnm))


def _in_situ_code(tumor: TumorFinding, invasive: str) -> tuple[str, str]:
    tables = histology_tables().in_situ
    for code, sites, terms in tables.by_histology:
        if (not sites or tumor.site in sites) and terms.matches(tumor.histology):
            return code, f"in situ lesion ({tumor.histology}) -> {describe(code)}"
    mapped = first_prefix(invasive, tables.by_code_prefix)
    if mapped:
        return mapped, f"behaviour in situ: the site's invasive code {invasive} becomes {mapped}"
    return tables.default, f"behaviour in situ at a site without its own in-situ code ({invasive})"


def primary_code(tumor: TumorFinding) -> tuple[str, str] | None:
    """WHO code and rule for one tumour taken as a primary; None when nothing supports a site."""
    table = sites_tables().sites.get(tumor.site)
    if table is None:
        raise ValueError(f"site {tumor.site!r} has no row in the ICD-10 site table")
    sub = _subsite_code(table, tumor) if table.subsites or table.clock else None
    result: tuple[str, str] | None = None
    # Morphology-defined categories (melanoma, lymphoma, ...) hold even when the primary is
    # unknown: a melanoma of unknown primary is coded as melanoma of skin, not C80.
    for rule in histology_tables().overrides:
        if _histology_rule_applies(rule, tumor, sub is not None):
            result = rule.code, f"histology '{tumor.histology or tumor.icdo3_morphology}': {rule.why}"
            break
    if result is None and tumor.site == "unknown_primary":
        code = rule_codes().unknown_primary
        result = code, f"primary site stated as unknown (cancer of unknown primary) -> {code}"
    if result is None and sub is not None:
        result = sub
    if result is None and tumor.site == "other":
        result = _other_site_code(tumor)
    if result is None and tumor.site != "other":
        result = table.default, f"{tumor.site} without a named subsite -> {describe(table.default)}"
    if result is None:
        return None
    if _in_situ(tumor):
        return _in_situ_code(tumor, result[0])
    return result


# --------------------------------------------------------------------------- spread


def _nodes_involved(tumor: TumorFinding) -> str | None:
    """Why the regional nodes count as involved, or None."""
    nodes = tumor.nodes
    if nodes.negated:
        return None
    if nodes.positive is not None:
        return f"{nodes.positive} positive lymph node(s)" if nodes.positive > 0 else None
    if nodes.stations or nodes.supraclavicular or nodes.contralateral or nodes.fixed_or_matted:
        return "lymph nodes reported involved"
    stated = parse_tnm(tumor.stated_tnm).n if tumor.stated_tnm else None
    if stated is not None and stated[1:2] in ("1", "2", "3"):
        # a stated N1-N3 is the report's own statement that regional nodes are involved
        return f"stated {stated}"
    return None


def _node_code(tumor: TumorFinding, primary: str | None) -> Coded | None:
    spread = spread_tables()
    reason = _nodes_involved(tumor)
    distant = "distant_lymph_nodes" in tumor.metastases
    if reason is None and not distant:
        return None
    regions: dict[str, str] = {}
    if reason is not None:
        default = spread.regional_region(primary)
        numeric: dict[str, str] = {}
        for prefix, names in spread.numeric_stations.items():
            if primary and primary.startswith(prefix):
                numeric.update(names)
        unplaced: list[str] = []
        for station in tumor.nodes.stations:
            mapped = numeric.get(normalize(station).replace(" ", ""))
            named = [mapped] if mapped else spread.stations.keys_in(station)
            if not named:
                unplaced.append(station)
            for region in named:
                regions.setdefault(region, station)
        # A station that names no region ("level II", "station 7") lies in the region named beside
        # it ("cervical node, level II"); only alone does it fall back to the primary's region.
        if unplaced and not regions:
            regions.setdefault(default, unplaced[0])
        if not tumor.nodes.stations:
            regions.setdefault(default, "regional nodes of the primary")
        if tumor.nodes.supraclavicular:
            regions.setdefault(spread.stations.keys_in("supraclavicular")[0], "supraclavicular")
    if distant:
        if regions:
            regions.setdefault("distant", "distant lymph nodes")
        else:
            code = spread.distant_nodes_alone
            return Coded(code, "secondary", "distant lymph node metastases, region not named -> " + code)
    real = [r for r in regions if r != "distant"]
    if len(regions) > 1:
        listed = "; ".join(f"{r} ({why})" for r, why in regions.items())
        return Coded(spread.multiple_regions, "secondary", f"{reason or 'nodes'} in several regions: {listed}")
    code = real[0]
    origin = regions[code]
    suffix = f"via {primary}" if origin == "regional nodes of the primary" and primary else f"'{origin}'"
    return Coded(code, "secondary", f"{reason}; region {suffix} -> {describe(code).split(': ')[-1]}")


def _metastasis_codes(tumor: TumorFinding, primary: str | None) -> list[Coded]:
    spread = spread_tables()
    # Described metastases are coded even beside a blanket "no distant metastases": the sites are
    # affirmed findings, and the contradiction is the stager's to report.
    out: list[Coded] = []
    skip: frozenset[str] = frozenset()
    if primary:
        for prefix, sites in spread.same_organ:
            if primary.startswith(prefix):
                skip = skip | sites
    for site in tumor.metastases:
        if site == "distant_lymph_nodes":
            continue
        if site not in METASTASIS_SITES:
            logger.warning("metastasis site %r is outside the METASTASIS_SITES vocabulary; not coded", site)
            continue
        if site in skip:
            logger.debug("%s spread in the organ of origin of %s is part of the primary", site, primary)
            continue
        code = spread.metastasis_codes[site]
        laterality = None
        if site == "contralateral_lung" and tumor.laterality in ("right", "left"):
            laterality = "left" if tumor.laterality == "right" else "right"
        out.append(Coded(code, "secondary", f"metastasis: {site.replace('_', ' ')} -> {describe(code)}", laterality))
    return out


def _deposit_code(tumor: TumorFinding) -> Coded:
    """A tumour finding that is not a primary: a deposit coded as the secondary of its organ."""
    spread = spread_tables()
    if tumor.site == "other" and tumor.subsite:
        keys = spread.metastasis_terms.keys_in(tumor.subsite)
        if keys:
            code = spread.metastasis_codes[keys[0]]
            return Coded(code, "secondary", f"non-primary tumour in '{tumor.subsite}' -> {describe(code)}")
    code = spread.secondary_by_site.get(tumor.site, spread.metastasis_codes["other"])
    return Coded(code, "secondary", f"non-primary tumour of the {tumor.site} -> {describe(code)}")


# --------------------------------------------------------------------------- the case


def _primaries(tumors: Sequence[TumorFinding]) -> tuple[list[tuple[TumorFinding, Coded]], bool]:
    """Coded independent primaries (distinct tumours) and whether an unknown primary was stated."""
    coded: list[tuple[TumorFinding, Coded]] = []
    seen: set[tuple[str, str | None]] = set()
    unknown_stated = False
    for tumor in tumors:
        if not tumor.primary:
            continue
        found = primary_code(tumor)
        if tumor.site == "unknown_primary" and found is not None and found[0] == rule_codes().unknown_primary:
            unknown_stated = True
            continue
        if found is None:
            logger.info("primary tumour with site %r and no codable detail", tumor.site)
            continue
        code, rule = found
        # The same code on the same side is the same tumour named twice, not a second primary.
        key = (code, tumor.laterality)
        if key in seen:
            continue
        seen.add(key)
        coded.append((tumor, Coded(code, "additional", rule, tumor.laterality)))
    return coded, unknown_stated


def code_case_who(findings: Findings) -> list[Coded]:
    """The WHO codes of a case (no CM renderings), in report order."""
    if not findings.oncology:
        return []
    rules = rule_codes()
    tumors = list(findings.tumors)
    primaries, unknown_stated = _primaries(tumors)
    out: list[Coded] = []
    if primaries:
        first_tumor, first = primaries[0]
        out.append(Coded(first.code, "primary", first.rule, first.laterality))
        out.extend(c for _, c in primaries[1:])
        if len(primaries) > 1:
            codes = ", ".join(c.code for _, c in primaries)
            out.append(
                Coded(
                    rules.multiple_primaries,
                    "additional",
                    f"{len(primaries)} independent primaries ({codes}) -> {rules.multiple_primaries}",
                )
            )
        spread_sources: list[tuple[TumorFinding, str | None]] = [(t, c.code) for t, c in primaries]
    else:
        # No codable primary: C80.0 when the primary is stated unknown, else C80.9.
        others = [t for t in tumors if t.primary and t.site == "other"]
        if unknown_stated:
            out.append(
                Coded(
                    rules.unknown_primary,
                    "primary",
                    f"primary site stated as unknown (cancer of unknown primary) -> {rules.unknown_primary}",
                )
            )
        else:
            why = (
                "site 'other' without a codable organ or histology"
                if others
                else "oncology case without a primary tumour finding"
            )
            out.append(
                Coded(
                    rules.unspecified_primary,
                    "primary",
                    f"{why} -> primary site unspecified ({rules.unspecified_primary})",
                )
            )
        spread_sources = [(t, None) for t in tumors if t.primary]
    for tumor, primary in spread_sources:
        node = _node_code(tumor, primary)
        if node:
            out.append(node)
        out.extend(_metastasis_codes(tumor, primary))
    out.extend(_deposit_code(t) for t in tumors if not t.primary)
    if not any(c.role == "secondary" for c in out) and "metastatic" in findings.conditions:
        code = rules.metastatic_unspecified
        out.append(Coded(code, "secondary", f"metastatic disease stated without a site -> {code}"))
    unique: list[Coded] = []
    seen: set[str] = set()
    for c in out:
        if c.code in seen:
            continue
        if not is_valid_who(c.code):
            raise ValueError(f"coder produced {c.code!r}, which is not in WHO ICD-10 2019")
        seen.add(c.code)
        unique.append(c)
    return unique


def code_case(findings: Findings, *, with_cm: bool = True) -> list[ICD10Code]:
    """ICD-10 codes of a case: WHO 2019 codes (exactly one ``primary`` for an oncology case, the
    spread as ``secondary``, further primaries and C97 as ``additional``), then, with ``with_cm``,
    the ICD-10-CM rendering of each as ``additional`` entries. A non-oncology case gets none."""
    coded = code_case_who(findings)
    result = [
        ICD10Code(code=c.code, system=WHO_SYSTEM, description=describe(c.code), role=c.role, rule=c.rule) for c in coded
    ]
    if with_cm:
        seen: set[str] = set()
        for c in coded:
            rendered = cm_rendering(c.code, laterality=c.laterality, sex=findings.sex)
            if rendered is None or rendered.code in seen:
                continue
            seen.add(rendered.code)
            result.append(rendered)
    return result
