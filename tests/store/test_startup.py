"""`serve` at start: an unreachable store is one line and a bounded, backed-off wait (router.startup)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import asyncpg
import pytest

from router.startup import _try_open, store_label, wait_for_store
from router.store.postgres import PostgresStore, parse_url
from tests.store.tcp_proxy import TcpProxy
from tests.support import free_port
from tests.support.stores import PG_DSN, postgres_backend


def test_store_label_hides_credentials_and_query() -> None:
    assert store_label("postgresql://rr:s3cret@db.internal:6432/shop?schema=x&sslmode=require") == \
        "postgresql://db.internal:6432/shop"
    assert store_label("sqlite:////var/lib/rr/rr.db") == "sqlite /var/lib/rr/rr.db"


async def test_gives_up_after_the_bound_with_growing_delays() -> None:
    said: list[str] = []
    delays: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        now[0] += seconds + 0.01  # each attempt costs a little too

    url = f"postgresql://rr@127.0.0.1:{free_port()}/rr"
    ok = await wait_for_store(url, 12, said.append, sleep=sleep, clock=lambda: now[0])
    assert ok is False
    assert len(said) == 2 and said[0].endswith("; retrying for up to 12 s") and said[1].endswith("; gave up after 12 s")
    assert all(line.startswith(f"storage: cannot reach {store_label(url)} (") for line in said)
    assert len(delays) >= 3 and delays[1] > delays[0] and delays[2] > delays[1]  # backoff
    assert sum(delays) <= 12.0 + 1e-6  # never sleeps past the bound


async def test_starts_once_the_database_answers() -> None:
    async with postgres_backend() as pg:  # a fresh schema, dropped afterwards
        target = urlsplit(pg.url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        port = await proxy.start()
        await proxy.stop()  # the database is "down": nothing listens on the proxy's port
        said: list[str] = []
        attempts = [0]

        async def sleep(seconds: float) -> None:
            attempts[0] += 1
            if attempts[0] == 2:
                await proxy.start()  # back on the same port

        url = pg.url.replace(target.netloc.rsplit("@", 1)[-1], f"127.0.0.1:{port}")
        try:
            assert await wait_for_store(url, 60, said.append, sleep=sleep) is True
        finally:
            await proxy.stop()
    assert len(said) == 2 and "cannot reach" in said[0] and said[1] == "storage: reachable again; starting"
    assert attempts[0] == 2


async def test_a_migration_lock_held_elsewhere_is_said_as_such(caplog: pytest.LogCaptureFixture) -> None:
    """Another instance applying the migrations is not "cannot reach": the wait is said at once, and when
    it outlasts the command timeout the line names the lock."""
    async with postgres_backend() as pg:
        dsn, schema = parse_url(pg.url)
        holder = await asyncpg.connect(PG_DSN)
        try:
            await holder.execute("SELECT pg_advisory_lock($1, hashtext($2))", 0x52525452, schema)
            store = PostgresStore(dsn, schema=schema, command_timeout=0.5)
            with caplog.at_level(logging.INFO, logger="router.store.postgres"):
                problem = await _try_open(store, pg.url, close=True)
            assert problem == (f"storage: {store_label(pg.url)}: another instance held the schema migration "
                               "lock for 0.5 s"), problem
            assert "another instance is applying the schema migrations; waiting for it" in caplog.text
            await holder.execute("SELECT pg_advisory_unlock_all()")
            assert await _try_open(store, pg.url, close=True) is None
        finally:
            await holder.close()
