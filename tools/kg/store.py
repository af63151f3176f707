"""Graph stores: one protocol, an embedded backend (``ladybug``) and a Neo4j backend.

Both speak the same Cypher for loading and for the verifier's queries; only the few places where
the dialects differ (schema declaration, label/type functions in ``stats``) are backend-specific.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from oncoboard.config import Settings
from tools.kg.schema import NODE_LABELS, NODE_PROPERTIES, REL_TYPES, Edge, Node, check_label, check_rel

logger = logging.getLogger(__name__)


class GraphQueryError(RuntimeError):
    """A Cypher statement the backend rejected (syntax, unknown table, constraint)."""


class GraphStoreBusy(RuntimeError):
    """The embedded graph is locked by another process (one writer excludes every other opener)."""


#: Rows per UNWIND batch; large enough to keep round trips few, small enough for Neo4j transactions.
BATCH_SIZE = 2000


@runtime_checkable
class GraphStore(Protocol):
    """What the knowledge-graph code needs from a graph database."""

    def bootstrap_schema(self) -> None:
        """Declare node/relationship tables (embedded) or constraints (Neo4j); idempotent."""
        ...

    def load(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        """Upsert nodes, then edges, in batches with ``UNWIND ... MERGE``."""
        ...

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one Cypher statement and return its rows as dicts keyed by column name."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts of nodes by label and edges by type, with totals."""
        ...

    def clear(self) -> None:
        """Delete every node and edge (the schema stays)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _node_statements() -> dict[str, str]:
    sets = ", ".join(f"n.{p} = r.{p}" for p in NODE_PROPERTIES if p != "id")
    return {label: f"UNWIND $rows AS r MERGE (n:{label} {{id: r.id}}) SET {sets}" for label in NODE_LABELS}


def _edge_statement(rel_type: str, src_label: str, dst_label: str) -> str:
    rel = check_rel(rel_type, src_label, dst_label)
    key = ", ".join(f"{k}: r.{k}" for k in rel.key)
    pattern = f"[e:{rel.name} {{{key}}}]" if key else f"[e:{rel.name}]"
    rest = [p for p in rel.properties if p not in rel.key]
    sets = (" SET " + ", ".join(f"e.{p} = r.{p}" for p in rest)) if rest else ""
    return (
        f"UNWIND $rows AS r MATCH (a:{src_label} {{id: r.s}}), (b:{dst_label} {{id: r.t}}) "
        f"MERGE (a)-{pattern}->(b){sets}"
    )


def _batches(rows: Sequence[dict[str, object]], size: int) -> Iterable[list[dict[str, object]]]:
    for start in range(0, len(rows), size):
        yield list(rows[start : start + size])


class _CypherStoreBase(ABC):
    """Loading logic shared by both backends; subclasses provide ``query``."""

    @abstractmethod
    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one Cypher statement and return its rows as dicts."""

    def load(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        """Upsert nodes, then edges, in batches with ``UNWIND ... MERGE``."""
        by_label: dict[str, list[dict[str, object]]] = defaultdict(list)
        for node in nodes:
            by_label[check_label(node.label)].append(node.row())
        statements = _node_statements()
        for label, rows in by_label.items():
            for batch in _batches(rows, BATCH_SIZE):
                self.query(statements[label], {"rows": batch})
        by_rel: dict[tuple[str, str, str], list[dict[str, object]]] = defaultdict(list)
        for edge in edges:
            by_rel[(edge.type, edge.src_label, edge.dst_label)].append(edge.row())
        for (rel_type, src, dst), rows in by_rel.items():
            statement = _edge_statement(rel_type, src, dst)
            for batch in _batches(rows, BATCH_SIZE):
                self.query(statement, {"rows": batch})
        logger.info(
            "loaded %d nodes and %d edges",
            sum(len(r) for r in by_label.values()),
            sum(len(r) for r in by_rel.values()),
        )

    def clear(self) -> None:
        """Delete every node and edge (the schema stays)."""
        self.query("MATCH (n) DETACH DELETE n")


class LadybugStore(_CypherStoreBase):
    """The embedded graph: a ``ladybug`` database in a directory of its own."""

    def __init__(self, directory: Path | str, *, read_only: bool = False) -> None:
        """Open (or create) the embedded database under ``directory``.

        ``read_only`` opens a built graph for queries only; any number of processes (server, workers,
        command line) may hold it so at once, while a writer needs it to themselves.
        """
        import ladybug

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        try:
            self._db = ladybug.Database(str(self.path), read_only=read_only)
        except RuntimeError as exc:
            if "lock" in str(exc).lower():
                raise GraphStoreBusy(f"the knowledge graph at {self.path} is in use by another process: {exc}") from exc
            raise
        self._conn = ladybug.Connection(self._db)
        # One connection serves the whole process; graph nodes may run in worker threads.
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The database file."""
        return self.directory / "graph.lbug"

    def bootstrap_schema(self) -> None:
        """Create the node and relationship tables declared in ``tools.kg.schema``; idempotent."""
        if self.read_only:
            return
        columns = ", ".join(f"{name} {typ}" for name, typ in NODE_PROPERTIES.items())
        for label in NODE_LABELS:
            self.query(f"CREATE NODE TABLE IF NOT EXISTS {label}({columns}, PRIMARY KEY(id))")
        for rel in REL_TYPES.values():
            pairs = ", ".join(f"FROM {a} TO {b}" for a, b in rel.pairs)
            props = "".join(f", {name} {typ}" for name, typ in rel.properties.items())
            self.query(f"CREATE REL TABLE IF NOT EXISTS {rel.name}({pairs}{props})")

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one Cypher statement and return its rows as dicts keyed by column name."""
        with self._lock:
            try:
                result = self._conn.execute(cypher, params or {})
            except RuntimeError as exc:
                raise GraphQueryError(str(exc)) from exc
            if isinstance(result, list):  # several statements: the last one's rows
                result = result[-1]
            columns = result.get_column_names()
            rows = result.get_all()
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def stats(self) -> dict[str, Any]:
        """Counts of nodes by label and edges by type, with totals."""
        nodes = {r["label"]: r["n"] for r in self.query("MATCH (n) RETURN label(n) AS label, count(*) AS n")}
        edges = {r["type"]: r["n"] for r in self.query("MATCH ()-[e]->() RETURN label(e) AS type, count(*) AS n")}
        return _stats_dict("ladybug", nodes, edges)

    def close(self) -> None:
        """Close the connection and the database."""
        with self._lock:
            self._conn.close()
            self._db.close()


class Neo4jStore(_CypherStoreBase):
    """A Neo4j server reached with the official driver."""

    def __init__(self, uri: str, user: str, password: str, database: str | None = None) -> None:
        """Connect to ``uri``; ``database`` defaults to the server's home database."""
        import neo4j

        self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password))
        self._database = database

    def bootstrap_schema(self) -> None:
        """Create a uniqueness constraint on ``id`` per label; idempotent."""
        for label in NODE_LABELS:
            self.query(f"CREATE CONSTRAINT kg_{label.lower()}_id IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE")

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one Cypher statement in its own transaction and return its rows."""
        import neo4j.exceptions

        try:
            with self._driver.session(database=self._database) as session:
                return [dict(record) for record in session.run(cypher, params or {}).data()]
        except neo4j.exceptions.Neo4jError as exc:
            raise GraphQueryError(str(exc)) from exc

    def stats(self) -> dict[str, Any]:
        """Counts of nodes by label and edges by type, with totals."""
        nodes = {r["label"]: r["n"] for r in self.query("MATCH (n) RETURN labels(n)[0] AS label, count(*) AS n")}
        edges = {r["type"]: r["n"] for r in self.query("MATCH ()-[e]->() RETURN type(e) AS type, count(*) AS n")}
        return _stats_dict("neo4j", nodes, edges)

    def close(self) -> None:
        """Close the driver."""
        self._driver.close()


def _stats_dict(backend: str, nodes: dict[str, int], edges: dict[str, int]) -> dict[str, Any]:
    return {
        "backend": backend,
        "nodes": dict(sorted(nodes.items())),
        "edges": dict(sorted(edges.items())),
        "total_nodes": sum(nodes.values()),
        "total_edges": sum(edges.values()),
    }


def graph_dir(data_dir: Path) -> Path:
    """The folder of the embedded graph (and the trained embeddings) inside the data directory."""
    return Path(data_dir) / "kg"


def embeddings_path(data_dir: Path) -> Path:
    """Where the graph's trained TransE embeddings live."""
    return graph_dir(data_dir) / "transe.pt"


def open_graph_store(settings: Settings) -> GraphStore:
    """The store the settings ask for: Neo4j when ``NEO4J_URI`` is set, else embedded in ``data_dir/kg``."""
    if settings.neo4j_uri:
        if settings.neo4j_password is None:
            raise ValueError("NEO4J_URI is set but NEO4J_PASSWORD is not")
        store: GraphStore = Neo4jStore(
            settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password.get_secret_value()
        )
    else:
        store = LadybugStore(graph_dir(settings.data_dir))
    store.bootstrap_schema()
    return store
