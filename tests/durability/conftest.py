"""Durability fixtures: return-router as real `serve` processes, the emulator and a webhook receiver.

The routers are subprocesses in their own process group (tests/support/processes.py), so `kill -9`
takes down a multi-worker server with its workers, exactly as a crash would. The Amazon Pay emulator
and the webhook receiver run in this process on real sockets and outlive every router restart; the
test reads the emulator's state directly (calls per session, charges) as well as its request log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.fixtures import launch, receiver  # noqa: F401  (fixtures)
from tests.support.stores import postgres_backend

from .proxy import ThreadedProxy


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema (dropped afterwards); skips when no server answers."""
    async with postgres_backend() as backend:
        yield backend.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'router.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Both backends: a SQLite file shared by every process, and a PostgreSQL schema."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[ThreadedProxy]:
    """A proxy in front of the test's PostgreSQL server, listening."""
    parts = urlsplit(pg_url)
    proxy = ThreadedProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
