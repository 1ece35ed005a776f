"""Outbox rules, identical on both backends."""

from __future__ import annotations

import pytest

from router.checkout.model import NotFound, State
from router.store.base import NewEvent, Store
from tests.support.stores import checkout, event


async def _emit(store: Store, ref: str, *event_ids: str, now: float = 100.0) -> None:
    """Create `ref` if needed and append events to it through transitions (the only way to write them)."""
    if await store.get_checkout(ref) is None:
        await store.create_checkout(checkout(ref))
    await store.transition(ref, owner=None, now=now, state=State.PENDING, events=[event(i) for i in event_ids])


def ids(events: list) -> list[str]:
    return [e.id for e in events]


async def test_event_is_stored_exactly(store: Store) -> None:
    body = bytes(range(256))  # not even UTF-8: the exact bytes must come back
    await store.create_checkout(checkout("r"))
    await store.transition(
        "r", owner=None, now=50.0, state=State.COMPLETED, events=[NewEvent("ev", "checkout.completed", 49.5, body)]
    )
    stored = await store.get_event("ev")
    assert stored is not None
    assert (stored.ref, stored.type, stored.created, stored.body) == ("r", "checkout.completed", 49.5, body)
    assert (stored.status, stored.attempts, stored.next_attempt_at) == ("pending", 0, 50.0)
    assert stored.last_error is None and stored.delivered_at is None
    assert await store.get_event("nope") is None


async def test_the_cause_is_stored_with_the_event(store: Store) -> None:
    """The request id and traceparent come back with the claim, whichever worker claims it."""
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    await store.create_checkout(checkout("r"))
    await store.transition("r", owner=None, now=50.0, state=State.COMPLETED, events=[
        NewEvent("ev", "checkout.completed", 49.5, b"{}", request_id="return-1.a", traceparent=parent)])
    await _emit(store, "s", "background", now=50.0)
    claimed = {e.id: e for e in await store.claim_events("another-worker", now=60.0, lease_ttl=30.0, limit=10)}
    assert (claimed["ev"].request_id, claimed["ev"].traceparent) == ("return-1.a", parent)
    assert (claimed["background"].request_id, claimed["background"].traceparent) == (None, None)
    stored = await store.get_event("ev")
    assert stored is not None and stored.request_id == "return-1.a"


async def test_claim_in_seq_order_one_event_per_ref(store: Store) -> None:
    await _emit(store, "a", "a1", "a2")
    await _emit(store, "b", "b1")
    await _emit(store, "a", "a3")
    claimed = await store.claim_events("w1", now=100.0, lease_ttl=30.0, limit=10)
    assert ids(claimed) == ["a1", "b1"]  # a2, a3 wait for a1
    assert [e.seq for e in claimed] == sorted(e.seq for e in claimed)
    assert await store.claim_events("w2", now=101.0, lease_ttl=30.0, limit=10) == []  # leased, or blocked

    await store.event_delivered("a1", "w1", now=102.0)
    assert ids(await store.claim_events("w2", now=103.0, lease_ttl=30.0, limit=10)) == ["a2"]


async def test_claim_respects_limit_and_due_time(store: Store) -> None:
    await _emit(store, "a", "a1")
    await _emit(store, "b", "b1")
    await _emit(store, "c", "c1", now=500.0)  # due at 500
    assert ids(await store.claim_events("w", now=100.0, lease_ttl=1000.0, limit=1)) == ["a1"]
    assert ids(await store.claim_events("w", now=100.0, lease_ttl=1000.0, limit=5)) == ["b1"]
    assert await store.claim_events("w", now=499.0, lease_ttl=1000.0, limit=5) == []
    assert ids(await store.claim_events("w", now=500.0, lease_ttl=1000.0, limit=5)) == ["c1"]
    assert await store.claim_events("w", now=500.0, lease_ttl=1000.0, limit=0) == []


async def test_claim_takes_the_events_due_longest_ago_first(store: Store) -> None:
    """Not by seq alone: a retry due since 200 goes before a newer event due since 300 (and the claim reads
    the due index in that order instead of sorting the whole backlog)."""
    await _emit(store, "b", "b1", now=300.0)
    await _emit(store, "c", "c1", now=200.0)  # written later (higher seq), due earlier
    assert ids(await store.claim_events("w", now=400.0, lease_ttl=1000.0, limit=1)) == ["c1"]
    await _emit(store, "d", "d1", now=300.0)  # due at the same time as b1: seq decides
    assert ids(await store.claim_events("w", now=400.0, lease_ttl=1000.0, limit=1)) == ["b1"]
    assert ids(await store.claim_events("w", now=400.0, lease_ttl=1000.0, limit=5)) == ["d1"]


async def test_event_lease_expires(store: Store) -> None:
    await _emit(store, "a", "a1")
    assert ids(await store.claim_events("w1", now=100.0, lease_ttl=30.0, limit=10)) == ["a1"]
    assert await store.claim_events("w2", now=129.9, lease_ttl=30.0, limit=10) == []
    assert ids(await store.claim_events("w2", now=130.0, lease_ttl=30.0, limit=10)) == ["a1"]


async def test_delivered(store: Store) -> None:
    await _emit(store, "a", "a1")
    await store.claim_events("w1", now=100.0, lease_ttl=30.0, limit=10)
    await store.event_delivered("a1", "w1", now=105.0)
    stored = await store.get_event("a1")
    assert stored is not None
    assert (stored.status, stored.delivered_at, stored.attempts) == ("delivered", 105.0, 1)
    await store.event_delivered("a1", "w1", now=999.0)  # again: nothing changes
    assert await store.get_event("a1") == stored
    assert await store.claim_events("w1", now=1000.0, lease_ttl=30.0, limit=10) == []
    with pytest.raises(NotFound):
        await store.event_delivered("nope", "w1", now=105.0)


async def test_failed_retry_then_park_then_redeliver(store: Store) -> None:
    await _emit(store, "a", "a1", "a2")
    await store.claim_events("w1", now=100.0, lease_ttl=30.0, limit=10)
    await store.event_failed("a1", "w1", now=101.0, error="HTTP 500", next_attempt_at=160.0)
    stored = await store.get_event("a1")
    assert stored is not None
    assert (stored.status, stored.attempts, stored.next_attempt_at, stored.last_error) == (
        "pending",
        1,
        160.0,
        "HTTP 500",
    )
    assert await store.claim_events("w1", now=159.0, lease_ttl=30.0, limit=10) == []  # not due; a2 blocked
    assert ids(await store.claim_events("w2", now=160.0, lease_ttl=30.0, limit=10)) == ["a1"]

    await store.event_failed("a1", "w2", now=161.0, error="x" * 5000, next_attempt_at=None)  # parked
    parked = await store.get_event("a1")
    assert parked is not None and parked.status == "failed" and parked.attempts == 2
    assert parked.last_error is not None and 100 < len(parked.last_error) <= 2000
    # A parked event still blocks the later events of its ref.
    assert await store.claim_events("w2", now=10_000.0, lease_ttl=30.0, limit=10) == []

    assert await store.redeliver(None, now=20_000.0) == 1
    back = await store.get_event("a1")
    assert back is not None and (back.status, back.attempts, back.next_attempt_at) == ("pending", 0, 20_000.0)
    assert ids(await store.claim_events("w3", now=20_000.0, lease_ttl=30.0, limit=10)) == ["a1"]
    with pytest.raises(NotFound):
        await store.event_failed("nope", "w1", now=1.0, error="e", next_attempt_at=None)


async def test_failure_report_from_a_stale_worker_is_ignored(store: Store) -> None:
    await _emit(store, "a", "a1")
    await store.claim_events("w1", now=100.0, lease_ttl=10.0, limit=10)
    await store.claim_events("w2", now=110.0, lease_ttl=10.0, limit=10)  # w1's lease expired, w2 took it
    await store.event_failed("a1", "w1", now=111.0, error="late", next_attempt_at=None)
    stored = await store.get_event("a1")
    assert stored is not None and stored.status == "pending" and stored.attempts == 0
    # ... but a delivery is a fact, recorded whoever reports it.
    await store.event_delivered("a1", "w1", now=112.0)
    stored = await store.get_event("a1")
    assert stored is not None and stored.status == "delivered"
    await store.event_failed("a1", "w2", now=113.0, error="late", next_attempt_at=200.0)
    assert await store.get_event("a1") == stored


async def test_redeliver_selected_ids(store: Store) -> None:
    for ref in ("a", "b", "c"):
        await _emit(store, ref, f"{ref}1")
    await store.claim_events("w", now=100.0, lease_ttl=30.0, limit=10)
    for ref in ("a", "b", "c"):
        await store.event_failed(f"{ref}1", "w", now=101.0, error="boom", next_attempt_at=None)
    assert await store.redeliver([], now=200.0) == 0
    assert await store.redeliver(["a1", "c1", "missing"], now=200.0) == 2
    assert await store.redeliver(["a1"], now=200.0) == 0  # no longer parked
    assert ids(await store.list_events(failed_only=True)) == ["b1"]
    assert ids(await store.claim_events("w", now=200.0, lease_ttl=30.0, limit=10)) == ["a1", "c1"]


async def test_list_events_newest_first_with_filters(store: Store) -> None:
    await _emit(store, "a", "a1", "a2")
    await _emit(store, "b", "b1")
    await store.claim_events("w", now=100.0, lease_ttl=30.0, limit=10)
    await store.event_failed("b1", "w", now=101.0, error="boom", next_attempt_at=None)
    assert ids(await store.list_events()) == ["b1", "a2", "a1"]
    assert ids(await store.list_events(limit=2)) == ["b1", "a2"]
    assert ids(await store.list_events(failed_only=True)) == ["b1"]
    assert await store.list_events(limit=0) == []
