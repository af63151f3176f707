"""Hybrid literature retrieval: BM25 + dense KNN -> RRF -> semantic re-scoring -> recency and level.

Pipeline for one query:

1. lexical candidates: BM25 (Okapi, scores identical to ``rank_bm25``) over all passage texts,
   restricted to the metadata filters; the postings index (``lexical.py``) is built once per
   process and rebuilt when the store's write generation changes, and a query reads only the
   postings of its own terms;
2. dense candidates: pgvector HNSW cosine KNN over the passage embeddings, filtered in SQL;
3. both passage rankings collapse to document rankings (best passage) and are fused with
   reciprocal rank fusion;
4. every fused document is re-scored by the cosine similarity of its best passage to the query;
5. relevance = weighted normalised RRF + semantic similarity; documents under either threshold
   are dropped and the best ``pool_size`` form the pool;
6. final = relevance x evidence-level weight x recency boost; the top ``k`` are returned, one hit
   per document, each with the scores that produced it.

Weights, thresholds and pool sizes are read from ``knowledge/literature/ranking.yaml``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from oncoboard.domain import EvidenceHit
from oncoboard.knowledge import load_table

from .embed import embed_query, get_model
from .fusion import best_rank_order, rrf_fuse, rrf_max
from .lexical import Filters, LexicalIndex, build_lexical_index, tokenize
from .query import LiteratureQuery
from .store import LiteratureStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankingPolicy:
    """Weights and thresholds of the ranking (from ``ranking.yaml``)."""

    level_weights: dict[str, float]
    recency_boost: float
    rrf_weight: float
    semantic_weight: float
    rrf_k: int
    bm25_candidates: int
    dense_candidates: int
    pool_size: int
    min_fused: float
    min_semantic: float

    @classmethod
    def load(cls) -> RankingPolicy:
        """The shipped policy."""
        t = load_table("literature/ranking.yaml")
        return cls(
            level_weights={str(k): float(v) for k, v in t["level_weights"].items()},
            recency_boost=float(t["recency_boost"]),
            rrf_weight=float(t["rrf_weight"]),
            semantic_weight=float(t["semantic_weight"]),
            rrf_k=int(t["rrf_k"]),
            bm25_candidates=int(t["bm25_candidates"]),
            dense_candidates=int(t["dense_candidates"]),
            pool_size=int(t["pool_size"]),
            min_fused=float(t["min_fused"]),
            min_semantic=float(t["min_semantic"]),
        )

    def level_weight(self, level: str | None) -> float:
        """Weight of an evidence level (unknown levels get the ``unknown`` weight)."""
        return self.level_weights.get(level or "unknown", self.level_weights.get("unknown", 0.6))


_index_lock = threading.Lock()
# The query is embedded on this thread while the lexical ranking runs on the caller's: both spend
# their time in native code (torch, numpy) that releases the interpreter lock, so they overlap.
_encoder_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-encoder")
_indexes: dict[str, LexicalIndex] = {}


def lexical_index(store: LiteratureStore) -> LexicalIndex:
    """The per-process BM25 index of this store's database, rebuilt when the store has changed."""
    generation = store.generation()
    with _index_lock:
        cached = _indexes.get(store.db.url)
        if cached is not None and cached.generation == generation:
            return cached
        started = time.perf_counter()
        with store.snapshot() as snap:
            index = build_lexical_index(snap.passages(), snap.filter_rows(), generation=snap.generation())
        logger.info(
            "BM25 index over %d passages (generation %d) in %.1f s",
            index.n_passages,
            index.generation,
            time.perf_counter() - started,
        )
        _indexes[store.db.url] = index
        return index


def warm_up(store: LiteratureStore) -> dict[str, float]:
    """Build the lexical index and load the query encoder now, so the first search does not pay for them.

    Meant for service start-up; returns the passages indexed and the seconds each step took.
    """
    started = time.perf_counter()
    index = lexical_index(store)
    indexed = time.perf_counter() - started
    started = time.perf_counter()
    get_model()
    loaded = time.perf_counter() - started
    return {"passages": float(index.n_passages), "lexical_index_s": indexed, "encoder_s": loaded}


def _filters_of(query: LiteratureQuery) -> Filters:
    return Filters(site=query.site, min_year=query.min_year, levels=query.levels, settings=query.settings)


def bm25_ranking(
    store: LiteratureStore, query: LiteratureQuery, text: str, limit: int, *, index: LexicalIndex | None = None
) -> list[str]:
    """Document ids ranked by their best BM25 passage among the ``limit`` best passages passing the filters."""
    index = index or lexical_index(store)
    top = index.top_passages(tokenize(text), _filters_of(query), limit)
    return best_rank_order(index.passage_doc_ids(top))


def dense_ranking(store: LiteratureStore, query: LiteratureQuery, vector: np.ndarray, limit: int) -> list[str]:
    """Document ids ranked by their nearest passage (pgvector HNSW, filters in SQL)."""
    rows = store.dense_search(
        vector, limit, site=query.site, min_year=query.min_year, levels=query.levels, settings=query.settings
    )
    return best_rank_order([doc_id for _chunk, doc_id, _sim in rows])


def search_literature(
    store: LiteratureStore,
    query: LiteratureQuery,
    k: int = 5,
    *,
    recency_years: int = 3,
    now_year: int | None = None,
    policy: RankingPolicy | None = None,
) -> list[EvidenceHit]:
    """Search the evidence store for the ``k`` best documents for a case query.

    Documents are filtered by site (and any other filter on the query), ranked by fused lexical
    and dense relevance, weighted by evidence level, and those published within the last
    ``recency_years`` years (0 disables) get a recency boost. Each hit's ``explanation`` holds
    bm25_rank, dense_rank (0 = not retrieved by that ranker), rrf, semantic, recency,
    level_weight and final.
    """
    if k <= 0:
        return []
    policy = policy or RankingPolicy.load()
    now_year = now_year or _dt.date.today().year
    text = query.english_text()
    pending = _encoder_thread.submit(embed_query, text)
    lexical = bm25_ranking(store, query, text, policy.bm25_candidates, index=lexical_index(store))
    vector = pending.result()
    dense = dense_ranking(store, query, vector, policy.dense_candidates)
    fused = rrf_fuse([lexical, dense], k=policy.rrf_k)
    if not fused:
        return []
    top_rrf = rrf_max(2, policy.rrf_k)
    candidate_ids = [doc_id for doc_id, _ in fused]
    vectors, meta = store.candidates(candidate_ids)
    lex_rank = {d: i for i, d in enumerate(lexical, start=1)}
    dense_rank = {d: i for i, d in enumerate(dense, start=1)}
    scored: list[tuple[float, str, dict[str, float]]] = []
    for doc_id, rrf in fused:
        passages = vectors.get(doc_id)
        if passages is None:
            continue
        semantic = float(np.max(passages @ vector))
        rrf_norm = rrf / top_rrf
        if rrf_norm < policy.min_fused or semantic < policy.min_semantic:
            continue
        relevance = policy.rrf_weight * rrf_norm + policy.semantic_weight * semantic
        scored.append(
            (
                relevance,
                doc_id,
                {
                    "bm25_rank": float(lex_rank.get(doc_id, 0)),
                    "dense_rank": float(dense_rank.get(doc_id, 0)),
                    "rrf": rrf,
                    "semantic": semantic,
                    "relevance": relevance,
                },
            )
        )
    scored.sort(key=lambda s: (-s[0], s[1]))
    pool = scored[: policy.pool_size]
    hits: list[tuple[float, EvidenceHit]] = []
    for relevance, doc_id, explanation in pool:
        info = meta[doc_id]
        recent = recency_years > 0 and info.year is not None and now_year - info.year < recency_years
        recency = 1.0 + policy.recency_boost if recent else 1.0
        level_weight = policy.level_weight(info.evidence_level)
        final = relevance * level_weight * recency
        explanation.update({"recency": recency, "level_weight": level_weight, "final": final})
        hits.append(
            (
                final,
                EvidenceHit(
                    id=doc_id,
                    title=info.title,
                    year=info.year,
                    level=info.evidence_level,
                    score=round(final, 6),
                    explanation={key: round(value, 6) for key, value in explanation.items()},
                ),
            )
        )
    hits.sort(key=lambda h: (-h[0], h[1].id))
    return [hit for _final, hit in hits[:k]]


def explain(hits: list[EvidenceHit]) -> list[dict[str, Any]]:
    """Hits as plain dicts (id, title, year, level, score and the explanation), for logs and CLIs."""
    return [hit.model_dump(mode="json") for hit in hits]
