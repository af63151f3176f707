"""Foundation: encryption at rest, the hash-chained trace, migrations, settings."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from oncoboard.audit import TraceRecorder, load_trace, persist_events, verify_trace
from oncoboard.config import RunContext, Settings
from oncoboard.crypto import CryptoError, Keyring
from oncoboard.storage import Database


def test_keyring_round_trip_and_rotation(tmp_path: Path) -> None:
    ring = Keyring.from_settings(None, tmp_path)
    blob, key_id = ring.encrypt(b"Herr Meier, C34.1", b"ctx")
    assert b"Meier" not in blob
    assert ring.decrypt(blob, key_id, b"ctx") == b"Herr Meier, C34.1"
    with pytest.raises(CryptoError):
        ring.decrypt(blob, key_id, b"other-context")
    # A new active key from the environment still reads rows written under the file key.
    new_key = base64.b64encode(b"k" * 32).decode()
    rotated = Keyring.from_settings(new_key, tmp_path)
    assert rotated.active_id != key_id
    assert rotated.decrypt(blob, key_id, b"ctx") == b"Herr Meier, C34.1"
    blob2, key_id2 = rotated.encrypt(b"x")
    assert key_id2 == rotated.active_id


def test_keyring_refuses_short_key(tmp_path: Path) -> None:
    with pytest.raises(CryptoError):
        Keyring.from_settings(base64.b64encode(b"short").decode(), tmp_path)


def test_settings_refuse_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOBOARD_ENCRYPTION_KEY", "changeme")
    with pytest.raises(ValueError, match="placeholder"):
        Settings()


def test_run_context_from_settings() -> None:
    ctx = RunContext.from_settings(Settings(compliance_threshold=85), use_llm=False)
    assert ctx.compliance_threshold == 85 and ctx.max_iterations == 3 and ctx.use_llm is False


def test_migrations_are_idempotent(database: Database) -> None:
    again = Database(database.url)
    assert again.migrate() == []
    with database.connect() as conn:
        tables = {
            r["tablename"] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    assert {"cases", "reports", "trace_events", "traces", "schema_migrations"} <= tables


def _stored_trace(database: Database, ring: Keyring) -> TraceRecorder:
    rec = TraceRecorder(case_id="P-test")
    rec.record("node_start", "intake", {"state_keys": ["case"]})
    rec.record("tool_call", "stage_tumor", {"inputs": {"size_cm": 2.6}, "outputs": {"t": "T1c"}}, 1.5)
    rec.record("node_end", "intake", {"update": {"language": "en"}}, 3.0)
    with database.transaction() as conn:
        persist_events(conn, rec, ring)
    return rec


def test_trace_round_trip_and_verify(database: Database, tmp_path: Path) -> None:
    ring = Keyring.from_settings(None, tmp_path)
    rec = _stored_trace(database, ring)
    events = load_trace(database, ring, rec.trace_id)
    assert [e.name for e in events] == ["intake", "stage_tumor", "intake"]
    assert events[1].payload["outputs"] == {"t": "T1c"}
    assert events[2].prev_hash == events[1].hash
    result = verify_trace(database, ring, rec.trace_id)
    assert result.ok and result.n_events == 3


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE trace_events SET name = 'forged' WHERE trace_id = %s AND seq = 1",
        "UPDATE trace_events SET duration_ms = 0.1 WHERE trace_id = %s AND seq = 2",
        "DELETE FROM trace_events WHERE trace_id = %s AND seq = 2",
        "UPDATE trace_events SET payload = set_byte(payload, 20, get_byte(payload, 20) # 1)"
        " WHERE trace_id = %s AND seq = 0",
    ],
)
def test_trace_tampering_is_detected(database: Database, tmp_path: Path, tamper: str) -> None:
    ring = Keyring.from_settings(None, tmp_path)
    rec = _stored_trace(database, ring)
    with database.transaction() as conn:
        conn.execute(tamper, (rec.trace_id,))  # type: ignore[arg-type]
    result = verify_trace(database, ring, rec.trace_id)
    assert not result.ok
    assert result.problems


def test_listeners_see_events_in_sequence_order_under_concurrent_recording() -> None:
    """Parallel graph nodes record at once; a live reader resuming "after seq n" must never skip one."""
    import threading
    import time

    rec = TraceRecorder(case_id="P-order")
    seen: list[int] = []

    def slow_listener(event) -> None:  # type: ignore[no-untyped-def]
        # A listener that writes to a database takes time; without ordering, a later seq could overtake.
        time.sleep(0.001 if event.seq % 2 == 0 else 0)
        seen.append(event.seq)

    rec.listeners.append(slow_listener)
    threads = [
        threading.Thread(target=lambda i=i: [rec.record("tool_call", f"t{i}", {"n": n}) for n in range(25)])
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == list(range(200))
    assert [ev.seq for ev in rec.events] == seen
