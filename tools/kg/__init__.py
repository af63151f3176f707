"""Knowledge graph: stores (embedded ladybug, Neo4j), build, linking, verifier, TransE embeddings.

``tools.kg.transe`` (torch) is imported only where embeddings are trained or loaded.
"""

from tools.kg.build import build_graph, ensure_built
from tools.kg.linking import Linker
from tools.kg.store import GraphQueryError, GraphStore, LadybugStore, Neo4jStore, open_graph_store
from tools.kg.verify import verify

__all__ = [
    "GraphQueryError",
    "GraphStore",
    "LadybugStore",
    "Linker",
    "Neo4jStore",
    "build_graph",
    "ensure_built",
    "open_graph_store",
    "verify",
]
