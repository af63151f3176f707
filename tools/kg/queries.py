"""Read queries over the graph (neighbourhoods) and a small latency benchmark."""

from __future__ import annotations

import statistics
import time
from typing import Any

from tools.kg.schema import check_label
from tools.kg.store import GraphStore

# The label anchors the start node on its primary-key index instead of scanning every table.
ONE_HOP = "MATCH (a:{label} {{id: $id}})-[]-(b) RETURN DISTINCT b.id AS id"
TWO_HOP = "MATCH (a:{label} {{id: $id}})-[]-()-[]-(c) WHERE c.id <> $id RETURN DISTINCT c.id AS id"


def one_hop(store: GraphStore, label: str, node_id: str) -> set[str]:
    """Ids of the nodes one edge (either direction) away from the ``label`` node ``node_id``."""
    cypher = ONE_HOP.format(label=check_label(label))
    return {row["id"] for row in store.query(cypher, {"id": node_id})}


def two_hop(store: GraphStore, label: str, node_id: str) -> set[str]:
    """Ids of the nodes two edges away from the ``label`` node ``node_id`` (itself excluded)."""
    cypher = TWO_HOP.format(label=check_label(label))
    return {row["id"] for row in store.query(cypher, {"id": node_id})}


def drug_indications(store: GraphStore, drug: str) -> list[dict[str, Any]]:
    """A drug's direct and regimen-borne indications: disease code, setting, line, via."""
    direct = store.query(
        "MATCH (d:Drug {id: $id})-[e:INDICATED_FOR]->(x:Disease) "
        "RETURN x.id AS disease, e.setting AS setting, e.line AS line, '' AS via",
        {"id": drug},
    )
    via = store.query(
        "MATCH (r:Regimen)-[:HAS_COMPONENT]->(d:Drug {id: $id}), (r)-[e:INDICATED_FOR]->(x:Disease) "
        "RETURN x.id AS disease, e.setting AS setting, e.line AS line, r.id AS via",
        {"id": drug},
    )
    return sorted(direct + via, key=lambda r: (r["disease"], r["setting"], r["line"], r["via"]))


#: Start nodes of the benchmark: hubs of each kind (a drug, a disease, a biomarker, a regimen).
BENCHMARK_NODES: tuple[tuple[str, str], ...] = (
    ("Drug", "osimertinib"),
    ("Drug", "cisplatin"),
    ("Disease", "C34"),
    ("Disease", "C18.7"),
    ("Biomarker", "EGFR"),
    ("Biomarker", "HER2"),
    ("Regimen", "FOLFOX"),
    ("Drug", "rifampicin"),
)


def benchmark(
    store: GraphStore, nodes: tuple[tuple[str, str], ...] = BENCHMARK_NODES, repeats: int = 20
) -> dict[str, float]:
    """Latency of the 1-hop and 2-hop queries from ``(label, id)`` nodes (ms: p50 and p95 per kind)."""
    result: dict[str, float] = {}
    for name, template in (("one_hop", ONE_HOP), ("two_hop", TWO_HOP)):
        queries = [(template.format(label=check_label(label)), node_id) for label, node_id in nodes]
        for cypher, node_id in queries:  # warm-up: plan cache and pages
            store.query(cypher, {"id": node_id})
        samples: list[float] = []
        for _ in range(repeats):
            for cypher, node_id in queries:
                start = time.perf_counter()
                store.query(cypher, {"id": node_id})
                samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        result[f"{name}_p50_ms"] = statistics.median(samples)
        result[f"{name}_p95_ms"] = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
    return result
