"""outbox_stats (the webhook gauges) and release_leases (a graceful stop), identical on both backends."""

from __future__ import annotations

from router.checkout.model import State
from router.store.base import Store
from tests.support.stores import checkout, event


async def test_outbox_stats_counts_pending_and_the_oldest(store: Store) -> None:
    empty = await store.outbox_stats()
    assert (empty.pending, empty.oldest_pending_created, empty.parked) == (0, None, 0)
    await store.create_checkout(checkout("a"))
    await store.create_checkout(checkout("b"))
    await store.transition("a", owner=None, now=10.0, state=State.PENDING,
                           events=[event("a1", created=1500.0), event("a2", created=1600.0)])
    await store.transition("b", owner=None, now=10.0, state=State.COMPLETED, events=[event("b1", created=1200.0)])
    stats = await store.outbox_stats()
    assert (stats.pending, stats.oldest_pending_created, stats.parked) == (3, 1200.0, 0)

    [b1] = [e for e in await store.claim_events("w", 3000.0, 30.0, 10) if e.id == "b1"]
    await store.event_delivered(b1.id, "w", 3001.0)  # delivered: no longer in the backlog
    await store.event_failed("a1", "w", 3001.0, "HTTP 500", None)  # parked: an operator's job, not backlog
    stats = await store.outbox_stats()
    assert (stats.pending, stats.oldest_pending_created, stats.parked) == (1, 1600.0, 1)
    assert await store.redeliver(["a1"], 3002.0) == 1  # queued again: backlog, no longer parked
    stats = await store.outbox_stats()
    assert (stats.pending, stats.oldest_pending_created, stats.parked) == (2, 1500.0, 0)


async def test_release_leases_frees_only_the_owners_leases(store: Store) -> None:
    for ref in ("mine-1", "mine-2", "theirs"):
        await store.create_checkout(checkout(ref))
    assert await store.try_lease("mine-1", "me", 100.0, 90.0) is not None
    assert await store.try_lease("mine-2", "me", 100.0, 90.0) is not None
    assert await store.try_lease("theirs", "other", 100.0, 90.0) is not None
    await store.transition("theirs", owner="other", now=100.0, state=State.CREATED, events=[event("e1")])
    assert [e.id for e in await store.claim_events("me", 100.0, 90.0, 10)] == ["e1"]

    assert await store.release_leases("me") == 3  # two checkouts, one outbox event
    assert await store.release_leases("me") == 0
    for ref in ("mine-1", "mine-2"):
        freed = await store.get_checkout(ref)
        assert freed is not None and freed.lease_owner is None and freed.lease_until is None
    # Another instance takes them at once, long before the 90 s lease would have run out.
    assert await store.try_lease("mine-1", "next", 101.0, 90.0) is not None
    assert [e.id for e in await store.claim_events("next", 101.0, 90.0, 10)] == ["e1"]
    still = await store.get_checkout("theirs")
    assert still is not None and still.lease_owner is None  # released by its own transition, not by us
    assert await store.try_lease("theirs", "other", 102.0, 90.0) is not None
    assert await store.release_leases("me") == 0
    held = await store.get_checkout("theirs")
    assert held is not None and held.lease_owner == "other"
