"""Shared fixtures: one embedded Postgres per test session, one fresh database per test run."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from oncoboard.storage import Database, embedded_url

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def pg_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a Postgres server: ONCOBOARD_TEST_DATABASE_URL if set, else an embedded one."""
    url = os.environ.get("ONCOBOARD_TEST_DATABASE_URL")
    if url:
        return url
    # A folder of its own under /tmp: run as root, the embedded server loosens the permissions of
    # the folders above its data directory, which must not be pytest's private temp root.
    return embedded_url(Path(tempfile.mkdtemp(prefix="oncoboard-test-pg-")))


@pytest.fixture(scope="session")
def database(pg_root: str) -> Iterator[Database]:
    """A fresh, migrated database for this test run, dropped afterwards."""
    name = f"oncoboard_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_root, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(pg_root, name)
    db = Database(url)
    db.migrate()
    yield db
    with psycopg.connect(pg_root, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared dev corpora; tests that need them skip with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with an in-process tokenizer, saved like a real model directory."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
