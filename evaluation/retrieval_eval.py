"""Retrieval evaluation on the labelled query set ``knowledge/literature/queries.yaml``.

Four systems are compared on the same store: BM25 alone, dense KNN alone (both at document
level with the site filter), the hybrid pipeline without recency priority, and the hybrid
pipeline with recency priority. Metrics are recall@5, recall@20, nDCG@10 (binary relevance) and
MRR, reported for English and German queries separately and together.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from oncoboard.knowledge import load_table
from oncoboard.storage import Database
from tools.literature.embed import embed_query
from tools.literature.query import LiteratureQuery
from tools.literature.retrieve import RankingPolicy, bm25_ranking, dense_ranking, search_literature
from tools.literature.store import LiteratureStore

logger = logging.getLogger(__name__)

QUERIES = "literature/queries.yaml"
SYSTEMS = ("bm25", "dense", "hybrid", "hybrid_recency")


@dataclass(frozen=True)
class LabelledQuery:
    """One evaluation query and the ids of the cards that answer it."""

    id: str
    lang: str
    site: str | None
    text: str
    relevant: frozenset[str]

    def to_query(self) -> LiteratureQuery:
        """The query as the retriever takes it."""
        return LiteratureQuery(text=self.text, site=self.site, language="de" if self.lang == "de" else "en")  # type: ignore[arg-type]


def load_queries(relative: str = QUERIES) -> list[LabelledQuery]:
    """The labelled queries from ``knowledge/``."""
    table = load_table(relative)
    return [
        LabelledQuery(
            id=str(q["id"]),
            lang=str(q["lang"]),
            site=q.get("site"),
            text=str(q["text"]),
            relevant=frozenset(q["relevant"]),
        )
        for q in table["queries"]
    ]


def recall_at(ranked: Sequence[str], relevant: frozenset[str], k: int) -> float:
    """Share of the relevant ids found in the first ``k`` results."""
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def ndcg_at(ranked: Sequence[str], relevant: frozenset[str], k: int) -> float:
    """Normalised discounted cumulative gain at ``k`` with binary relevance."""
    dcg = sum(1.0 / math.log2(i + 2) for i, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: frozenset[str]) -> float:
    """1 / rank of the first relevant result (0 when none is retrieved)."""
    for i, doc in enumerate(ranked, start=1):
        if doc in relevant:
            return 1.0 / i
    return 0.0


def _metrics(runs: list[tuple[list[str], frozenset[str]]]) -> dict[str, float]:
    n = len(runs)
    if n == 0:
        return {"n": 0}
    return {
        "n": n,
        "recall@5": round(sum(recall_at(r, rel, 5) for r, rel in runs) / n, 4),
        "recall@20": round(sum(recall_at(r, rel, 20) for r, rel in runs) / n, 4),
        "ndcg@10": round(sum(ndcg_at(r, rel, 10) for r, rel in runs) / n, 4),
        "mrr": round(sum(reciprocal_rank(r, rel) for r, rel in runs) / n, 4),
    }


def evaluate_retrieval(
    store_or_db: LiteratureStore | Database,
    *,
    queries: Sequence[LabelledQuery] | None = None,
    depth: int = 20,
    recency_years: int = 3,
    now_year: int | None = None,
) -> dict[str, Any]:
    """Run every system over the labelled queries and return the metrics.

    The shipped cards are loaded first if the store does not hold them. The result maps
    ``"systems"`` -> system -> ``{"all", "en", "de"}`` -> metrics, plus the query count and the
    median query latency of the hybrid system in milliseconds.
    """
    store = store_or_db if isinstance(store_or_db, LiteratureStore) else LiteratureStore(store_or_db)
    store.ensure_seeded()
    labelled = list(queries) if queries is not None else load_queries()
    policy = RankingPolicy.load()
    pool = max(depth, policy.pool_size)

    def hybrid(recency: int) -> Callable[[LiteratureQuery], list[str]]:
        def run(q: LiteratureQuery) -> list[str]:
            hits = search_literature(store, q, k=depth, recency_years=recency, now_year=now_year, policy=policy)
            return [h.id for h in hits]

        return run

    systems: dict[str, Callable[[LiteratureQuery], list[str]]] = {
        "bm25": lambda q: bm25_ranking(store, q, q.english_text(), pool * 3)[:depth],
        "dense": lambda q: dense_ranking(store, q, embed_query(q.english_text()), pool * 3)[:depth],
        "hybrid": hybrid(0),
        "hybrid_recency": hybrid(recency_years),
    }
    results: dict[str, Any] = {}
    latencies: list[float] = []
    for name, system in systems.items():
        runs: dict[str, list[tuple[list[str], frozenset[str]]]] = {"en": [], "de": []}
        for lq in labelled:
            started = time.perf_counter()
            ranked = system(lq.to_query())
            if name == "hybrid_recency":
                latencies.append((time.perf_counter() - started) * 1000)
            runs.setdefault(lq.lang, []).append((ranked, lq.relevant))
        results[name] = {
            "all": _metrics([r for lang_runs in runs.values() for r in lang_runs]),
            **{lang: _metrics(lang_runs) for lang, lang_runs in runs.items()},
        }
        logger.info("retrieval eval %s: %s", name, results[name]["all"])
    latencies.sort()
    return {
        "queries": len(labelled),
        "queries_by_language": {lang: sum(1 for q in labelled if q.lang == lang) for lang in ("en", "de")},
        "documents": store.count_documents(),
        "recency_years": recency_years,
        "systems": results,
        "hybrid_latency_ms_median": round(latencies[len(latencies) // 2], 2) if latencies else None,
    }
