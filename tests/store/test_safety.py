"""Store capabilities for checkout safety, on both backends: sessions Amazon rejected, the atomic cancel of
an unbound checkout, event lookup, and the write check behind /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from router import logs
from router.checkout.model import Checkout, State
from router.store import open_store
from router.store.base import REJECTED_PER_REF, NewEvent, Store, StoreUnavailable
from tests.store.tcp_proxy import TcpProxy
from tests.support.stores import PG_DSN, Backend, age_leases, checkout, event, postgres_backend

CANCELED = {"reason_code": "BuyerCanceled"}


async def test_rejected_pair_is_remembered_until_it_expires(store: Store) -> None:
    await store.create_checkout(checkout("r"))
    assert not await store.session_rejected("r", "probe-0001", now=10.0)
    await store.reject_session("r", "probe-0001", until=100.0, now=10.0)
    assert await store.session_rejected("r", "probe-0001", now=99.0)
    assert not await store.session_rejected("r", "genuine-0001", now=99.0)  # another id is not blocked
    assert not await store.session_rejected("r", "probe-0001", now=100.0)  # expired with the checkout


async def test_rejected_pairs_are_bounded(store: Store, backend: Backend) -> None:
    await store.create_checkout(checkout("r"))
    await store.create_checkout(checkout("old"))
    await store.reject_session("old", "stale-0001", until=50.0, now=10.0)
    for i in range(REJECTED_PER_REF + 5):
        await store.reject_session("r", f"probe-{i:04d}", until=1000.0, now=100.0 + i)
    assert not await store.session_rejected("r", "probe-0000", now=200.0)  # the oldest were forgotten
    assert await store.session_rejected("r", f"probe-{REJECTED_PER_REF + 4:04d}", now=200.0)
    count = await _count(backend, "rejected_sessions")
    assert count == REJECTED_PER_REF  # the expired pair of "old" was dropped too


async def _count(backend: Backend, table: str) -> int:
    if backend.name == "sqlite":
        with contextlib.closing(sqlite3.connect(backend.url.removeprefix("sqlite:///"))) as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": backend.schema or "public"})
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def test_cancel_unbound_cancels_only_an_unbound_unleased_created_checkout(store: Store, backend: Backend) -> None:
    for ref in ("free", "bound", "leased", "done"):
        await store.create_checkout(checkout(ref))
    await store.bind_session("bound", "session-bound", now=1.0)
    assert await store.try_lease("leased", "w", now=1.0, ttl=10.0) is not None
    await store.transition("done", owner=None, now=1.0, state=State.EXPIRED)

    canceled = await store.cancel_unbound("free", 2.0, CANCELED, [event("e-free", type="checkout.canceled")])
    assert canceled is not None and canceled.state == State.CANCELED and canceled.reason_code == "BuyerCanceled"
    assert await store.has_event("free", "checkout.canceled")
    assert not await store.has_event("free", "checkout.completed")
    for ref in ("bound", "leased", "done", "missing"):
        assert await store.cancel_unbound(ref, 2.0, CANCELED, [event(f"e-{ref}", type="checkout.canceled")]) is None
        assert not await store.has_event(ref, "checkout.canceled")  # nothing written
    assert (await store.get_checkout("bound")).state == State.CREATED  # type: ignore[union-attr]
    # An expired lease does not protect the checkout any more.
    await age_leases(backend, 10.0)
    assert await store.cancel_unbound("leased", 20.0, CANCELED, []) is not None


async def test_expire_unbound_expires_only_an_unbound_unleased_created_checkout_past_its_window(
        store: Store) -> None:
    for ref in ("late", "early", "bound", "leased", "done"):  # BASE: the window ends at 4600
        await store.create_checkout(checkout(ref, expires_at=10_000.0 if ref == "early" else 4600.0))
    await store.bind_session("bound", "session-bound", now=1.0)
    assert await store.try_lease("leased", "w", now=4601.0, ttl=10.0) is not None
    await store.transition("done", owner=None, now=1.0, state=State.COMPLETED)
    expired = await store.expire_unbound("late", 4601.0, {"reason_code": "Expired"},
                                         [event("e-late", type="checkout.expired")])
    assert expired is not None and expired.state == State.EXPIRED and expired.reason_code == "Expired"
    assert await store.has_event("late", "checkout.expired")
    for ref in ("early", "bound", "leased", "done", "missing"):
        assert await store.expire_unbound(ref, 4601.0, {"reason_code": "Expired"},
                                          [event(f"e-{ref}", type="checkout.expired")]) is None
        assert not await store.has_event(ref, "checkout.expired")  # nothing written
    assert (await store.get_checkout("done")).state == State.COMPLETED  # type: ignore[union-attr]


async def test_check_writable_writes_a_heartbeat(store: Store, backend: Backend) -> None:
    await store.check_writable(now=5.0)
    await store.check_writable(now=6.0)
    assert await _count(backend, "heartbeat") == 1


async def test_sqlite_locked_is_not_writable_though_reads_work(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}?busy_timeout=30")  # far longer than the check may take
    await store.open()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock (or the disk hangs)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="not writable"):
            await store.check_writable(now=1.0, timeout=0.5)
        assert time.monotonic() - started < 30  # the check's own timeout, not the store's busy timeout
        await store.ping()  # a read-only check would have said "ready"
        blocker.execute("ROLLBACK")
        await store.check_writable(now=2.0)
    finally:
        blocker.close()
        await store.close()


async def test_sqlite_says_not_writable_when_the_lock_wait_gives_up_first(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import router.store.sqlite as sqlite_store

    patient = sqlite_store.within
    monkeypatch.setattr(sqlite_store, "within", lambda job, timeout, what: patient(job, timeout * 20, what))
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}")
    await store.open()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match=r"not writable: .*locked"):
            await store.check_writable(now=1.0, timeout=0.2)  # SQLite's busy wait (0.2 s) ends before `within`
    finally:
        blocker.close()
        await store.close()


@contextlib.asynccontextmanager
async def behind_a_proxy() -> AsyncIterator[tuple[Store, TcpProxy]]:
    """A PostgreSQL store reached through a TcpProxy the test can freeze (a hung network)."""
    target = urlsplit(PG_DSN)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    userinfo = target.netloc.rpartition("@")[0]
    proxied = target._replace(netloc=f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}")
    try:
        async with postgres_backend(proxied.geturl()) as backend:
            store = await backend.opened()
            try:
                yield store, proxy
            finally:
                await proxy.stop()
                await store.close()
    finally:
        await proxy.stop()


async def test_postgres_unreachable_is_not_writable() -> None:
    async with behind_a_proxy() as (store, proxy):
        await store.check_writable(now=1.0)
        await proxy.freeze()  # a hung network: connections open, nothing answers
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="not writable"):
            await store.check_writable(now=2.0, timeout=0.5)
        assert time.monotonic() - started < 30  # not the 30-s command timeout


async def test_a_postgres_call_cut_short_on_a_hung_network_ends_at_once() -> None:
    """A stop's bound or a probe's timeout cancels a call stuck on a hung network: it used to unwind only
    10 s later (the pool's release waiting on the server), and as StoreUnavailable, not the cancel."""
    async with behind_a_proxy() as (store, proxy):
        await store.get_checkout("x")
        await proxy.freeze()
        stuck = asyncio.ensure_future(store.get_checkout("x"))
        await asyncio.sleep(0.3)
        stuck.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(stuck), 30)
        assert time.monotonic() - started < 2


async def test_cancel_or_get_cancels_an_unbound_checkout_else_reads_it(store: Store) -> None:
    await store.create_checkout(checkout("free"))
    await store.create_checkout(checkout("bound"))
    await store.bind_session("bound", "sess-b", now=1.0)
    made: list[str] = []

    def events_for(canceled: Checkout) -> list[NewEvent]:
        made.append(canceled.ref)
        assert canceled.state == State.CANCELED and canceled.reason_code == "BuyerCanceled"
        return [event(f"e-{canceled.ref}", type="checkout.canceled")]

    found, canceled = await store.cancel_or_get("free", 2.0, CANCELED, events_for)
    assert canceled and found is not None and found.state == State.CANCELED
    assert await store.has_event("free", "checkout.canceled")
    found, canceled = await store.cancel_or_get("bound", 2.0, CANCELED, events_for)
    assert not canceled and found is not None and found.state == State.CREATED and found.checkout_session_id
    assert not await store.has_event("bound", "checkout.canceled")
    assert await store.cancel_or_get("missing", 2.0, CANCELED, events_for) == (None, False)
    assert made == ["free"]  # events are made only for a checkout that was canceled


async def test_events_made_inside_the_transaction_see_the_callers_context(store: Store) -> None:
    """The cancel's event and a superseding event are made while the transaction runs (SQLite: in its own
    thread); the request id they record comes from the caller's log context, so it must travel there."""
    await store.create_checkout(checkout("c"))
    await store.create_checkout(checkout("s"))
    await store.transition("s", owner=None, now=1.0, state=State.CANCELED,
                           events=[event("e-s0", type="checkout.canceled")])
    await store.transition("s", owner=None, now=1.5, state=State.CREATED)
    token = logs.context.set({"request_id": "req-caller"})
    try:
        def cancel_event(canceled: Checkout) -> list[NewEvent]:
            return [replace(event("e-c", type="checkout.canceled"), request_id=logs.current_request_id())]

        def superseding() -> list[NewEvent]:
            return [replace(event("e-s1"), request_id=logs.current_request_id())]

        await store.cancel_or_get("c", 2.0, CANCELED, cancel_event)
        await store.transition("s", owner=None, now=2.0, state=State.COMPLETED, events=[event("e-plain")],
                               instead_after=("checkout.canceled", superseding))
    finally:
        logs.context.reset(token)
    stored = {e.id: e.request_id for e in await store.list_events()}
    assert stored["e-c"] == "req-caller"
    assert stored["e-s1"] == "req-caller"
    assert "e-plain" not in stored
