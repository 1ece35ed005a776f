"""Buyer details and delivered events are purged after their retention periods, a batch at a time through
an index; the checkout, its state and the events still needed stay. Files are private."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import stat
from pathlib import Path

import asyncpg

from router.checkout.model import State
from router.store import statements as sql
from router.store.base import Store
from tests.support.stores import PG_DSN, Backend, checkout, event

BUYER = {"buyerName": "Hanako Yamada", "maskedEmail": "h***@example.com", "address": {"countryCode": "JP"}}


async def test_purge_drops_buyer_details_of_old_checkouts_only(store: Store) -> None:
    for ref, when in (("old", 2000.0), ("new", 9000.0)):
        await store.create_checkout(checkout(ref))
        await store.transition(ref, owner=None, now=when, state=State.COMPLETED,
                               changes={"result": BUYER, "charge_id": f"C-{ref}"})
    await store.create_checkout(checkout("none"))  # never got buyer details: nothing to purge

    assert await store.purge_buyer_details(5000.0) == 1
    old, new = await store.get_checkout("old"), await store.get_checkout("new")
    assert old is not None and new is not None
    assert old.result is None and (old.state, old.charge_id, old.updated_at) == (State.COMPLETED, "C-old", 2000.0)
    assert new.result == BUYER
    assert await store.purge_buyer_details(5000.0) == 0  # idempotent


async def _delivered(store: Store, ref: str, event_type: str, at: float) -> None:
    """A checkout with one event of `event_type`, delivered at `at`."""
    await store.create_checkout(checkout(ref))
    await store.transition(ref, owner=None, now=at - 1, state=State.COMPLETED,
                           events=[event(f"e-{ref}", type=event_type, created=at - 1)])
    assert [e.id for e in await store.claim_events("w", now=at, lease_ttl=30.0, limit=10)] == [f"e-{ref}"]
    await store.event_delivered(f"e-{ref}", "w", now=at)


async def test_purge_deletes_only_events_delivered_before_the_cutoff(store: Store) -> None:
    await _delivered(store, "old", "checkout.completed", 2000.0)
    await _delivered(store, "new", "checkout.completed", 9000.0)
    await _delivered(store, "canceled", "checkout.canceled", 2000.0)  # the record of a buyer's cancel
    await store.create_checkout(checkout("waiting"))
    await store.transition("waiting", owner=None, now=1000.0, state=State.PENDING, events=[event("e-waiting")])
    await store.create_checkout(checkout("parked"))
    await store.transition("parked", owner=None, now=1000.0, state=State.PENDING, events=[event("e-parked")])
    await store.claim_events("w2", now=1500.0, lease_ttl=30.0, limit=10)  # e-waiting and e-parked
    await store.event_failed("e-parked", "w2", now=1500.0, error="HTTP 500", next_attempt_at=None)
    await store.event_failed("e-waiting", "w2", now=1500.0, error="HTTP 500", next_attempt_at=1600.0)

    assert await store.purge_delivered_events(5000.0) == 1
    assert await store.get_event("e-old") is None
    kept = {e.id: e.status for e in await store.list_events()}
    assert kept == {"e-new": "delivered", "e-canceled": "delivered", "e-waiting": "pending", "e-parked": "failed"}
    assert await store.has_event("canceled", "checkout.canceled")
    assert await store.get_checkout("old") is not None  # the checkout stays
    assert await store.purge_delivered_events(5000.0) == 0  # idempotent
    assert [e.id for e in await store.claim_events("w3", now=1600.0, lease_ttl=30.0, limit=10)] == ["e-waiting"]


async def test_purges_change_a_batch_at_a_time(store: Store) -> None:
    for n in range(7):
        await _delivered(store, f"r{n}", "checkout.completed", 1000.0 + n)
        await store.transition(f"r{n}", owner=None, now=1100.0, state=State.COMPLETED, changes={"result": BUYER})
    assert [await store.purge_delivered_events(5000.0, limit=3) for _ in range(4)] == [3, 3, 1, 0]
    assert [await store.purge_buyer_details(5000.0, limit=3) for _ in range(4)] == [3, 3, 1, 0]
    for n in range(7):
        found = await store.get_checkout(f"r{n}")
        assert found is not None and found.result is None and await store.get_event(f"e-r{n}") is None


PURGES = {sql.PURGE_BUYER_DETAILS: "checkouts_result_updated", sql.PURGE_DELIVERED_EVENTS: "outbox_delivered"}


async def test_purges_read_their_index_not_the_whole_table(backend: Backend, store: Store) -> None:
    """Before migration 5 the buyer-detail purge scanned every checkout every pass (36 ms at 200,000, in
    the thread every SQLite commit waits for). PostgreSQL is asked with sequential scans off: it still
    picks one when no index fits the statement, so the index name in the plan means the index fits."""
    params = {"before": 5000.0, "limit": 500}
    for statement, index in PURGES.items():
        if backend.name == "sqlite":
            path = backend.url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(path)) as conn:
                plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement.sqlite}", params))
            assert f"USING INDEX {index} " in plan and "SCAN" not in plan, plan
        else:
            conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": backend.schema or ""})
            try:
                await conn.execute("SET enable_seqscan = off")
                rows = await conn.fetch(f"EXPLAIN {statement.postgres}", *(params[n] for n in statement.names))
            finally:
                await conn.close()
            plan = " | ".join(row[0] for row in rows)
            assert f" {index} " in plan + " " and "Seq Scan" not in plan, plan


async def test_sqlite_files_are_created_owner_only(tmp_path: Path) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'private' / 'rr.db'}")
    store = await backend.opened()
    try:
        await store.create_checkout(checkout("x"))  # a write: the -wal file exists now
        files = sorted(tmp_path.joinpath("private").iterdir())
        assert [f.name for f in files] == ["rr.db", "rr.db-shm", "rr.db-wal"]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        await store.close()


async def test_drop_oldest_checkouts_keeps_the_newest(store: Store) -> None:
    from tests.support.stores import event

    for n in range(5):
        await store.create_checkout(checkout(f"r{n}", created_at=1000.0 + n))
    await store.transition("r0", owner=None, now=2000.0, state=State.COMPLETED, events=[event("e0")])
    assert await store.drop_oldest_checkouts(3) == 2
    kept = [ref for ref in ("r0", "r1", "r2", "r3", "r4") if await store.get_checkout(ref) is not None]
    assert kept == ["r2", "r3", "r4"]
    assert await store.get_event("e0") is None  # its outbox event went with it
    assert await store.drop_oldest_checkouts(3) == 0


async def test_instances_purging_together_neither_deadlock_nor_count_twice(pg_backend: Backend) -> None:
    """Every instance's reconciler purges. Without SKIP LOCKED, PostgreSQL purges running together took
    their row locks in different orders and deadlocked, and counted rows another had purged."""
    rows = 3000
    await (await pg_backend.opened()).close()  # the schema
    await pg_backend.execute(f"""
        INSERT INTO checkouts (ref, merchant_reference, amount, currency, payment_intent, can_handle_pending,
                               created_at, expires_at, state, updated_at, checkout_session_id, result, version)
        SELECT 'r' || g, 'm', '1.00', 'USD', 'Authorize', false, g, g, 'completed', g, 's' || g,
               '{{"buyerName": "x"}}'::jsonb, 1 FROM generate_series(1, {rows}) g;
        INSERT INTO outbox (id, ref, type, created, body, status, attempts, next_attempt_at, delivered_at)
        SELECT 'e' || g, 'r' || g, 'checkout.completed', g, '\\x00'::bytea, 'delivered', 1, g, g
        FROM generate_series(1, {rows}) g""")
    stores = [await pg_backend.opened() for _ in range(4)]

    async def purge(store: Store) -> tuple[int, int]:
        events = details = 0
        for _ in range(rows):  # until a pass finds nothing left
            found = await store.purge_delivered_events(1e9, limit=50), await store.purge_buyer_details(1e9, limit=50)
            events, details = events + found[0], details + found[1]
            if found == (0, 0):
                break
        return events, details

    try:
        counts = await asyncio.gather(*(purge(store) for store in stores))
        while await stores[0].purge_delivered_events(1e9) or await stores[0].purge_buyer_details(1e9):
            pass  # what a pass that saw only others' locked rows left for the next pass
    finally:
        for store in stores:
            await store.close()
    assert sum(c[0] for c in counts) <= rows and sum(c[1] for c in counts) <= rows, counts
    check = await pg_backend.opened()
    try:
        assert await check.list_events() == []
        for n in (1, rows // 2, rows):
            found = await check.get_checkout(f"r{n}")
            assert found is not None and found.result is None
    finally:
        await check.close()
