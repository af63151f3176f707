"""Typed access to the AJCC 8th site tables in ``knowledge/tnm/``.

A site table names its categories in ascending order of extent, a hierarchy of parent
categories (``T1`` -> ``T1a``..``T1c``), the rules that derive T, N and M from findings, and one
or more stage-group tables (by prefix and, for the oesophagus, by histology).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from oncoboard.knowledge import KnowledgeError, knowledge_path, load_table

logger = logging.getLogger(__name__)

TNM_DIR = "tnm"
AXES: tuple[str, str, str] = ("t", "n", "m")


def table_path(site: str) -> str:
    """Relative path of a site's table inside ``knowledge/``."""
    return f"{TNM_DIR}/{site}.yaml"


def has_site_table(site: str) -> bool:
    """True when ``knowledge/tnm/<site>.yaml`` exists."""
    return bool(site) and site.isidentifier() and knowledge_path(TNM_DIR, f"{site}.yaml").is_file()


def _closure(hierarchy: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    """Every parent mapped to all leaves below it (children may themselves be parents)."""

    def leaves(cat: str, seen: frozenset[str]) -> frozenset[str]:
        children = hierarchy.get(cat)
        if not children:
            return frozenset({cat})
        if cat in seen:
            raise KnowledgeError(f"cycle in TNM hierarchy at {cat}")
        out: set[str] = set()
        for child in children:
            out |= leaves(child, seen | {cat})
        return frozenset(out)

    return {cat: leaves(cat, frozenset()) for cat, children in hierarchy.items() if children}


@dataclass(frozen=True)
class Vocabulary:
    """Categories known to one stage table: leaves in order, parents, aliases and X categories."""

    leaves: dict[str, tuple[str, ...]]
    parents: dict[str, frozenset[str]]
    aliases: dict[str, str]
    x_categories: frozenset[str]

    def axis_of(self, category: str) -> str:
        """The axis (t, n, m) of a category by its first letter."""
        return category[:1].lower()

    def known(self, category: str) -> bool:
        """True when the category is a leaf, a parent, an alias or an X category here."""
        axis = self.axis_of(category)
        return (
            category in self.leaves.get(axis, ())
            or category in self.parents
            or category in self.aliases
            or category in self.x_categories
        )

    def expand(self, category: str) -> frozenset[str]:
        """The leaves a category stands for (itself when it is a leaf or an X category)."""
        category = self.aliases.get(category, category)
        if category in self.parents:
            return self.parents[category]
        return frozenset({category})

    def rank(self, category: str) -> tuple[int, int] | None:
        """Lowest and highest position of the category's leaves in the ascending order."""
        order = self.leaves.get(self.axis_of(category), ())
        positions = [order.index(leaf) for leaf in self.expand(category) if leaf in order]
        if not positions:
            return None
        return min(positions), max(positions)

    def matches(self, leaf: str, entry: str) -> bool:
        """True when a row entry (a leaf or a parent) covers the leaf."""
        return leaf == entry or leaf in self.parents.get(entry, frozenset())

    def compatible(self, a: str, b: str) -> bool:
        """True when two categories share a leaf (``T1`` and ``T1c``; ``M1`` and ``M1b``)."""
        return bool(self.expand(a) & self.expand(b))


@dataclass(frozen=True)
class StageTable:
    """One stage-group table of a site."""

    name: str
    prefixes: tuple[str, ...]
    histology: tuple[str, ...]
    uses: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    vocabulary: Vocabulary


@dataclass(frozen=True)
class SiteSpec:
    """A site's TNM knowledge as loaded from its YAML table."""

    site: str
    source: str
    edition: str
    raw: dict[str, Any]
    vocabulary: Vocabulary
    tables: tuple[StageTable, ...]
    anatomic_only: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def t_rules(self) -> dict[str, Any]:
        """The ``t:`` section (size thresholds, extent terms, special rules)."""
        return dict(self.raw.get("t") or {})

    @property
    def n_rules(self) -> dict[str, Any]:
        """The ``n:`` section (counts, stations, flags)."""
        return dict(self.raw.get("n") or {})

    @property
    def m_rules(self) -> dict[str, Any]:
        """The ``m:`` section (metastasis sites)."""
        return dict(self.raw.get("m") or {})


def _vocabulary(
    categories: dict[str, Any], hierarchy: dict[str, list[str]], aliases: dict[str, str]
) -> Vocabulary:
    leaves = {axis: tuple(str(c) for c in categories.get(axis) or ()) for axis in AXES}
    return Vocabulary(
        leaves=leaves,
        parents=_closure({str(k): [str(c) for c in (v or [])] for k, v in hierarchy.items()}),
        aliases={str(k): str(v) for k, v in aliases.items()},
        x_categories=frozenset(str(c) for c in categories.get("x") or ()),
    )


def _check_rows(site: str, name: str, rows: list[dict[str, Any]], vocab: Vocabulary) -> None:
    """Refuse a table whose rows name a category the table does not define (a typo guard)."""
    for row in rows:
        if "group" not in row:
            raise KnowledgeError(f"tnm/{site}: row without group in {name}: {row}")
        for axis in AXES:
            entries = row.get(axis, "*")
            if entries == "*":
                continue
            for entry in entries:
                if not vocab.known(str(entry)):
                    raise KnowledgeError(f"tnm/{site}: unknown category {entry} in {name}")


@lru_cache(maxsize=32)
def site_spec(site: str) -> SiteSpec | None:
    """The loaded and checked table of a site, or None when the site has none."""
    if not has_site_table(site):
        return None
    data = load_table(table_path(site))
    categories = dict(data.get("categories") or {})
    hierarchy = dict(data.get("hierarchy") or {})
    site_aliases = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
    vocab = _vocabulary(categories, hierarchy, site_aliases)
    tables: list[StageTable] = []
    for raw in data.get("stage_tables") or []:
        table_categories = {**categories, **(raw.get("categories") or {})}
        table_hierarchy = {**hierarchy, **(raw.get("hierarchy") or {})}
        table_vocab = _vocabulary(table_categories, table_hierarchy, {**site_aliases, **(raw.get("aliases") or {})})
        rows = [dict(r) for r in raw.get("rows") or []]
        _check_rows(site, str(raw.get("name")), rows, table_vocab)
        tables.append(
            StageTable(
                name=str(raw["name"]),
                prefixes=tuple(raw.get("prefixes") or ("c", "p", "yp")),
                histology=tuple(raw.get("histology") or ("any",)),
                uses=tuple(raw.get("uses") or ()),
                rows=tuple(rows),
                vocabulary=table_vocab,
            )
        )
    logger.debug("loaded TNM table for %s with %d stage tables", site, len(tables))
    return SiteSpec(
        site=site,
        source=str(data["source"]),
        edition=str(data["edition"]),
        raw=data,
        vocabulary=vocab,
        tables=tuple(tables),
        anatomic_only=bool(data.get("anatomic_only", False)),
        extras=dict(data.get("extras") or {}),
    )
