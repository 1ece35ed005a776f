"""Webhook fixtures: a real receiver on a real socket, a clock the test moves, and the real stores."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from router.store import open_store
from router.store.base import Store
from tests.support import free_port
from tests.support.receiver import Receiver
from tests.support.stores import postgres_backend
from tests.webhooks.outbox import SECRET, Clock, StoreFactory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver(clock: Clock) -> Iterator[Receiver]:
    """The receiver listening, checking signatures by the test's clock; any off-schema body fails the test."""
    rec = Receiver(clock, SECRET).up()
    try:
        yield rec
    finally:
        rec.down()
    assert not rec.schema_errors, rec.schema_errors


@pytest.fixture
def down_url() -> str:
    """A URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/hooks"


# --- the stores ----------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Unopened stores on one fresh database, as separate processes would have (two workers, one outbox).

    SQLite: a real file under tmp_path. PostgreSQL: a fresh schema on the test server, dropped after
    (skipped with the reason when the server does not answer), the store tests' way.
    """
    opened: list[Store] = []
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'outbox.db'}"
        else:
            url = (await stack.enter_async_context(postgres_backend())).url

        def make() -> Store:
            store = open_store(url)
            opened.append(store)
            return store

        try:
            yield make
        finally:
            for store in opened:
                await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    store = store_factory()
    await store.open()
    return store  # closed by store_factory


