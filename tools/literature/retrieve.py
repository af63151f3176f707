"""Hybrid literature retrieval: BM25 + dense KNN -> RRF -> semantic re-scoring -> recency and level.

Pipeline for one query:

1. lexical candidates: BM25 (``rank_bm25``) over all passage texts, restricted to the metadata
   filters; the index is built once per process and rebuilt when the store's write generation
   changes;
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
import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi

from oncoboard.domain import EvidenceHit
from oncoboard.knowledge import load_table

from .embed import embed_query
from .fusion import best_rank_order, rrf_fuse, rrf_max
from .query import LiteratureQuery
from .store import DocumentMeta, LiteratureStore

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
# Function words that carry no clinical meaning in a query or a card.
_STOPWORD_TEXT = (
    "a an and are as at be by for from in into is it of on or than that the their this to vs versus"
    " was were with after before"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens for BM25; hyphenated terms are kept whole and also split."""
    tokens: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if token in _STOPWORDS:
            continue
        tokens.append(token)
        if "-" in token:
            tokens.extend(t for t in token.split("-") if t and t not in _STOPWORDS)
    return tokens


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


@dataclass
class _LexicalIndex:
    generation: int
    bm25: BM25Okapi | None
    postings: dict[str, tuple[np.ndarray, np.ndarray]]
    chunk_ids: list[str]
    doc_ids: np.ndarray
    meta: dict[str, DocumentMeta]

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 scores of every passage; equal to ``BM25Okapi.get_scores`` but reads only the postings
        of the query's terms instead of scanning every passage per term."""
        out = np.zeros(len(self.chunk_ids))
        for token in tokens:
            posting = self.postings.get(token)
            if posting is not None:
                out[posting[0]] += posting[1]
        return out


def _postings(bm25: BM25Okapi) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Term -> (passage indexes, BM25 term weights) from the fitted model's statistics."""
    grouped: dict[str, tuple[list[int], list[float]]] = {}
    k1, b, avgdl = bm25.k1, bm25.b, bm25.avgdl
    for i, (freqs, length) in enumerate(zip(bm25.doc_freqs, bm25.doc_len, strict=True)):
        norm = k1 * (1 - b + b * length / avgdl)
        for term, tf in freqs.items():
            entry = grouped.setdefault(term, ([], []))
            entry[0].append(i)
            entry[1].append(bm25.idf.get(term, 0.0) * tf * (k1 + 1) / (tf + norm))
    return {t: (np.asarray(ix, dtype=np.int64), np.asarray(w)) for t, (ix, w) in grouped.items()}


_index_lock = threading.Lock()
_indexes: dict[str, _LexicalIndex] = {}


def _lexical_index(store: LiteratureStore) -> _LexicalIndex:
    """The per-process BM25 index of this store's database, rebuilt when the store has changed."""
    generation = store.generation()
    with _index_lock:
        cached = _indexes.get(store.db.url)
        if cached is not None and cached.generation == generation:
            return cached
        rows = store.all_passages()
        corpus = [tokenize(r["text"]) for r in rows]
        bm25 = BM25Okapi(corpus) if corpus else None
        index = _LexicalIndex(
            generation=generation,
            bm25=bm25,
            postings=_postings(bm25) if bm25 is not None else {},
            chunk_ids=[r["chunk_id"] for r in rows],
            doc_ids=np.array([r["doc_id"] for r in rows], dtype=object),
            meta=store.document_meta(),
        )
        logger.info("built BM25 index over %d passages (generation %d)", len(rows), generation)
        _indexes[store.db.url] = index
        return index


def _allowed(meta: DocumentMeta | None, query: LiteratureQuery) -> bool:
    if meta is None:
        return False
    if query.site and meta.tumour_type != query.site:
        return False
    if query.min_year is not None and (meta.year is None or meta.year < query.min_year):
        return False
    if query.levels and meta.evidence_level not in query.levels:
        return False
    return not (query.settings and not set(query.settings) & set(meta.settings))


def bm25_ranking(store: LiteratureStore, query: LiteratureQuery, text: str, limit: int) -> list[str]:
    """Document ids ranked by their best BM25 passage, restricted to the query's filters."""
    index = _lexical_index(store)
    tokens = tokenize(text)
    if index.bm25 is None or not tokens:
        return []
    scores = index.scores(tokens)
    hits = np.flatnonzero(scores > 0)
    order = hits[np.argsort(-scores[hits], kind="stable")]
    docs: list[str] = []
    taken = 0
    for i in order:
        if taken >= limit:
            break
        doc_id = str(index.doc_ids[i])
        if _allowed(index.meta.get(doc_id), query):
            docs.append(doc_id)
            taken += 1
    return best_rank_order(docs)


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
    vector = embed_query(text)
    lexical = bm25_ranking(store, query, text, policy.bm25_candidates)
    dense = dense_ranking(store, query, vector, policy.dense_candidates)
    fused = rrf_fuse([lexical, dense], k=policy.rrf_k)
    if not fused:
        return []
    top_rrf = rrf_max(2, policy.rrf_k)
    candidate_ids = [doc_id for doc_id, _ in fused]
    vectors = store.passage_vectors(candidate_ids)
    meta = _lexical_index(store).meta
    missing = [d for d in candidate_ids if d not in meta]
    if missing:
        meta = {**meta, **store.document_meta(missing)}
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
