"""Wiring of the process: settings -> database, keyring, language model, retriever, graph store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from graphs.service import ConsultService
from oncoboard.config import Settings, get_settings
from oncoboard.crypto import Keyring
from oncoboard.domain import EvidenceHit, Findings, Tumor
from oncoboard.llm import LanguageModel, NoModel
from oncoboard.storage import Database

logger = logging.getLogger(__name__)


def open_database(settings: Settings | None = None) -> Database:
    """The configured (or embedded) database, migrated."""
    settings = settings or get_settings()
    db = Database.from_settings(settings.database_url, settings.data_dir)
    db.migrate()
    return db


def open_keyring(settings: Settings | None = None) -> Keyring:
    """The data-at-rest keyring."""
    settings = settings or get_settings()
    key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    return Keyring.from_settings(key, settings.data_dir)


def open_llm(settings: Settings | None = None, *, no_llm: bool = False) -> LanguageModel:
    """The configured language model (``NoModel`` when switched off)."""
    settings = settings or get_settings()
    if no_llm or settings.llm_backend == "none":
        return NoModel()
    from oncoboard.llm.factory import build_llm

    return build_llm(settings)


class StoreRetriever:
    """The literature searcher's backend: the Postgres evidence store, seeded on first use."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._store: Any = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The evidence store (seeded with the shipped cards when empty)."""
        with self._lock:
            if self._store is None:
                from tools.literature.store import LiteratureStore

                store = LiteratureStore(self.db)
                store.ensure_seeded()
                self._store = store
            return self._store

    def retrieve(
        self, findings: Findings, tumors: Sequence[Tumor], *, k: int, recency_years: int
    ) -> tuple[str, list[EvidenceHit]]:
        """Query terms from the findings, then hybrid retrieval."""
        from tools.literature.query import query_from_findings
        from tools.literature.retrieve import search_literature

        query = query_from_findings(findings, tumors)
        hits = search_literature(self.store, query, k, recency_years=recency_years)
        return query.english_text(), hits


def prepare(settings: Settings | None = None) -> dict[str, Any]:
    """Prepare the embedded stores: migrations, the evidence store, the knowledge graph."""
    settings = settings or get_settings()
    db = open_database(settings)
    retriever = StoreRetriever(db)
    from tools.kg.build import open_shared_store

    stats = retriever.store.stats()
    graph = open_shared_store(settings)
    try:
        graph_stats = graph.stats()
    finally:
        graph.close()
    open_keyring(settings)
    return {"literature": stats, "kg": graph_stats}


def warm_service(service: ConsultService) -> dict[str, float] | None:
    """Load what the first consultation would otherwise wait for (the lexical index, the query encoder).

    Returns the warm-up timings, or None when the service has no literature store.
    """
    if not isinstance(service.retriever, StoreRetriever):
        return None
    from tools.literature.retrieve import warm_up

    timings = warm_up(service.retriever.store)
    logger.info(
        "literature warmed up: %d passages indexed in %.1f s, encoder loaded in %.1f s",
        timings["passages"],
        timings["lexical_index_s"],
        timings["encoder_s"],
    )
    return timings


@lru_cache(maxsize=4)
def build_service(no_llm: bool = False) -> ConsultService:
    """The consult service for this process."""
    settings = get_settings()
    db = open_database(settings)
    from tools.kg.wiring import GraphVerifier

    return ConsultService(
        db=db,
        keyring=open_keyring(settings),
        llm=open_llm(settings, no_llm=no_llm),
        retriever=StoreRetriever(db),
        verifier=GraphVerifier(settings),
    )
