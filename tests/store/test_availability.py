"""Failures become StoreUnavailable, quickly; the PostgreSQL pool recovers by itself."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from router.app import create_app
from router.checkout.model import State
from router.redact import error_text
from router.store import open_store
from router.store.base import StoreUnavailable
from router.store.sqlite import SQLiteStore
from router.web.demo import demo_settings
from tests.store.tcp_proxy import TcpProxy
from tests.support import free_port, serve_app
from tests.support.processes import return_path
from tests.support.stores import PG_DSN, Backend, checkout, postgres_backend, postgres_problem


async def test_postgres_unreachable_fails_fast() -> None:
    store = open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await store.open()
    assert time.monotonic() - started < 3
    with pytest.raises(StoreUnavailable):  # never opened: every call says so
        await store.get_checkout("x")
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_postgres_outage_then_recovery() -> None:
    target = urlsplit(PG_DSN)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    userinfo = target.netloc.rpartition("@")[0]
    proxied = target._replace(
        netloc=f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    ).geturl()
    try:
        async with postgres_backend(proxied) as backend:
            store = await backend.opened()
            try:
                await store.create_checkout(checkout("x"))
                await proxy.stop()  # the server "crashes": connections cut, nothing listens
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await store.get_checkout("x")
                with pytest.raises(StoreUnavailable):
                    await store.try_lease("x", "w", now=1.0, ttl=5.0)
                with pytest.raises(StoreUnavailable):
                    await store.ping()
                assert time.monotonic() - started < 3
                await proxy.start()  # back on the same port
                await store.ping()
                assert await store.try_lease("x", "w", now=1.0, ttl=5.0) is not None
            finally:
                await store.close()
    finally:
        await proxy.stop()


async def test_sqlite_locked_beyond_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}?busy_timeout=0.2")
    await store.open()
    try:
        await store.create_checkout(checkout("x"))
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.try_lease("x", "w", now=1.0, ttl=5.0)
            assert 0.15 < time.monotonic() - started < 2
            assert await store.get_checkout("x") is not None  # WAL: readers are not blocked
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert await store.try_lease("x", "w", now=1.0, ttl=5.0) is not None
    finally:
        await store.close()


async def test_sqlite_unopenable_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        await open_store(f"sqlite:///{tmp_path / 'file' / 'store.db'}").open()


async def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite file, not at all" * 100)
    store = open_store(f"sqlite:///{path}")
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.get_checkout("x")


async def test_postgres_turned_away_is_unavailable() -> None:
    problem = await postgres_problem()
    if problem:
        pytest.skip(problem)
    target = urlsplit(PG_DSN)
    store = open_store(target._replace(path="/rr_no_such_database").geturl())
    with pytest.raises(StoreUnavailable, match="does not exist"):
        await store.open()


async def _waiting_on(blocker: asyncpg.Connection) -> list[int]:
    """The backends waiting for a lock `blocker` holds (the store's, in the test's own schema)."""
    for _ in range(200):
        await blocker.execute("SELECT pg_stat_clear_snapshot()")  # else read once per transaction, cached
        pids = [row["pid"] for row in await blocker.fetch(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", blocker.get_server_pid())]
        if pids:
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError("the store's call never waited for the lock")


async def test_postgres_connection_killed_inside_a_transaction_is_unavailable(pg_backend: Backend) -> None:
    """Terminated mid-transaction (a DBA, a failover), as when storing Amazon's answer: asyncpg raises an
    InterfaceError leaving the transaction, which was a 500 for the buyer who had just paid."""
    store = await pg_backend.opened()
    blocker = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_backend.schema or ""})
    try:
        await store.create_checkout(checkout("x"))
        for call in (lambda: store.bind_and_lease("x", "S01-0000000-0000000", "w", 1.0, 60.0),
                     lambda: store.transition("x", owner=None, now=2.0, state=State.COMPLETED)):
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE checkouts IN ACCESS EXCLUSIVE MODE")
                pending = asyncio.ensure_future(call())
                for pid in await _waiting_on(blocker):
                    await blocker.execute("SELECT pg_terminate_backend($1)", pid)
                with pytest.raises(StoreUnavailable):
                    await pending
        assert await store.try_lease("x", "w", now=3.0, ttl=5.0) is not None  # the pool recovered
    finally:
        await blocker.close()
        await store.close()


async def test_postgres_lock_timeout_is_unavailable(pg_backend: Backend) -> None:
    """An operator's lock_timeout (a URL parameter, or set on the role) running out is a 503 that passes,
    not a 500; parameters in the URL other than schema reach the server as its settings."""
    writable = await pg_backend.opened()
    await writable.create_checkout(checkout("x"))
    store = open_store(f"{pg_backend.url}&lock_timeout=200")
    await store.open()
    blocker = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_backend.schema or ""})
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE checkouts, heartbeat IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailable, match="LockNotAvailable"):
                await store.bind_and_lease("x", "S01-0000000-0000000", "w", 1.0, 60.0)
            with pytest.raises(StoreUnavailable, match="LockNotAvailable"):
                await store.check_writable(now=1.0, timeout=10.0)
        assert await store.try_lease("x", "w", now=2.0, ttl=5.0) is not None
    finally:
        await blocker.close()
        await store.close()
        await writable.close()


async def test_postgres_read_only_server_is_unavailable(pg_backend: Backend) -> None:
    """A standby, or the primary during a failover, refuses writes with SQLSTATE 25006: a 503, not a 500.
    The server is shared with other tests, so the refusal comes from a trigger in this test's schema
    raising that very SQLSTATE instead of from the server's read-only mode."""
    store = await pg_backend.opened()
    try:
        await store.create_checkout(checkout("x"))
        await pg_backend.execute("""
            CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                RAISE EXCEPTION 'cannot execute UPDATE in a read-only transaction'
                    USING ERRCODE = 'read_only_sql_transaction';
            END $$;
            CREATE TRIGGER read_only BEFORE INSERT OR UPDATE ON checkouts FOR EACH ROW EXECUTE FUNCTION refuse();
            CREATE TRIGGER read_only BEFORE INSERT OR UPDATE ON heartbeat FOR EACH ROW EXECUTE FUNCTION refuse()""")
        with pytest.raises(StoreUnavailable, match="ReadOnlySQLTransaction"):
            await store.bind_and_lease("x", "S01-0000000-0000000", "w", 1.0, 60.0)
        with pytest.raises(StoreUnavailable, match="ReadOnlySQLTransaction"):
            await store.check_writable(now=1.0)
        with pytest.raises(StoreUnavailable, match="ReadOnlySQLTransaction"):
            await store.create_checkout(checkout("y"))
        assert (await store.get_checkout("x")) is not None  # reads still work
    finally:
        await store.close()


async def test_postgres_sessions_idle_in_a_transaction_are_ended_by_the_server(pg_backend: Backend) -> None:
    """A holder frozen mid-transaction (SIGSTOP, a paused VM) keeps its row locks while its connection is
    up: the server ends it after the idle-in-transaction timeout (10 s unless the URL sets one), and the
    next holder goes on."""
    default = await pg_backend.opened()
    frozen = open_store(f"{pg_backend.url}&idle_in_transaction_session_timeout=1s")
    await frozen.open()
    try:
        async with default._connection() as conn:  # type: ignore[attr-defined]
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "10s"
        await default.create_checkout(checkout("x"))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            async with frozen._connection() as conn, conn.transaction():  # type: ignore[attr-defined]
                await conn.execute("SELECT 1 FROM checkouts WHERE ref = 'x' FOR UPDATE")
                # frozen here, the row locked: the other instance's lease waits for the server's timeout
                assert await default.try_lease("x", "w", now=1.0, ttl=5.0) is not None
        assert 0.8 < time.monotonic() - started < 10
        await frozen.ping()  # the pool replaced the ended connection
    finally:
        await frozen.close()
        await default.close()


@pytest.mark.parametrize(("offset", "said"), [(30.0, "30.0 s ahead of"), (-30.0, "30.0 s behind"), (0.0, None)])
async def test_a_host_clock_off_from_the_database_servers_is_warned_of(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, offset: float,
    said: str | None,
) -> None:
    """Finalize leases run on the server's clock (test_lease_clock.py), but the other times an instance writes
    (checkout windows, retries, webhook leases) are its own: a clock 30 s off is said at open."""
    real = time.time
    monkeypatch.setattr("router.store.postgres.time.time", lambda: real() + offset)
    store = open_store(pg_backend.url)
    with caplog.at_level(logging.WARNING, logger="router.store.postgres"):
        await store.open()
    await store.close()
    warned = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    if said is None:
        assert warned == []
    else:
        assert len(warned) == 1 and f"this host's clock is {said} the database server's" in warned[0], warned


class FullDisk(SQLiteStore):
    """A real SQLITE_FULL: the file may not grow past the pages it has once migrated, as on a full disk."""

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn


async def _full_disk_error(tmp_path: Path) -> StoreUnavailable:
    store = FullDisk(tmp_path / "router.db")
    await store.open()
    try:
        for i in range(1000):
            await store.create_checkout(checkout(f"ref-{i:04d}-" + "x" * 200))
    except StoreUnavailable as exc:
        return exc
    finally:
        await store.close()
    raise AssertionError("the file never filled up")


async def test_the_cause_of_a_full_disk_is_in_the_error_text(tmp_path: Path) -> None:
    """What the log says of a store failure: SQLite's own words, not only "StoreUnavailable"."""
    text = error_text(await _full_disk_error(tmp_path))
    assert text.startswith("StoreUnavailable: SQLite database ") and text.endswith("database or disk is full")


async def test_postgres_errors_in_the_error_text_keep_their_class_and_drop_the_password() -> None:
    problem = await postgres_problem()
    if problem:
        pytest.skip(problem)
    target = urlsplit(PG_DSN)
    user = target.username or "postgres"
    secret = "Hunter2-s3cret-never-logged"
    with_password = target._replace(netloc=f"{user}:{secret}@{target.hostname}:{target.port or 5432}")
    unknown_db = open_store(with_password._replace(path="/rr_no_such_database").geturl())
    with pytest.raises(StoreUnavailable) as turned_away:
        await unknown_db.open()
    refused = open_store(with_password._replace(netloc=f"{user}:{secret}@127.0.0.1:{free_port()}").geturl())
    with pytest.raises(StoreUnavailable) as unreachable:
        await refused.open()
    texts = [error_text(turned_away.value), error_text(unreachable.value)]
    assert "InvalidCatalogNameError" in texts[0] and 'database "rr_no_such_database" does not exist' in texts[0]
    assert "cannot connect to PostgreSQL" in texts[1]
    assert not any(secret in text or "Hunter2" in text for text in texts), texts


async def test_the_app_logs_the_cause_of_a_store_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A buyer's return meets a full disk: the retry page, and one WARNING with SQLite's words in it."""
    full = await _full_disk_error(tmp_path)
    app = create_app(demo_settings(str(tmp_path / "demo.db")))

    async def disk_full(*args: object, **kwargs: object) -> None:
        raise full

    ref = "r" * 32
    caplog.set_level(logging.WARNING, "router.app")
    with serve_app(app) as url:
        app.state.runtime.service.store.bind_and_lease = disk_full
        async with httpx.AsyncClient() as client:
            answer = await client.get(url + return_path(ref, "S01-0000000-0000000"), timeout=30)
    assert answer.status_code == 503
    logged = [r.getMessage() for r in caplog.records if r.name == "router.app"]
    assert logged == [f"store unavailable: {error_text(full)}"] and logged[0].endswith("database or disk is full")
