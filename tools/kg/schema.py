"""The graph's schema: node labels, relationship types and their properties.

Both backends read this one declaration, so the embedded store (which needs declared tables) and
Neo4j (which needs only constraints) hold the same shape of graph. Every node has a globally unique
``id`` (a readable name such as ``osimertinib``, ``EGFR L858R`` or the ICD-10 code ``C34``), so the
verifier and the embeddings can refer to a node by its id alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Properties every node carries, with their embedded-store column types.
NODE_PROPERTIES: dict[str, str] = {
    "id": "STRING",
    "name": "STRING",
    "kind": "STRING",
    "code": "STRING",
    "synonyms": "STRING[]",
    "source": "STRING",
}

NODE_LABELS: tuple[str, ...] = (
    "Disease",
    "Histology",
    "Drug",
    "DrugClass",
    "Biomarker",
    "Variant",
    "Regimen",
    "Condition",
    "GraphMeta",
)


@dataclass(frozen=True)
class RelType:
    """A relationship type: which labels it connects and which properties it carries."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    properties: dict[str, str] = field(default_factory=dict)
    #: Properties that tell parallel edges of this type apart (part of the MERGE pattern).
    key: tuple[str, ...] = ()


_SRC = {"source": "STRING"}

REL_TYPES: dict[str, RelType] = {
    rel.name: rel
    for rel in (
        RelType("SUBCLASS_OF", (("Disease", "Disease"),), dict(_SRC)),
        RelType("IN_CLASS", (("Drug", "DrugClass"),), dict(_SRC)),
        RelType("TARGETS", (("Drug", "Biomarker"),), dict(_SRC)),
        RelType("VARIANT_OF", (("Variant", "Biomarker"),), dict(_SRC)),
        RelType("TESTED_IN", (("Biomarker", "Disease"), ("Variant", "Disease")), dict(_SRC)),
        RelType("HAS_COMPONENT", (("Regimen", "Drug"),), dict(_SRC)),
        RelType(
            "INDICATED_FOR",
            (("Drug", "Disease"), ("Regimen", "Disease")),
            {"setting": "STRING", "line": "STRING", "biomarker": "STRING", "note": "STRING", **_SRC},
            key=("setting", "line", "biomarker"),
        ),
        RelType("REQUIRES", (("Drug", "Biomarker"), ("Drug", "Variant")), dict(_SRC)),
        RelType("EXCLUDED_BY", (("Drug", "Biomarker"), ("Drug", "Variant")), dict(_SRC)),
        RelType(
            "CONTRAINDICATED_IN",
            (("Drug", "Condition"), ("DrugClass", "Condition"), ("Regimen", "Condition")),
            {"severity": "STRING", "note": "STRING", **_SRC},
        ),
        RelType(
            "INTERACTS_WITH",
            (("Drug", "Drug"), ("Drug", "DrugClass")),
            {"severity": "STRING", "effect": "STRING", **_SRC},
        ),
    )
}


@dataclass(frozen=True)
class Node:
    """A node to load: its label, unique id and properties (see NODE_PROPERTIES)."""

    label: str
    id: str
    name: str
    kind: str = ""
    code: str = ""
    synonyms: tuple[str, ...] = ()
    source: str = ""

    def row(self) -> dict[str, object]:
        """The node as a parameter row for a batched load."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "code": self.code,
            "synonyms": list(self.synonyms),
            "source": self.source,
        }


@dataclass(frozen=True)
class Edge:
    """A directed edge to load between two node ids; ``props`` must match the relationship's properties."""

    type: str
    src_label: str
    src: str
    dst_label: str
    dst: str
    props: tuple[tuple[str, str], ...] = ()

    def row(self) -> dict[str, object]:
        """The edge as a parameter row for a batched load (every declared property present)."""
        declared = REL_TYPES[self.type].properties
        values = dict(self.props)
        unknown = set(values) - set(declared)
        if unknown:
            raise ValueError(f"{self.type}: undeclared properties {sorted(unknown)}")
        row: dict[str, object] = {"s": self.src, "t": self.dst}
        row.update({key: values.get(key, "") for key in declared})
        return row


def check_label(label: str) -> str:
    """Return ``label`` if the schema declares it; labels go into Cypher text, so nothing else may."""
    if label not in NODE_LABELS:
        raise ValueError(f"unknown node label: {label!r}")
    return label


def check_rel(rel_type: str, src_label: str, dst_label: str) -> RelType:
    """The declared relationship type for this label pair, or an error."""
    rel = REL_TYPES.get(rel_type)
    if rel is None:
        raise ValueError(f"unknown relationship type: {rel_type!r}")
    if (src_label, dst_label) not in rel.pairs:
        raise ValueError(f"{rel_type} does not connect {src_label} -> {dst_label}")
    return rel
