"""The stores under test: a SQLite file or a fresh PostgreSQL schema, sample records, reads behind a router's back.

Every PostgreSQL user gets its own schema (dropped afterwards), so tests and parallel workers never
see each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest

from router.checkout.model import Checkout
from router.store import open_store
from router.store.base import NewEvent, OutboxEvent, Store

T = TypeVar("T")

PG_DSN = os.environ.get("RETURN_ROUTER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

_pg_problem: list[str | None] = []  # cached: None when reachable, else why not


async def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it answers."""
    if not _pg_problem:
        try:
            conn = await asyncpg.connect(PG_DSN, timeout=3)
        except Exception as exc:
            _pg_problem.append(f"PostgreSQL not reachable at {_safe(PG_DSN)}: {type(exc).__name__}: {exc}")
        else:
            await conn.close()
            _pg_problem.append(None)
    return _pg_problem[0]


def _safe(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def with_query(dsn: str, **params: str) -> str:
    extra = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{dsn}{'&' if urlsplit(dsn).query else '?'}{extra}"


@dataclass(frozen=True)
class Backend:
    """How to reach one test database; `make()` gives a new, unopened store on it."""

    name: str
    url: str
    schema: str | None = None  # postgres only

    def make(self) -> Store:
        return open_store(self.url)

    async def opened(self) -> Store:
        store = self.make()
        await store.open()
        return store

    async def execute(self, sql: str) -> None:
        """Run raw SQL on the test database, behind the store's back."""
        if self.name == "sqlite":
            with contextlib.closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as conn, conn:
                conn.execute(sql)
            return
        settings = {"search_path": self.schema} if self.schema else None
        conn = await asyncpg.connect(PG_DSN, timeout=5, server_settings=settings)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def postgres_backend(dsn: str = PG_DSN) -> AsyncIterator[Backend]:
    """A fresh schema on the test server (skips the test if none answers), dropped afterwards."""
    problem = await postgres_problem()
    if problem:
        pytest.skip(problem)
    schema = f"rr_test_{secrets.token_hex(6)}"
    try:
        yield Backend("postgres", with_query(dsn, schema=schema), schema)
    finally:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'data' / 'store.db'}")
        return
    async with postgres_backend() as pg:
        yield pg


@pytest.fixture
async def pg_backend() -> AsyncIterator[Backend]:
    async with postgres_backend() as pg:
        yield pg


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await backend.opened()
    try:
        yield opened
    finally:
        await opened.close()


BASE = Checkout(
    ref="ref-1",
    merchant_reference="order-1",
    amount="14.00",
    currency="EUR",
    payment_intent="Authorize",
    can_handle_pending=True,
    created_at=1000.0,
    expires_at=1000.0 + 3600,
    updated_at=1000.0,
)


class StoreWrapper:
    """A real store behind a test's own versions of some of its methods; the rest are the store's."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# --- leases: the caller's clock on SQLite, the database server's on PostgreSQL ---------------------------


async def age_leases(backend: Backend, seconds: float) -> None:
    """Every checkout lease `seconds` nearer its end, as its clock would move it: on PostgreSQL the server's,
    which a test cannot set; on SQLite the test's own `now`, which the test moves itself (nothing to do)."""
    if backend.name == "postgres":
        await backend.execute(f"UPDATE checkouts SET lease_until = lease_until - {float(seconds)!r}")


def lease_ends(backend: Backend, until: float | None, now: float, ttl: float) -> bool:
    """`until` ends a lease of `ttl` s taken at `now` (SQLite), or just now on the server's clock (PostgreSQL,
    on this host in tests: a few seconds' margin)."""
    if backend.name == "sqlite":
        return until == now + ttl
    return until is not None and abs(until - (time.time() + ttl)) < 5.0


def checkout(ref: str = "ref-1", **fields: Any) -> Checkout:
    return replace(BASE, ref=ref, merchant_reference=f"order-{ref}", **fields)


def event(event_id: str, *, type: str = "checkout.completed", created: float = 2000.0) -> NewEvent:
    return NewEvent(id=event_id, type=type, created=created, body=f'{{"id":"{event_id}"}}'.encode())


# --- reading what routers wrote, on the test's own connection --------------------------------------


def with_store(url: str, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run `fn` on a store opened on `url` behind the routers' backs (the test's own connection)."""

    async def run() -> T:
        store = open_store(url)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


def stored_checkout(url: str, ref: str) -> Checkout:
    checkout = with_store(url, lambda store: store.get_checkout(ref))
    assert checkout is not None
    return checkout


def stored_events(url: str) -> list[OutboxEvent]:
    """Every outbox event, oldest first."""
    return sorted(with_store(url, lambda store: store.list_events(limit=1000)), key=lambda e: e.seq)
