"""Schema migrations: applied once, safe when instances start together, refuse a newer schema."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from router.store import open_store
from router.store.base import Store, StoreError, StoreUnavailable
from router.store.migrations import LATEST_VERSION, MIGRATIONS, SQLITE_MIGRATIONS_TABLE
from tests.store.conftest import PG_DSN, Backend, checkout


async def versions(store: Store) -> list[int]:
    return await store.schema_versions()  # type: ignore[attr-defined,no-any-return]


async def test_open_twice_is_idempotent(backend: Backend) -> None:
    first = await backend.opened()
    await first.open()  # opening an open store is a no-op
    await first.create_checkout(checkout("kept"))
    await first.close()
    await first.close()
    second = await backend.opened()
    try:
        assert await versions(second) == [m.version for m in MIGRATIONS]
        assert MIGRATIONS[-1].version == LATEST_VERSION
        assert await second.get_checkout("kept") is not None
        await second.ping()
    finally:
        await second.close()


async def test_instances_starting_together(backend: Backend) -> None:
    stores = [backend.make() for _ in range(6)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        for store in stores:
            assert await versions(store) == [m.version for m in MIGRATIONS]
    finally:
        for store in stores:
            await store.close()


async def test_newer_schema_is_refused(backend: Backend, store: Store) -> None:
    await backend.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')")
    newer = backend.make()
    with pytest.raises(StoreError, match="newer"):
        await newer.open()
    with pytest.raises(StoreUnavailable):  # not left half-open
        await newer.get_checkout("x")


async def test_sqlite_file_and_parents_created_in_wal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///deep/er/store.db")  # relative to the working directory
    await store.open()
    await store.close()
    path = tmp_path / "deep" / "er" / "store.db"
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_memory(tmp_path: Path) -> None:
    store = open_store("sqlite:///:memory:")
    await store.open()
    try:
        await store.create_checkout(checkout("m"))
        assert await store.get_checkout("m") is not None
    finally:
        await store.close()


async def test_postgres_tables_live_in_the_requested_schema(pg_backend: Backend) -> None:
    store = await pg_backend.opened()
    await store.close()
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            pg_backend.schema,
        )
    finally:
        await conn.close()
    assert {"checkouts", "outbox", "schema_migrations"} <= {row["table_name"] for row in rows}


async def test_an_event_written_before_the_cause_columns_is_still_delivered(tmp_path: Path) -> None:
    """A database of the release before migration 4, with an event waiting: after the upgrade the event
    is claimed as before, with no cause (request id, traceparent) to send."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(SQLITE_MIGRATIONS_TABLE)
        for migration in (m for m in MIGRATIONS if m.version < 4):
            for text in migration.sqlite:
                conn.execute(text)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                         (migration.version, migration.name))
        conn.execute("""INSERT INTO checkouts (ref, merchant_reference, amount, currency, payment_intent,
            can_handle_pending, created_at, expires_at, state, updated_at, version)
            VALUES ('old', 'order-old', '14.00', 'USD', 'Confirm', 0, 1, 99999, 'completed', 2, 1)""")
        conn.execute("""INSERT INTO outbox (id, ref, type, created, body, status, attempts, next_attempt_at)
            VALUES ('ev-old', 'old', 'checkout.completed', 2, x'7b7d', 'pending', 0, 2)""")
    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        assert await versions(store) == [m.version for m in MIGRATIONS]
        [claimed] = await store.claim_events("w", now=10.0, lease_ttl=30.0, limit=5)
        assert (claimed.id, claimed.body, claimed.request_id, claimed.traceparent) == ("ev-old", b"{}", None, None)
    finally:
        await store.close()
