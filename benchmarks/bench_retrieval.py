"""Hybrid literature retrieval latency at 1k, 10k and 100k passages.

Usage::

    .venv/bin/python benchmarks/bench_retrieval.py [--sizes 1000 10000 100000] [--data-dir DIR] [--embed]

The corpus is synthetic, generated from the shipped evidence cards: each passage recombines 3-6
sentences drawn from cards of one tumour site and inherits that site's metadata (year, evidence
level), so the lexical and metadata statistics resemble the real store. Passage vectors are the
normalised mean of their sentences' MiniLM vectors (every distinct sentence is embedded once);
embedding 100k passages one by one with MiniLM takes hours on two shared CPU cores. ``--embed``
embeds every synthetic passage with the model instead (slow; meant for bigger machines).

Each size gets its own database on the embedded Postgres (or ``ONCOBOARD_DATABASE_URL``'s
server), the HNSW index is built after loading, the per-process BM25 index is built by a warm-up
query, and then each labelled query of ``knowledge/literature/queries.yaml`` (with its site
filter) is timed end to end through ``search_literature``: query embedding, BM25, pgvector KNN,
fusion and re-scoring. A second pass over the same queries (query vectors now cached) gives the
store-side latency alone.

Printed per size, one JSON object: median and p95 latencies, load and HNSW build times with
ingestion throughput in passages/s (COPY of precomputed vectors, then the index build), HNSW
recall@10 against exact search, the MiniLM time per query alone, memory (this process's current
RSS after the queries and its peak so far, which includes the model and the corpus generation
of this and earlier sizes; the lexical index's arrays and how much RSS building it added; Postgres
relation sizes from ``pg_total_relation_size``) and the load average, since the machine may be
shared. A first line gives MiniLM's passages/s, the ceiling of ingestion that embeds. Numbers are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import resource
import statistics
import sys
import time
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.retrieval_eval import load_queries  # noqa: E402
from oncoboard.config import get_settings  # noqa: E402
from oncoboard.knowledge import knowledge_path  # noqa: E402
from oncoboard.storage import Database, embedded_url  # noqa: E402
from tools.literature.chunking import Chunk, count_tokens, split_sentences  # noqa: E402
from tools.literature.embed import embed_query, embed_texts, query_encoder  # noqa: E402
from tools.literature.ingest import iter_jsonl  # noqa: E402
from tools.literature.query import LiteratureQuery  # noqa: E402
from tools.literature.retrieve import lexical_index, search_literature  # noqa: E402
from tools.literature.store import LiteratureDocument, LiteratureStore  # noqa: E402

logger = logging.getLogger("bench_retrieval")


def _card_documents() -> list[LiteratureDocument]:
    return [d for _pos, d in iter_jsonl(knowledge_path("literature/cards.jsonl")) if isinstance(d, LiteratureDocument)]


@lru_cache(maxsize=1)
def _sentence_vectors() -> tuple[list[str], np.ndarray]:
    """Every distinct card sentence and its MiniLM vector (embedded once per run)."""
    sentences = sorted({s for card in _card_documents() for s in split_sentences(card.text)})
    return sentences, embed_texts(sentences)


def synthetic_corpus(
    n: int, seed: int, embed_passages: bool
) -> list[tuple[LiteratureDocument, list[Chunk], np.ndarray]]:
    """``n`` one-passage documents recombined from the cards' sentences, with their vectors."""
    rng = random.Random(seed)
    cards = _card_documents()
    by_site: dict[str, list[tuple[LiteratureDocument, list[str]]]] = {}
    for card in cards:
        by_site.setdefault(card.tumour_type, []).append((card, split_sentences(card.text)))
    sentences, sentence_vectors = _sentence_vectors() if not embed_passages else ([], None)
    index = {s: i for i, s in enumerate(sentences)}
    sites = sorted(by_site)
    texts: list[str] = []
    picks: list[list[str]] = []
    docs: list[LiteratureDocument] = []
    for i in range(n):
        group = by_site[sites[i % len(sites)]]
        anchor, _ = rng.choice(group)
        chosen = [rng.choice(rng.choice(group)[1]) for _ in range(rng.randint(3, 6))]
        text = " ".join(chosen)
        picks.append(chosen)
        texts.append(text)
        docs.append(
            LiteratureDocument(
                doc_id=f"syn-{i:06d}",
                title=f"Synthetic passage {i} ({anchor.tumour_type})",
                text=text,
                source="synthetic",
                origin="bench",
                year=anchor.year,
                tumour_type=anchor.tumour_type,
                modalities=anchor.modalities,
                settings=anchor.settings,
                biomarkers=anchor.biomarkers,
                evidence_level=anchor.evidence_level,
            )
        )
    if embed_passages:
        vectors = embed_texts(texts)
    else:
        assert sentence_vectors is not None
        vectors = np.vstack([sentence_vectors[[index[s] for s in chosen]].mean(axis=0) for chosen in picks])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        (doc, [Chunk(seq=0, text=doc.text, n_tokens=count_tokens(doc.text))], vectors[i : i + 1])
        for i, doc in enumerate(docs)
    ]


def _database(root_url: str, name: str) -> Database:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(root_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(root_url)
    params["dbname"] = name
    return Database(make_conninfo("", **params))


def _drop(root_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(root_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_size(root_url: str, size: int, embed_passages: bool, now_year: int) -> dict[str, object]:
    """Load ``size`` synthetic passages into a fresh database and time the labelled queries."""
    name = f"oncoboard_bench_{size}_{uuid.uuid4().hex[:6]}"
    db = _database(root_url, name)
    try:
        db.migrate()
        store = LiteratureStore(db)
        started = time.perf_counter()
        corpus = synthetic_corpus(size, seed=size, embed_passages=embed_passages)
        generated = time.perf_counter() - started
        with db.transaction() as conn:
            conn.execute("DROP INDEX IF EXISTS literature_chunks_embedding")
        started = time.perf_counter()
        for offset in range(0, len(corpus), 5000):
            store.bulk_load(corpus[offset : offset + 5000])
        del corpus  # the serving process never holds the corpus; keep it out of the RSS figures
        gc.collect()
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        with db.connect(autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                "CREATE INDEX literature_chunks_embedding ON literature_chunks USING hnsw (embedding vector_cosine_ops)"
            )
            conn.execute("ANALYZE literature_chunks")
            conn.execute("ANALYZE literature_documents")
        indexed = time.perf_counter() - started
        queries = [q.to_query() for q in load_queries()]
        embed_query.cache_clear()
        rss_before_index = _current_rss()
        started = time.perf_counter()
        index = lexical_index(store)
        lexical_build = time.perf_counter() - started
        rss_index = _current_rss() - rss_before_index
        started = time.perf_counter()
        search_literature(store, queries[0], k=5, now_year=now_year)  # loads the model if needed
        warmup = time.perf_counter() - started
        latencies = _timed(store, queries[1:], now_year)
        # Second pass: every query vector is now cached, so this is the store-side cost alone.
        retrieval_only = _timed(store, queries[1:], now_year)
        embedding = sorted(_embedding_ms(q.english_text()) for q in queries[1:])
        recall = hnsw_recall_at_10(db, store, [q.english_text() for q in queries])
        store.close()
        sizes = relation_sizes(db)
        return {
            "passages": size,
            "queries": len(latencies),
            "median_ms": round(statistics.median(latencies), 1),
            "p95_ms": _p95(latencies),
            "query_embedding_median_ms": round(statistics.median(embedding), 1),
            "query_embedding_p95_ms": _p95(embedding),
            "retrieval_only_median_ms": round(statistics.median(retrieval_only), 1),
            "retrieval_only_p95_ms": _p95(retrieval_only),
            "generate_s": round(generated, 1),
            "load_s": round(loaded, 1),
            "load_passages_per_s": round(size / loaded) if loaded else None,
            "hnsw_build_s": round(indexed, 1),
            "ingest_passages_per_s": round(size / (loaded + indexed)) if loaded + indexed else None,
            "warmup_s": round(warmup, 1),
            "lexical_index_build_s": round(lexical_build, 1),
            "lexical_index_mb": round(index.nbytes() / 1e6, 1),
            "lexical_index_rss_growth_mb": round(rss_index / 1e6, 1),
            "hnsw_recall_at_10": recall,
            "rss_mb": round(_current_rss() / 1e6, 1),
            "peak_rss_mb": round(_peak_rss() / 1e6, 1),
            "postgres_mb": sizes,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "vectors": "model" if embed_passages else "mean of MiniLM sentence vectors",
            "query_encoder": "onnxruntime" if query_encoder() is not None else "pytorch",
        }
    finally:
        _drop(root_url, name)


def model_embedding_rate(n: int = 128) -> dict[str, object]:
    """Passages/s of MiniLM on synthetic passages: the rate real ingestion (which embeds) cannot exceed."""
    texts = [doc.text for doc, _chunks, _vectors in synthetic_corpus(n, seed=7, embed_passages=False)]
    embed_texts(texts[:8])  # loads the model
    started = time.perf_counter()
    embed_texts(texts)
    elapsed = time.perf_counter() - started
    return {"model_embedding": {"passages": n, "passages_per_s": round(n / elapsed, 1)}}


def _timed(store: LiteratureStore, queries: list[LiteratureQuery], now_year: int) -> list[float]:
    """End-to-end milliseconds of each query, sorted."""
    latencies = []
    for query in queries:
        t0 = time.perf_counter()
        search_literature(store, query, k=5, now_year=now_year)
        latencies.append((time.perf_counter() - t0) * 1000)
    return sorted(latencies)


def _embedding_ms(text: str) -> float:
    """Milliseconds the query encoder in use (ONNX Runtime, else PyTorch) takes for one query, uncached."""
    t0 = time.perf_counter()
    embed_query.__wrapped__(text)
    return (time.perf_counter() - t0) * 1000


def _p95(sorted_ms: list[float]) -> float:
    return round(sorted_ms[min(len(sorted_ms) - 1, int(0.95 * len(sorted_ms)))], 1)


def _peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss() -> int:
    """Current resident set size of this process in bytes."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def relation_sizes(db: Database) -> dict[str, float]:
    """Postgres sizes in MB: each literature table with its indexes and TOAST, the HNSW index alone, the database."""
    with db.connect() as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('literature_chunks') AS chunks_total,"
            " pg_relation_size('literature_chunks') AS chunks_heap,"
            " pg_relation_size('literature_chunks_embedding') AS hnsw_index,"
            " pg_total_relation_size('literature_documents') AS documents_total,"
            " pg_database_size(current_database()) AS database"
        ).fetchone()
    assert row is not None
    return {key: round(value / 1e6, 1) for key, value in row.items()}


def hnsw_recall_at_10(db: Database, store: LiteratureStore, texts: list[str]) -> float:
    """Share of the exact 10 nearest passages that the HNSW scan (as the retriever runs it) returns."""
    found = total = 0
    for vector in embed_texts(texts):
        approx = {chunk for chunk, _doc, _sim in store.dense_search(vector, 10)}
        with db.connect() as conn, conn.transaction():
            register_vector(conn)
            conn.execute("SET LOCAL enable_indexscan = off")
            exact = {
                r["chunk_id"]
                for r in conn.execute(
                    "SELECT chunk_id FROM literature_chunks ORDER BY embedding <=> %s LIMIT 10",
                    (np.asarray(vector, dtype=np.float32),),
                )
            }
        found += len(approx & exact)
        total += len(exact)
    return round(found / total, 3) if total else 0.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each requested size and print one JSON line per size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--data-dir", type=Path, default=None, help="Folder of the embedded Postgres.")
    parser.add_argument("--embed", action="store_true", help="Embed every synthetic passage with MiniLM.")
    parser.add_argument("--threads", type=int, default=1, help="Torch CPU threads.")
    parser.add_argument("--now-year", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    settings = get_settings()
    root = settings.database_url or embedded_url(args.data_dir or settings.data_dir)
    now_year = args.now_year or time.localtime().tm_year
    print(json.dumps(model_embedding_rate()), flush=True)
    for size in args.sizes:
        result = bench_size(root, size, args.embed, now_year)
        print(json.dumps(result), flush=True)  # the benchmark's output is its report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
