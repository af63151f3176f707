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
fusion and re-scoring. Median and p95 latencies are printed as one JSON object per size.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
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
from tools.literature.embed import embed_texts  # noqa: E402
from tools.literature.ingest import iter_jsonl  # noqa: E402
from tools.literature.retrieve import search_literature  # noqa: E402
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
        started = time.perf_counter()
        search_literature(store, queries[0], k=5, now_year=now_year)  # builds the BM25 index, loads the model
        warmup = time.perf_counter() - started
        latencies = []
        for query in queries[1:]:
            t0 = time.perf_counter()
            search_literature(store, query, k=5, now_year=now_year)
            latencies.append((time.perf_counter() - t0) * 1000)
        latencies.sort()
        recall = hnsw_recall_at_10(db, store, [q.english_text() for q in queries])
        store.close()
        return {
            "passages": size,
            "queries": len(latencies),
            "median_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
            "generate_s": round(generated, 1),
            "load_s": round(loaded, 1),
            "hnsw_build_s": round(indexed, 1),
            "warmup_s": round(warmup, 1),
            "hnsw_recall_at_10": recall,
            "vectors": "model" if embed_passages else "mean of MiniLM sentence vectors",
        }
    finally:
        _drop(root_url, name)


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
    for size in args.sizes:
        result = bench_size(root, size, args.embed, now_year)
        print(json.dumps(result), flush=True)  # the benchmark's output is its report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
