"""AJCC 8th TNM rule engine: categories from findings, stage groups from tables, one rationale line each.

Every threshold, extent mapping and stage-group table comes from ``knowledge/tnm/<site>.yaml``;
this module only knows how to apply them. Stated categories win over derived ones, but they are
checked against the measurements and a contradiction is reported as a conflict.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from oncoboard.domain import TNM, Findings, TumorFinding
from oncoboard.knowledge import load_table
from tools.extraction.lexicon import flat_matcher
from tools.tnm.bclc import bclc_stage
from tools.tnm.parse import ParsedTNM, parse_tnm, strip_prefix
from tools.tnm.tables import AXES, SiteSpec, StageTable, Vocabulary, site_spec

logger = logging.getLogger(__name__)

SYSTEM = "AJCC 8th"
GENERIC_TABLE = "tnm/generic.yaml"
Prefix = Literal["c", "p", "yp"]


class StageGroupResult(BaseModel):
    """A stage group (AJCC spelling, e.g. ``IA3``) or None with the reason it cannot be given."""

    model_config = ConfigDict(frozen=True)

    site: str = Field(description="Site the table belongs to.")
    group: str | None = Field(default=None, description="Stage group, or None when it cannot be decided.")
    table: str | None = Field(default=None, description="Name of the stage table that was used.")
    rationale: list[str] = Field(default_factory=list, description="One line per decision.")
    reason: str | None = Field(default=None, description="Why the group is None.")


class StagingResult(BaseModel):
    """Staging of one tumour: the TNM block of the report plus other systems and conflicts."""

    model_config = ConfigDict(frozen=True)

    tnm: TNM = Field(description="Categories without prefix, stage group and rationale.")
    other_staging: dict[str, str] = Field(default_factory=dict, description="E.g. {'bclc': 'A'} for liver.")
    conflicts: list[str] = Field(
        default_factory=list, description="Stated categories contradicted by the findings (needs review)."
    )
    notes: list[str] = Field(default_factory=list, description="Remarks that do not block the report.")


@dataclass(frozen=True)
class Derived:
    """A category derived from findings, with its rationale lines."""

    category: str | None
    lines: tuple[str, ...]
    definitive: bool = False
    """True when the findings alone decide the category (size-only T, a node count, negated M)."""


# --------------------------------------------------------------------------- stage groups


def _normalise(axis: str, value: str | None) -> tuple[str | None, str | None]:
    """Strip a written prefix and check the axis letter; returns (prefix, category)."""
    prefix, category = strip_prefix(value)
    if category is not None and not category.upper().startswith(axis.upper()):
        raise ValueError(f"{value!r} is not a {axis.upper()} category")
    return prefix, category


def _histology_key(spec: SiteSpec, histology: str | None) -> str | None:
    terms: Mapping[str, list[str]] = spec.raw.get("histology_terms") or {}
    if not histology:
        return None
    text = histology.lower()
    for key, words in terms.items():
        if any(word in text for word in words):
            return str(key)
    return None


def _term_key(terms: Mapping[str, list[str]], text: str | None, *, last: bool = False) -> str | None:
    """The key whose words occur in the text; with ``last`` the latest key in table order wins."""
    if not text:
        return None
    low = text.lower()
    hits = [
        str(key)
        for key, words in terms.items()
        if any(re.search(rf"(?<![a-z]){re.escape(word)}", low) for word in words)
    ]
    if not hits:
        return None
    return hits[-1] if last else hits[0]


def _select_table(spec: SiteSpec, prefix: str, histology: str | None) -> tuple[StageTable | None, str | None]:
    candidates = [t for t in spec.tables if prefix in t.prefixes]
    if not candidates:
        return None, f"{spec.site}: no {prefix}TNM stage-group table in AJCC 8th"
    needs_histology = any("any" not in t.histology for t in candidates)
    if not needs_histology:
        return candidates[0], None
    key = _histology_key(spec, histology)
    for table in candidates:
        if "any" in table.histology or (key is not None and key in table.histology):
            return table, None
    kinds = sorted({h for t in candidates for h in t.histology})
    return None, (
        f"{spec.site} {prefix}TNM stage groups depend on histology ({' vs '.join(kinds)}); "
        f"histology {histology or 'not stated'}"
    )


def _axis_domain(
    axis: str, value: str | None, vocab: Vocabulary, lines: list[str]
) -> tuple[frozenset[str], str | None]:
    """Leaves to try for one axis; an unknown value means every leaf (the group may not depend on it)."""
    if value is None:
        return frozenset(vocab.leaves.get(axis, ())), None
    if not vocab.known(value):
        return frozenset(), f"{value} is not a category of this table"
    if value in vocab.aliases:
        lines.append(f"{value} is read as {vocab.aliases[value]} in this table")
    return vocab.expand(value), None


def _extra_domain(name: str, spec: SiteSpec, extras: Mapping[str, Any], lines: list[str]) -> tuple[str, ...]:
    """Values of a non-TNM factor (PSA bin, Grade Group, grade, location) to try."""
    conf: Mapping[str, Any] = spec.extras.get(name) or {}
    if name == "psa":
        return _binned("PSA", extras.get("psa_ng_ml"), "ng/ml", list(conf.get("bins") or []), lines)
    if name == "age":
        # differentiated thyroid carcinoma is grouped by age at diagnosis
        return _binned("age", extras.get("age"), "years", list(conf.get("bins") or []), lines)
    values = tuple(str(v) for v in conf.get("values") or ())
    given = extras.get(name)
    if name == "grade_group" and given is not None:
        if str(given) not in values:
            raise ValueError(f"grade group {given} is not one of {values}")
        lines.append(f"Grade Group {given}")
        return (str(given),)
    if name in ("grade", "location"):
        terms: Mapping[str, list[str]] = spec.raw.get(f"{name}_terms") or {}
        # A mixed grade ("moderately to poorly differentiated") is staged by its worst component.
        text = str(given) if given is not None else None
        key = given if given in values else _term_key(terms, text, last=name == "grade")
        if key is not None:
            lines.append(f"{name} {given} -> {key}")
            return (str(key),)
        unknown = conf.get("unknown")
        if unknown is not None:
            lines.append(f"{name} not stated -> {unknown} (the table defines this row)")
            return (str(unknown),)
    lines.append(f"{name} not given: every value considered")
    return values


def _binned(label: str, value: Any, unit: str, bins: list[Mapping[str, Any]], lines: list[str]) -> tuple[str, ...]:
    """The bin of a numeric factor (PSA, age), or every bin when the value is not given."""
    names = tuple(str(b["name"]) for b in bins)
    if value is None:
        lines.append(f"{label} not given: every {label} range considered")
        return names
    for b in bins:
        if float(value) >= float(b.get("min", float("-inf"))) and float(value) < float(
            b.get("max_exclusive", float("inf"))
        ):
            lines.append(f"{label} {float(value):g} {unit} -> {label} {b['name']}")
            return (str(b["name"]),)
    raise ValueError(f"{label} {value} outside every range")


def _row_matches(row: Mapping[str, Any], combo: Mapping[str, str], vocab: Vocabulary) -> bool:
    for key, value in combo.items():
        entries = row.get(key, "*")
        if entries == "*":
            continue
        if key in AXES:
            if not any(vocab.matches(value, str(e)) for e in entries):
                return False
        elif value not in [str(e) for e in entries]:
            return False
    return True


def stage_group(
    site: str,
    t: str | None,
    n: str | None,
    m: str | None,
    *,
    prefix: str | None = None,
    **extras: Any,
) -> StageGroupResult:
    """AJCC 8th stage group of a site from T, N and M (categories with or without prefix).

    Extras: ``psa_ng_ml`` and ``grade_group`` (prostate); ``histology``, ``grade`` and
    ``location`` (oesophagus); ``histology`` and ``age`` in years (thyroid). An unknown category
    (None) or factor is tried with every value: the group is returned when it does not depend on
    it (``M1c`` gives IVB whatever T and N), and None with a reason otherwise. Breast groups are the anatomic ones.
    """
    spec = site_spec(site)
    if spec is None:
        return StageGroupResult(site=site, reason=f"no stage-group table for site {site}")
    lines: list[str] = []
    values: dict[str, str | None] = {}
    written: list[str] = []
    for axis, raw in zip(AXES, (t, n, m), strict=True):
        pre, values[axis] = _normalise(axis, raw)
        if pre:
            written.append(pre)
    pfx = prefix or (written[0] if written else None)
    if pfx not in ("c", "p", "yp"):
        lines.append("no prefix given: clinical (c) table used")
        pfx = "c"
    table, why = _select_table(spec, pfx, extras.get("histology"))
    if table is None:
        return StageGroupResult(site=site, rationale=lines, reason=why)
    lines.append(f"{spec.site}: {table.name} table ({spec.edition})")
    if spec.raw.get("stage_note"):
        lines.append(f"{spec.site}: {spec.raw['stage_note']}")
    domains: dict[str, tuple[str, ...]] = {}
    unknown_axes: list[str] = []
    for axis in AXES:
        domain, error = _axis_domain(axis, values[axis], table.vocabulary, lines)
        if error:
            return StageGroupResult(site=site, table=table.name, rationale=lines, reason=error)
        if values[axis] is None:
            unknown_axes.append(axis.upper())
        domains[axis] = tuple(sorted(domain))
    for name in table.uses:
        domains[name] = _extra_domain(name, spec, extras, lines)
    keys = list(domains)
    groups: set[str | None] = set()
    for combo_values in itertools.product(*(domains[k] for k in keys)):
        combo = dict(zip(keys, combo_values, strict=True))
        group = next((str(r["group"]) for r in table.rows if _row_matches(r, combo, table.vocabulary)), None)
        groups.add(group)
    shown = " ".join(v for v in (values["t"], values["n"], values["m"]) if v) or "no categories"
    if len(groups) == 1 and None not in groups:
        group = groups.pop()
        assert group is not None
        if unknown_axes:
            lines.append(f"{'/'.join(unknown_axes)} unknown but the group does not depend on it")
        lines.append(f"{pfx}{shown} -> stage {group}")
        return StageGroupResult(site=site, group=group, table=table.name, rationale=lines)
    possible = ", ".join(sorted(g for g in groups if g is not None))
    assessed_not = [v for v in values.values() if v is not None and v in table.vocabulary.x_categories]
    if groups == {None} and assessed_not:
        reason = f"{', '.join(assessed_not)}: category not assessed, no stage group"
    elif groups == {None}:
        reason = f"{shown}: no {table.name} stage group defined"
    elif unknown_axes:
        reason = f"stage group depends on {'/'.join(unknown_axes)}, which is not known (possible: {possible})"
    else:
        reason = f"{shown}: group depends on a subcategory or factor that is not known (possible: {possible})"
    return StageGroupResult(site=site, table=table.name, rationale=lines, reason=reason)


# --------------------------------------------------------------------------- derivation


def _max_category(vocab: Vocabulary, categories: Iterable[str]) -> str | None:
    """The most advanced category; a parent ranks by its lowest leaf."""
    best: str | None = None
    best_rank = -1
    for cat in categories:
        rank = vocab.rank(cat)
        if rank is not None and rank[0] > best_rank:
            best, best_rank = cat, rank[0]
    return best


def _size_category(spec: SiteSpec, size: float) -> tuple[str, str] | None:
    for rule in spec.t_rules.get("size") or []:
        upper = rule.get("max_cm")
        if upper is None:
            return str(rule["category"]), str(rule.get("label", ""))
        inclusive = bool(rule.get("inclusive", True))
        if size < float(upper) or (inclusive and size == float(upper)):
            return str(rule["category"]), str(rule.get("label", ""))
    return None


def _tumour_size(tumor: TumorFinding) -> float | None:
    if tumor.size_cm is not None:
        return tumor.size_cm
    if tumor.lesion_sizes_cm:
        return max(tumor.lesion_sizes_cm)
    return None


def _liver_t(spec: SiteSpec, tumor: TumorFinding) -> Derived:
    rule: Mapping[str, Any] = spec.t_rules["liver_rule"]
    lines: list[str] = []
    extent_map: Mapping[str, Any] = spec.t_rules.get("extent") or {}
    extent_hits = [t for t in tumor.extent if t in extent_map]
    if extent_hits:
        for term in extent_hits:
            lines.append(f"{term} -> {extent_map[term]['category']} (liver: {extent_map[term]['label']})")
        return Derived(_max_category(spec.vocabulary, [extent_map[t]["category"] for t in extent_hits]), tuple(lines))
    size = _tumour_size(tumor)
    sizes = list(tumor.lesion_sizes_cm) or ([size] if size is not None else [])
    count = tumor.count if tumor.count is not None else (len(tumor.lesion_sizes_cm) or None)
    if count is None and size is not None:
        count = 1
        lines.append("one lesion described: read as solitary")
    if count is None or not sizes:
        return Derived(None, ("T not derived: number and size of the liver tumours not stated",))
    largest = max(sizes)
    vi_terms = set(rule.get("vascular_invasion_terms") or [])
    vascular = bool(vi_terms & set(tumor.extent))
    if count == 1:
        small = rule["solitary_small"]
        if largest <= float(small["max_cm"]):
            chosen = small
        else:
            chosen = rule["solitary_large_vi"] if vascular else rule["solitary_large_no_vi"]
    else:
        multi = rule["multiple_small"]
        chosen = multi if largest <= float(multi["max_cm"]) else rule["multiple_large"]
    detail = f"{count} tumour(s), largest {largest:g} cm, vascular invasion {'yes' if vascular else 'not stated'}"
    lines.append(f"{detail} -> {chosen['category']} (liver: {chosen['label']})")
    return Derived(str(chosen["category"]), tuple(lines))


def derive_t(spec: SiteSpec, tumor: TumorFinding, prefix: str = "c") -> Derived:
    """T from size and extent of invasion; None with a reason line when neither is stated.

    An extent rule limited to some prefixes (prostate T1c/T2a-c rest on the clinical examination,
    pathological T2 on the specimen) applies only under them.
    """
    if "liver_rule" in spec.t_rules:
        return _liver_t(spec, tumor)
    in_situ: Mapping[str, Any] | None = spec.t_rules.get("in_situ")
    if in_situ and tumor.histology and any(term in tumor.histology.lower() for term in in_situ["histology"]):
        # the size of an in-situ carcinoma does not enter T: it is Tis at any extent
        return Derived(
            str(in_situ["category"]),
            (f"{tumor.histology} -> {in_situ['category']} ({spec.site}: {in_situ['label']})",),
            definitive=True,
        )
    lines: list[str] = []
    found: list[str] = []
    size_cat: str | None = None
    size = _tumour_size(tumor)
    if size is not None and size <= 0:
        lines.append(f"size {size:g} cm ignored: not a measurement")
        size = None
    if size is not None and spec.t_rules.get("size"):
        hit = _size_category(spec, size)
        if hit is not None:
            size_cat = hit[0]
            found.append(hit[0])
            lines.append(f"{size:g} cm -> {hit[0]} ({spec.site}: {hit[1]})")
    extent_map: Mapping[str, Any] = spec.t_rules.get("extent") or {}
    extent_cats: list[str] = []
    for term in tumor.extent:
        if term in extent_map and not _applies(extent_map[term], prefix):
            continue
        if term in extent_map:
            cat = str(extent_map[term]["category"])
            extent_cats.append(cat)
            lines.append(f"{term} -> {cat} ({spec.site}: {extent_map[term]['label']})")
        elif term in (spec.t_rules.get("extent_ignored") or []):
            lines.append(f"{term}: does not change T for {spec.site}")
    for combo in spec.t_rules.get("combine") or []:
        if all(c in extent_cats for c in combo["all_of"]):
            extent_cats.append(str(combo["category"]))
            lines.append(f"{' + '.join(combo['all_of'])} -> {combo['category']} ({spec.site}: {combo['label']})")
    found.extend(extent_cats)
    if not found:
        what = "size or extent of invasion" if spec.t_rules.get("size") else "depth or extent of invasion"
        return Derived(None, (f"T not derived: no {what} stated",))
    best = _max_category(spec.vocabulary, found)
    if len(found) > 1:
        lines.append(f"most advanced finding -> {best}")
    return Derived(best, tuple(lines), definitive=bool(size_cat) and best == size_cat and not extent_cats)


def _applies(rule: Mapping[str, Any], prefix: str) -> bool:
    prefixes = rule.get("prefixes")
    return not prefixes or prefix in prefixes


def derive_n(spec: SiteSpec, tumor: TumorFinding, prefix: str, parsed: ParsedTNM | None = None) -> Derived:
    """N from the number of involved nodes, their stations and laterality; None when unknown."""
    rules = spec.n_rules
    nodes = tumor.nodes
    positive = nodes.positive
    examined = nodes.examined
    if positive is None and parsed is not None and parsed.nodes_positive is not None:
        positive, examined = parsed.nodes_positive, parsed.nodes_examined
    found: list[str] = []
    lines: list[str] = []
    flags = (
        ("supraclavicular", nodes.supraclavicular),
        ("contralateral", nodes.contralateral),
        ("fixed_or_matted", nodes.fixed_or_matted),
    )
    for key, present in flags:
        rule = rules.get(key)
        if present and rule and _applies(rule, prefix):
            found.append(str(rule["category"]))
            lines.append(f"{key.replace('_', ' ')} nodes -> {rule['category']} ({spec.site}: {rule['label']})")
    opposite = {"right": "l", "left": "r"}.get(tumor.laterality or "")
    side_rule = rules.get("contralateral_station")
    for station in nodes.stations:
        label = station.strip()
        contralateral = (
            side_rule is not None
            and opposite is not None
            and re.fullmatch(str(side_rule["pattern"]), label, re.IGNORECASE) is not None
            and label[-1].lower() == opposite
        )
        if side_rule and contralateral:
            found.append(str(side_rule["category"]))
            lines.append(
                f"station {station} on the side opposite a {tumor.laterality} tumour -> "
                f"{side_rule['category']} ({spec.site}: {side_rule['label']})"
            )
            continue
        for rule in rules.get("stations") or []:
            if not _applies(rule, prefix):
                continue
            if re.search(str(rule["pattern"]), label, re.IGNORECASE):
                found.append(str(rule["category"]))
                lines.append(f"station {station} -> {rule['category']} ({spec.site}: {rule['label']})")
                break
    located = len(found)
    if positive is not None and positive > 0:
        for rule in rules.get("count") or []:
            if not _applies(rule, prefix):
                continue
            if positive >= int(rule.get("min", 1)) and ("max" not in rule or positive <= int(rule["max"])):
                found.append(str(rule["category"]))
                ratio = f"{positive}/{examined}" if examined is not None else str(positive)
                lines.append(f"{ratio} involved nodes -> {rule['category']} ({spec.site}: {rule['label']})")
                break
    if found:
        best = _max_category(spec.vocabulary, found)
        if len(found) > 1:
            lines.append(f"most advanced node finding -> {best}")
        # A count decides N on its own only where N is defined by the count (not by location).
        return Derived(best, tuple(lines), definitive=located == 0)
    if nodes.negated or positive == 0:
        ratio = f" (0/{examined})" if examined is not None else ""
        return Derived(str(rules.get("negative", "N0")), (f"no involved regional nodes{ratio} -> N0",), definitive=True)
    if positive is not None and positive > 0:
        return Derived(
            None,
            (f"N not derived: {positive} involved node(s); {spec.site} N needs the node location",),
        )
    return Derived(None, ("N not derived: no regional node findings stated",))


def _several_lesions(findings: Findings, site: str) -> bool:
    """The text describes more than one metastasis in ``site`` ("multiple bone metastases",
    "Knochenmetastasen"): an affirmed mention of the site written in the plural."""
    plural = flat_matcher("metastasis", "plural_cues")
    for entity in findings.entities:
        if entity.label != "METASTASIS" or entity.code != site:
            continue
        if plural.find(entity.text):
            return True
    return False


def generic_n(tumor: TumorFinding) -> Derived:
    """N for a tumour without a site table: N0 when the regional nodes are free, else unknown
    (involved nodes are graded by rules of the site's own chapter)."""
    nodes = tumor.nodes
    free = (nodes.negated or nodes.positive == 0) and not (nodes.positive or nodes.stations)
    if free:
        rule = load_table(GENERIC_TABLE)["n"]["negative"]
        ratio = f" (0/{nodes.examined})" if nodes.examined is not None else ""
        return Derived(str(rule["category"]), (f"no involved regional nodes{ratio} -> {rule['category']}",))
    return Derived(None, ("N not derived: no site table to grade the regional nodes",))


def generic_m(tumor: TumorFinding) -> Derived:
    """M for a tumour without a site table: M1 for described distant sites, M0 when excluded."""
    rules: Mapping[str, Any] = load_table(GENERIC_TABLE)["m"]
    if tumor.metastases:
        rule = rules["distant"]
        return Derived(
            str(rule["category"]),
            (f"metastases {', '.join(tumor.metastases)} -> {rule['category']} ({rule['label']})",),
        )
    if tumor.metastases_negated:
        rule = rules["negative"]
        return Derived(str(rule["category"]), (f"distant metastasis excluded -> {rule['category']} ({rule['label']})",))
    return Derived(None, ("M not derived: distant metastasis neither stated nor excluded",))


def derive_m(spec: SiteSpec, tumor: TumorFinding, findings: Findings) -> Derived:
    """M from the metastasis sites; M0 only when the text negates distant spread."""
    rules = spec.m_rules
    sites = [s for s in tumor.metastases if s]
    # Described metastases outrank a blanket "M0"/"no distant metastases" elsewhere in the text;
    # the contradiction itself is reported as a conflict by stage_tumor.
    if sites:
        site_rules: Mapping[str, Any] = rules.get("sites") or {}
        default = rules.get("default_site")
        found: list[str] = []
        lines: list[str] = []
        classes: dict[str, list[str]] = {}
        for site in sites:
            rule = site_rules.get(site) or default
            if rule is None:
                lines.append(f"metastasis site {site}: no M rule for {spec.site}")
                continue
            cat = str(rule["category"])
            if cat in (rules.get("counted") or {}):
                classes.setdefault(cat, []).append(site)
                continue
            found.append(cat)
            lines.append(f"metastasis {site} -> {cat} ({spec.site}: {rule.get('label', '')})")
        for cls, members in classes.items():
            conf = rules["counted"][cls]
            if len(set(members)) > 1:
                pick = conf["several"]
            elif "one_organ_several_lesions" in conf and _several_lesions(findings, members[0]):
                pick = conf["one_organ_several_lesions"]
            else:
                pick = conf["one"]
            found.append(str(pick["category"]))
            lines.append(f"metastases {', '.join(members)} -> {pick['category']} ({spec.site}: {pick['label']})")
        best = _max_category(spec.vocabulary, found)
        if best is not None:
            if len(found) > 1:
                lines.append(f"most advanced metastasis finding -> {best}")
            return Derived(best, tuple(lines))
        return Derived(None, (*lines, "M not derived: metastasis sites without an M rule"))
    if tumor.metastases_negated:
        return Derived(str(rules.get("negative", "M0")), ("no distant metastasis stated -> M0",), definitive=True)
    if "metastatic" in findings.conditions:
        parent = "M1"
        return Derived(parent, ("metastatic disease stated without sites -> M1 (subcategory unknown)",))
    return Derived(None, ("M not derived: distant metastasis neither stated nor excluded",))


# --------------------------------------------------------------------------- checks


def _check(
    axis: str,
    spec: SiteSpec,
    stated: str,
    derived: Derived,
) -> tuple[list[str], list[str], list[str]]:
    """Compare a stated category with the derived one: (rationale, conflicts, notes).

    Findings that reach beyond the stated category always conflict with it. A stated category
    beyond the findings conflicts only when the findings decide the category on their own (a
    size-only T, a node count, negated metastases); otherwise the text may simply not describe
    the extent, and a note is enough.
    """
    vocab = spec.vocabulary
    if derived.category is None or stated in vocab.x_categories:
        return [], [], []
    basis = "; ".join(derived.lines)
    if not vocab.known(stated):
        return (
            [],
            [],
            [f"stated {stated} is not an AJCC 8th {spec.site} category; not checked against {basis}"],
        )
    if vocab.compatible(stated, derived.category):
        return [f"stated {stated} agrees with findings ({basis})"], [], []
    s_rank, d_rank = vocab.rank(stated), vocab.rank(derived.category)
    if s_rank is None or d_rank is None:
        return [], [], []
    clash = f"stated {stated} but findings give {derived.category} ({basis})"
    if s_rank[1] < d_rank[0]:
        return [], [clash], []
    definitive = derived.definitive
    if axis == "t":
        definitive = definitive and vocab.expand(stated) <= set(spec.t_rules.get("size_only") or [])
    if definitive:
        return [], [clash], []
    return (
        [],
        [],
        [f"stated {stated} is above the derived {derived.category} ({basis}); findings may be incomplete"],
    )


def _refined_by_size(spec: SiteSpec, axis: str, stated: str, derived: Derived) -> str | None:
    """The size subcategory of a stated parent T ("T1" -> "T1b"), where the site's table allows it.

    Only a derivation from size alone qualifies (no extent finding), and only when the size band
    lies inside the stated category: a measurement outside it is a conflict, not a refinement.
    """
    if axis != "t" or not spec.t_rules.get("refine_stated_by_size") or not derived.definitive:
        return None
    category = derived.category
    vocab = spec.vocabulary
    if category is None or stated == category or stated not in vocab.parents:
        return None
    if category not in set(spec.t_rules.get("size_only") or []):
        return None
    return category if vocab.expand(category) <= vocab.expand(stated) else None


def _beyond(spec: SiteSpec, stated: str, derived: str | None) -> bool:
    """Whether the derived category lies wholly above the stated one."""
    if derived is None:
        return False
    s_rank, d_rank = spec.vocabulary.rank(stated), spec.vocabulary.rank(derived)
    return s_rank is not None and d_rank is not None and s_rank[1] < d_rank[0]


def _prefix(tumor: TumorFinding, findings: Findings, parsed: ParsedTNM | None) -> tuple[Prefix, str]:
    if parsed is not None and parsed.prefix is not None:
        return parsed.prefix, f"prefix {parsed.prefix}: as stated"
    if "post_neoadjuvant" in findings.conditions:
        return "yp", "prefix yp: staged after neoadjuvant therapy"
    if "resected" in findings.conditions or tumor.nodes.examined is not None:
        return "p", "prefix p: findings from a resection specimen"
    return "c", "prefix c: clinical findings (no resection stated)"


def _grade_group(spec: SiteSpec, grade: str | None) -> int | None:
    """Grade Group from ``Grade Group 2``/``GG2`` or a Gleason pattern such as ``3+4``."""
    if not grade:
        return None
    text = grade.lower()
    direct = re.search(r"(?:grade\s*group|gg|isup(?:\s*grade)?)\s*:?\s*([1-5])\b", text)
    if direct:
        return int(direct.group(1))
    pattern = re.search(r"([1-5])\s*\+\s*([1-5])", text)
    total_match = re.search(r"gleason\D{0,12}(\d{1,2})\b", text)
    primary = secondary = None
    if pattern:
        primary, secondary = int(pattern.group(1)), int(pattern.group(2))
        total = primary + secondary
    elif total_match:
        total = int(total_match.group(1))
    else:
        return None
    for rule in spec.raw.get("grade_group_from_gleason") or []:
        if "primary" in rule and (primary, secondary) != (rule["primary"], rule["secondary"]):
            continue
        if "total" in rule and total != rule["total"]:
            continue
        if "total_max" in rule and total > rule["total_max"]:
            continue
        if "total_min" in rule and total < rule["total_min"]:
            continue
        return int(rule["grade_group"])
    return None


def _excluded_histology(spec: SiteSpec, histology: str | None) -> str | None:
    """A reason line when the histology has its own AJCC chapter (e.g. cholangiocarcinoma in the liver)."""
    if not histology:
        return None
    low = histology.lower()
    for rule in spec.raw.get("excluded_histology") or []:
        if any(word in low for word in rule["terms"]):
            return f"{spec.site} table does not apply to {histology}: {rule['label']}"
    return None


def stage_tumor(tumor: TumorFinding, findings: Findings) -> StagingResult:
    """Stage one tumour: stated categories checked against findings, the rest derived, then the group.

    Stated categories are kept when the findings contradict them, except where the findings describe
    disease beyond the stated category: then the findings' category is used, since under-staging would
    under-treat. Each contradiction is a line in ``conflicts`` either way (the report then needs
    review). A category the text cannot support stays None with a reason line. Liver tumours also get a
    BCLC stage in ``other_staging``.
    """
    parsed = parse_tnm(tumor.stated_tnm) if tumor.stated_tnm else None
    if parsed is not None and parsed.empty:
        parsed = None
    prefix, prefix_line = _prefix(tumor, findings, parsed)
    rationale: list[str] = [prefix_line]
    notes: list[str] = []
    conflicts: list[str] = []
    if not tumor.primary:
        rationale.append("not a primary tumour: TNM describes the primary, not staged here")
        return StagingResult(tnm=TNM(rationale=rationale), notes=notes)
    spec = site_spec(tumor.site)
    excluded = _excluded_histology(spec, tumor.histology) if spec is not None else None
    if excluded is not None:
        rationale.append(excluded)
        spec = None
    elif spec is None:
        rationale.append(f"no stage-group table for site {tumor.site}")
    if spec is None:
        if parsed is not None:
            rationale.append(f"stated {parsed.render()} taken as written")
        n = parsed.n if parsed else None
        if n is None and tumor.primary and tumor.site != "unknown_primary":
            generic_n_result = generic_n(tumor)
            n = generic_n_result.category
            rationale.extend(generic_n_result.lines)
        m = parsed.m if parsed else None
        if m is None:
            generic = generic_m(tumor)
            m = generic.category
            rationale.extend(generic.lines)
        return StagingResult(
            tnm=TNM(
                prefix=prefix,
                t=parsed.t if parsed else None,
                n=n,
                m=m,
                rationale=rationale,
            ),
            notes=notes,
        )
    derived = {
        "t": derive_t(spec, tumor, prefix),
        "n": derive_n(spec, tumor, prefix, parsed),
        "m": derive_m(spec, tumor, findings),
    }
    final: dict[str, str | None] = {}
    if tumor.metastases and tumor.metastases_negated:
        conflicts.append(
            "the text both excludes distant metastasis and describes metastases ("
            + ", ".join(tumor.metastases)
            + "); the categories need review"
        )
    for axis in AXES:
        stated = getattr(parsed, axis) if parsed is not None else None
        if stated is not None and stated in spec.vocabulary.aliases:
            # a category outside this chapter (rectal MRI T3a-d) is read as the one it refines
            rationale.append(f"{axis.upper()}: stated {stated} is read as {spec.vocabulary.aliases[stated]}")
            stated = spec.vocabulary.aliases[stated]
        if stated is not None:
            final[axis] = stated
            rationale.append(f"{axis.upper()}: stated {stated}")
            agree, clash, remarks = _check(axis, spec, stated, derived[axis])
            rationale.extend(agree)
            refined = _refined_by_size(spec, axis, stated, derived[axis]) if agree else None
            if refined is not None:
                final[axis] = refined
                rationale.append(f"T: stated {stated} completed to {refined} by the measured size")
            conflicts.extend(clash)
            notes.extend(remarks)
            overridable = axis == "m" or (axis == "n" and prefix == "c")
            if overridable and clash and _beyond(spec, stated, derived[axis].category):
                # spread described beyond the stated category (a positive node biopsy, metastases on a
                # later scan): staging below it would under-treat, so the findings decide until review.
                # A stated T and a pathological N stay: the pathologist's measurement and node count
                # weigh more than sizes and counts read from the whole text.
                final[axis] = derived[axis].category
                rationale.append(
                    f"{axis.upper()}: {derived[axis].category} from the findings, beyond the stated {stated}"
                )
        else:
            final[axis] = derived[axis].category
            rationale.extend(derived[axis].lines)
    spread_rule: Mapping[str, Any] | None = spec.raw.get("in_situ_spread")
    if spread_rule and final["t"] is not None and strip_prefix(final["t"])[1] == spread_rule["t"]:
        # carcinoma in situ has not crossed the basement membrane: with no nodal or distant
        # finding described, N0 and M0 follow from the definition
        for axis in ("n", "m"):
            if final[axis] is None and not (axis == "m" and tumor.metastases):
                final[axis] = str(spread_rule[axis])
                rationale.append(f"{final['t']}: {spread_rule['label']} -> {final[axis]}")
    extras: dict[str, Any] = {"histology": tumor.histology, "grade": tumor.grade, "location": tumor.subsite}
    if "age" in spec.extras:
        extras["age"] = findings.age
    if spec.site == "prostate":
        extras["psa_ng_ml"] = findings.labs.get("psa_ng_ml")
        extras["grade_group"] = _grade_group(spec, tumor.grade)
    if not tumor.grade and parsed is not None and "G" in parsed.extras:
        extras["grade"] = parsed.extras["G"]
    group = stage_group(spec.site, final["t"], final["n"], final["m"], prefix=prefix, **extras)
    rationale.extend(group.rationale)
    if group.group is None:
        rationale.append(f"stage group not given: {group.reason}")
    other: dict[str, str] = {}
    if spec.site == "liver":
        bclc = bclc_stage(tumor, findings, n=final["n"], m=final["m"])
        rationale.extend(bclc.rationale)
        if bclc.stage is not None:
            other["bclc"] = bclc.stage
    logger.debug("staged %s: %s %s %s -> %s", spec.site, final["t"], final["n"], final["m"], group.group)
    return StagingResult(
        tnm=TNM(
            prefix=prefix,
            t=final["t"],
            n=final["n"],
            m=final["m"],
            stage_group=group.group,
            system=SYSTEM,
            rationale=rationale,
        ),
        other_staging=other,
        conflicts=conflicts,
        notes=notes,
    )
