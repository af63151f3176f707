"""Postgres/pgvector persistence of literature documents and their embedded passages.

Tables come from ``oncoboard/migrations/0200_literature.sql``. Documents carry the metadata the
retriever filters on (tumour type -> modality -> evidence level, then biomarkers, settings, tags
and year); passages carry MiniLM embeddings under an HNSW cosine index. Every write bumps a
generation counter so per-process lexical indexes can tell when they are stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import tuple_row

from oncoboard.knowledge import knowledge_path
from oncoboard.storage import Database

from .chunking import Chunk
from .lexical import DocumentFilterRow

logger = logging.getLogger(__name__)

SHIPPED_CARDS = "literature/cards.jsonl"
SHIPPED_SOURCE_KEY = "knowledge:literature/cards.jsonl"
_DOC_COLUMNS = (
    "doc_id, title, norm_title, year, tumour_type, modality, modalities, settings, biomarkers, drugs,"
    " population_tags, tags, evidence_level, trial, language, source, origin, content_hash, pmid, doi, body"
)
_SEED_LOCK_KEY = 0x11E7C4D5
_CHUNK_COLUMNS = "chunk_id, doc_id, seq, text, n_tokens, embedding"


def normalise_title(title: str) -> str:
    """Title key for de-duplication: accents folded, case and punctuation dropped."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", " ", folded.lower()).strip()


@dataclass(frozen=True)
class LiteratureDocument:
    """One evidence document (a card, an abstract) with its retrieval metadata."""

    doc_id: str
    title: str
    text: str
    source: str
    origin: str
    year: int | None = None
    tumour_type: str = "other"
    modalities: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    biomarkers: tuple[str, ...] = ()
    drugs: tuple[str, ...] = ()
    population_tags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    evidence_level: str | None = None
    trial: str | None = None
    language: str = "en"
    pmid: str | None = None
    doi: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def norm_title(self) -> str:
        """The de-duplication key of the title."""
        return normalise_title(self.title)

    @property
    def content_hash(self) -> str:
        """SHA-256 over the record's content (not where it was read from)."""
        payload = {"title": self.title, "text": self.text, "body": self.body}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class DocumentMeta:
    """The metadata of a stored document the retriever needs for filtering and weighting."""

    doc_id: str
    title: str
    year: int | None
    tumour_type: str
    modalities: tuple[str, ...]
    settings: tuple[str, ...]
    biomarkers: tuple[str, ...]
    evidence_level: str | None
    language: str


class LiteratureStore:
    """The literature tables of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._conn_lock = threading.Lock()
        self._seeded_hash: str | None = None
        self._session_settings: dict[str, str] = {}

    # ------------------------------------------------------------------ connections

    def _reader(self) -> psycopg.Connection[dict[str, Any]]:
        """A long-lived autocommit connection for queries (saves a connect per search)."""
        if self._conn is None or self._conn.closed:
            self._conn = self.db.connect(autocommit=True)
            register_vector(self._conn)
            self._session_settings = {}
        return self._conn

    def _set_session(self, conn: psycopg.Connection[dict[str, Any]], name: str, value: str) -> None:
        """Set a session parameter on the reader unless it already holds that value (saves round trips)."""
        if self._session_settings.get(name) != value:
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
            self._session_settings[name] = value

    def close(self) -> None:
        """Close the cached read connection."""
        with self._conn_lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._conn = None

    def _query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, binary: bool = False
    ) -> list[dict[str, Any]]:
        with self._conn_lock:
            conn = self._reader()
            try:
                return conn.execute(sql, params, binary=binary).fetchall()  # type: ignore[arg-type]
            except psycopg.OperationalError:
                # A dropped connection (server restart) is retried once on a fresh one.
                self._conn = None
                return self._reader().execute(sql, params, binary=binary).fetchall()  # type: ignore[arg-type]

    # ------------------------------------------------------------------ state

    def generation(self) -> int:
        """The write generation; changes whenever documents or passages change."""
        rows = self._query("SELECT generation FROM literature_state WHERE id = 1")
        return int(rows[0]["generation"]) if rows else 0

    def count_documents(self) -> int:
        """Number of stored documents."""
        return int(self._query("SELECT count(*) AS n FROM literature_documents")[0]["n"])

    # ------------------------------------------------------------------ lookups used by ingestion

    def existing(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """``doc_id -> content_hash`` of those ids already stored."""
        ids = list(doc_ids)
        if not ids:
            return {}
        rows = self._query("SELECT doc_id, content_hash FROM literature_documents WHERE doc_id = ANY(%s)", (ids,))
        return {r["doc_id"]: r["content_hash"] for r in rows}

    def duplicate_of(self, doc: LiteratureDocument) -> tuple[str, str] | None:
        """Another stored document that is the same publication: ``(doc_id, matched_on)``."""
        checks: list[tuple[str, str, Any]] = []
        if doc.pmid:
            checks.append(("pmid", "pmid = %s", doc.pmid))
        if doc.doi:
            checks.append(("doi", "lower(doi) = lower(%s)", doc.doi))
        if doc.norm_title:
            checks.append(("title", "norm_title = %s", doc.norm_title))
        for label, cond, value in checks:
            rows = self._query(
                f"SELECT doc_id FROM literature_documents WHERE {cond} AND doc_id <> %s LIMIT 1",
                (value, doc.doc_id),
            )
            if rows:
                return rows[0]["doc_id"], label
        return None

    # ------------------------------------------------------------------ writes

    def write_documents(self, items: Sequence[tuple[LiteratureDocument, Sequence[Chunk], np.ndarray]]) -> None:
        """Insert or replace documents with their passages and embeddings in one transaction."""
        if not items:
            return
        with self.db.transaction() as conn:
            register_vector(conn)
            for doc, chunks, vectors in items:
                if len(chunks) != len(vectors):
                    raise ValueError(f"{doc.doc_id}: {len(chunks)} chunks but {len(vectors)} vectors")
                conn.execute("DELETE FROM literature_documents WHERE doc_id = %s", (doc.doc_id,))
                conn.execute(
                    f"INSERT INTO literature_documents ({_DOC_COLUMNS}) VALUES ({', '.join(['%s'] * 21)})",
                    (
                        doc.doc_id, doc.title, doc.norm_title, doc.year, doc.tumour_type,
                        doc.modalities[0] if doc.modalities else None, list(doc.modalities),
                        list(doc.settings), list(doc.biomarkers), list(doc.drugs), list(doc.population_tags),
                        list(doc.tags), doc.evidence_level, doc.trial, doc.language, doc.source, doc.origin,
                        doc.content_hash, doc.pmid, doc.doi, json.dumps(doc.body, ensure_ascii=False),
                    ),
                )  # fmt: skip
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO literature_chunks ({_CHUNK_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                        [
                            (f"{doc.doc_id}#{c.seq}", doc.doc_id, c.seq, c.text, c.n_tokens, np.asarray(v))
                            for c, v in zip(chunks, vectors, strict=True)
                        ],
                    )
            conn.execute("UPDATE literature_state SET generation = generation + 1 WHERE id = 1")

    def bulk_load(self, items: Sequence[tuple[LiteratureDocument, Sequence[Chunk], np.ndarray]]) -> None:
        """Append many new documents with COPY (no replace, no de-duplication): for large corpora."""
        if not items:
            return
        with self.db.transaction() as conn:
            register_vector(conn)
            with conn.cursor() as cur:
                with cur.copy(f"COPY literature_documents ({_DOC_COLUMNS}) FROM STDIN") as copy:
                    for doc, _chunks, _vectors in items:
                        copy.write_row(
                            (
                                doc.doc_id, doc.title, doc.norm_title, doc.year, doc.tumour_type,
                                doc.modalities[0] if doc.modalities else None, list(doc.modalities),
                                list(doc.settings), list(doc.biomarkers), list(doc.drugs),
                                list(doc.population_tags), list(doc.tags), doc.evidence_level, doc.trial,
                                doc.language, doc.source, doc.origin, doc.content_hash, doc.pmid, doc.doi,
                                json.dumps(doc.body, ensure_ascii=False),
                            )
                        )  # fmt: skip
                with cur.copy(f"COPY literature_chunks ({_CHUNK_COLUMNS}) FROM STDIN") as copy:
                    for doc, chunks, vectors in items:
                        for chunk, vector in zip(chunks, vectors, strict=True):
                            chunk_id = f"{doc.doc_id}#{chunk.seq}"
                            row = (
                                chunk_id,
                                doc.doc_id,
                                chunk.seq,
                                chunk.text,
                                chunk.n_tokens,
                                _vector_text(vector),
                            )
                            copy.write_row(row)
            conn.execute("UPDATE literature_state SET generation = generation + 1 WHERE id = 1")

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (and their passages); returns how many were removed."""
        if not doc_ids:
            return 0
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM literature_documents WHERE doc_id = ANY(%s)", (list(doc_ids),))
            conn.execute("UPDATE literature_state SET generation = generation + 1 WHERE id = 1")
            return cur.rowcount

    def register_source(self, key: str, kind: str, sha256: str | None) -> None:
        """Remember a source for ``update()`` with the hash of its content as last ingested."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO literature_sources (path, kind, last_ingested_at, last_sha256)"
                " VALUES (%s, %s, now(), %s) ON CONFLICT (path) DO UPDATE"
                " SET kind = EXCLUDED.kind, last_ingested_at = now(), last_sha256 = EXCLUDED.last_sha256",
                (key, kind, sha256),
            )

    def sources(self) -> list[dict[str, Any]]:
        """Registered sources: path, kind, last_sha256."""
        return self._query("SELECT path, kind, last_sha256 FROM literature_sources ORDER BY path")

    def source_hash(self, key: str) -> str | None:
        """The content hash a source had when it was last ingested."""
        rows = self._query("SELECT last_sha256 FROM literature_sources WHERE path = %s", (key,))
        return rows[0]["last_sha256"] if rows else None

    # ------------------------------------------------------------------ reads used by retrieval

    def all_passages(self) -> list[dict[str, Any]]:
        """Every passage (chunk_id, doc_id, text) in a stable order, for the lexical index."""
        return self._query("SELECT chunk_id, doc_id, text FROM literature_chunks ORDER BY chunk_id")

    @contextmanager
    def snapshot(self) -> Iterator[StoreSnapshot]:
        """A consistent read-only view (one repeatable-read transaction) for building indexes."""
        with self.db.connect() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                yield StoreSnapshot(conn)

    def document_meta(self, doc_ids: Sequence[str] | None = None) -> dict[str, DocumentMeta]:
        """Metadata of the given documents (all when ``doc_ids`` is None)."""
        sql = (
            "SELECT doc_id, title, year, tumour_type, modalities, settings, biomarkers, evidence_level,"
            " language FROM literature_documents"
        )
        rows = self._query(sql) if doc_ids is None else self._query(sql + " WHERE doc_id = ANY(%s)", (list(doc_ids),))
        return {r["doc_id"]: _meta_from_row(r) for r in rows}

    def candidates(self, doc_ids: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, DocumentMeta]]:
        """Passage embeddings (``doc_id -> (n_chunks, 384)``) and metadata of the given documents.

        One round trip instead of :meth:`passage_vectors` plus :meth:`document_meta`: on a busy
        machine every round trip waits for the server process to be scheduled.
        """
        if not doc_ids:
            return {}, {}
        rows = self._query(
            "SELECT c.doc_id, c.embedding, d.title, d.year, d.tumour_type, d.modalities, d.settings, d.biomarkers,"
            " d.evidence_level, d.language FROM literature_chunks c JOIN literature_documents d ON d.doc_id = c.doc_id"
            " WHERE c.doc_id = ANY(%s) ORDER BY c.doc_id, c.seq",
            (list(doc_ids),),
            binary=True,
        )
        grouped: dict[str, list[np.ndarray]] = {}
        meta: dict[str, DocumentMeta] = {}
        for r in rows:
            grouped.setdefault(r["doc_id"], []).append(_as_array(r["embedding"]))
            if r["doc_id"] not in meta:
                meta[r["doc_id"]] = _meta_from_row(r)
        return {d: np.vstack(v) for d, v in grouped.items()}, meta

    def dense_search(
        self,
        vector: np.ndarray,
        limit: int,
        *,
        site: str | None = None,
        min_year: int | None = None,
        levels: Sequence[str] = (),
        settings: Sequence[str] = (),
        ef_search: int = 100,
    ) -> list[tuple[str, str, float]]:
        """Nearest passages by cosine similarity: ``(chunk_id, doc_id, similarity)``, best first.

        Metadata filters are applied inside the index scan (pgvector iterative scan), so a
        selective filter still returns up to ``limit`` rows.
        """
        where, params = _filters(site=site, min_year=min_year, levels=levels, settings=settings)
        sql = (
            "SELECT c.chunk_id, c.doc_id, 1 - (c.embedding <=> %(v)s) AS sim FROM literature_chunks c"
            + (" JOIN literature_documents d ON d.doc_id = c.doc_id WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY c.embedding <=> %(v)s LIMIT %(limit)s"
        )
        params.update({"v": np.asarray(vector, dtype=np.float32), "limit": limit})
        with self._conn_lock:
            conn = self._reader()
            # The reader connection serves only this store, so the scan settings can stay on the
            # session instead of costing a transaction and two SETs per query.
            self._set_session(conn, "hnsw.ef_search", str(int(ef_search)))
            self._set_session(conn, "hnsw.iterative_scan", "relaxed_order")
            rows = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
        return [(r["chunk_id"], r["doc_id"], float(r["sim"])) for r in rows]

    def passage_vectors(self, doc_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """``doc_id -> (n_chunks, 384)`` embeddings of the given documents."""
        if not doc_ids:
            return {}
        # Binary transfer: parsing pgvector's text form in Python costs ~0.4 ms per vector.
        rows = self._query(
            "SELECT doc_id, embedding FROM literature_chunks WHERE doc_id = ANY(%s) ORDER BY doc_id, seq",
            (list(doc_ids),),
            binary=True,
        )
        grouped: dict[str, list[np.ndarray]] = {}
        for r in rows:
            grouped.setdefault(r["doc_id"], []).append(_as_array(r["embedding"]))
        return {d: np.vstack(v) for d, v in grouped.items()}

    def stats(self) -> dict[str, Any]:
        """Counts: documents, chunks, documents by year, by evidence level, by tumour type and by source."""

        def grouped(column: str) -> dict[str, int]:
            rows = self._query(
                f"SELECT coalesce({column}::text, 'unknown') AS k, count(*) AS n FROM literature_documents"
                f" GROUP BY 1 ORDER BY 1"
            )
            return {r["k"]: int(r["n"]) for r in rows}

        return {
            "documents": self.count_documents(),
            "chunks": int(self._query("SELECT count(*) AS n FROM literature_chunks")[0]["n"]),
            "by_year": grouped("year"),
            "by_level": grouped("evidence_level"),
            "by_tumour_type": grouped("tumour_type"),
            "by_source": grouped("source"),
            "generation": self.generation(),
        }

    # ------------------------------------------------------------------ seeding

    def ensure_seeded(self) -> bool:
        """Load the shipped evidence cards unless this store already holds their current edition.

        Returns True when cards were (re)loaded. The check is one indexed row read plus a hash of
        the shipped file, and is skipped entirely once this store object has confirmed it.
        """
        path = knowledge_path(SHIPPED_CARDS)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if self._seeded_hash == digest:
            return False
        if self.source_hash(SHIPPED_SOURCE_KEY) == digest:
            self._seeded_hash = digest
            return False
        from .ingest import ingest_shipped_cards  # ingestion builds on the store, not the reverse

        # Processes starting together seed one at a time; the later ones find the work done.
        with self.db.connect(autocommit=True) as lock_conn:
            lock_conn.execute("SELECT pg_advisory_lock(%s)", (_SEED_LOCK_KEY,))
            try:
                if self.source_hash(SHIPPED_SOURCE_KEY) != digest:
                    summary = ingest_shipped_cards(self)
                    logger.info("seeded literature store: %s", summary.as_dict())
                    seeded = True
                else:
                    seeded = False
            finally:
                lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_SEED_LOCK_KEY,))
        self._seeded_hash = digest
        return seeded


class StoreSnapshot:
    """Streaming reads inside one consistent transaction (see :meth:`LiteratureStore.snapshot`)."""

    _BATCH = 5000

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def generation(self) -> int:
        """The write generation as of this snapshot."""
        row = self._conn.execute("SELECT generation FROM literature_state WHERE id = 1").fetchone()
        return int(row["generation"]) if row else 0

    def passages(self) -> Iterator[tuple[str, str]]:
        """Every passage as ``(doc_id, text)`` in chunk-id order, streamed through a server-side cursor."""
        with self._conn.cursor(name="literature_passages", row_factory=tuple_row) as cur:
            cur.itersize = self._BATCH
            cur.execute("SELECT doc_id, text FROM literature_chunks ORDER BY chunk_id")
            yield from cur

    def filter_rows(self) -> Iterator[DocumentFilterRow]:
        """The filterable metadata of every document, streamed."""
        with self._conn.cursor(name="literature_filter_rows", row_factory=tuple_row) as cur:
            cur.itersize = self._BATCH
            cur.execute("SELECT doc_id, tumour_type, year, evidence_level, settings FROM literature_documents")
            for doc_id, tumour_type, year, level, settings in cur:
                yield DocumentFilterRow(doc_id, tumour_type, year, level, tuple(settings))


def _filters(
    *, site: str | None, min_year: int | None, levels: Sequence[str], settings: Sequence[str]
) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions on ``literature_documents d`` for the retriever's metadata filters."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if site:
        where.append("d.tumour_type = %(site)s")
        params["site"] = site
    if min_year is not None:
        where.append("d.year >= %(min_year)s")
        params["min_year"] = min_year
    if levels:
        where.append("d.evidence_level = ANY(%(levels)s)")
        params["levels"] = list(levels)
    if settings:
        where.append("d.settings && %(settings)s")
        params["settings"] = list(settings)
    return where, params


def _meta_from_row(r: dict[str, Any]) -> DocumentMeta:
    """A :class:`DocumentMeta` from a row holding the document's metadata columns."""
    return DocumentMeta(
        doc_id=r["doc_id"],
        title=r["title"],
        year=r["year"],
        tumour_type=r["tumour_type"],
        modalities=tuple(r["modalities"]),
        settings=tuple(r["settings"]),
        biomarkers=tuple(r["biomarkers"]),
        evidence_level=r["evidence_level"],
        language=r["language"],
    )


def _as_array(value: Any) -> np.ndarray:
    """A pgvector value (``Vector`` or array) as a float32 numpy vector."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy else value, dtype=np.float32)


def _vector_text(vector: np.ndarray) -> str:
    """pgvector's text form of a vector, for COPY."""
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"
