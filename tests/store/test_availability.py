"""Failures become StoreUnavailable, quickly; the PostgreSQL pool recovers by itself."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from router.store import open_store
from router.store.base import StoreUnavailable
from tests.store.tcp_proxy import TcpProxy
from tests.support import free_port
from tests.support.stores import PG_DSN, checkout, postgres_backend, postgres_problem


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
