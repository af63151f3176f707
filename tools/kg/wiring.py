"""The verifier the consult graph is wired with: a lazily opened, built-once graph store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from oncoboard.config import Settings
from oncoboard.domain import Findings, KGResult, Scheme, Tumor
from tools.kg.build import ensure_built, open_shared_store
from tools.kg.store import GraphStore, embeddings_path
from tools.kg.verify import Plausibility, verify

logger = logging.getLogger(__name__)


class GraphVerifier:
    """Opens the configured store on first use, builds it once, and runs :func:`verify`."""

    def __init__(self, settings: Settings, store: GraphStore | None = None) -> None:
        """Use ``store`` when given (tests), else the one the settings name, opened on first use."""
        self._settings = settings
        self._store = store
        self._embeddings: Plausibility | None = None
        self._embeddings_loaded = False
        self._lock = threading.Lock()

    @property
    def store(self) -> GraphStore:
        """The graph store, opened and built on first access."""
        with self._lock:
            if self._store is None:
                self._store = open_shared_store(self._settings)
            ensure_built(self._store)
            if not self._embeddings_loaded:
                # Embeddings are optional (trained by `oncoboard kg embed`); torch loads only if present.
                path = embeddings_path(self._settings.data_dir)
                if path.is_file():
                    from tools.kg.transe import TransEModel

                    self._embeddings = TransEModel.load(path)
                self._embeddings_loaded = True
            return self._store

    def verify(self, findings: Findings, tumors: Sequence[Tumor], schemes: Sequence[Scheme] | None = None) -> KGResult:
        """Links, conflicts with their graph paths, and context lines for the planner."""
        store = self.store
        return verify(
            store,
            findings,
            list(tumors),
            list(schemes) if schemes is not None else None,
            plausibility=self._embeddings,
        )

    def close(self) -> None:
        """Close the store if it was opened here."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def graph_verifier(settings: Settings) -> GraphVerifier:
    """The verifier for this process's settings (embedded graph unless NEO4J_URI is set)."""
    return GraphVerifier(settings)
