"""The reconciler's resume schedule in the store (both backends): due checkouts only, one claim per slot."""

from __future__ import annotations

from router.checkout.model import State
from router.store.base import Store
from tests.support.stores import Backend, age_leases, checkout

RESUME_AFTER = 15.0


async def bound(store: Store, ref: str, session_id: str, **fields: float) -> None:
    await store.create_checkout(checkout(ref, **fields))
    await store.bind_session(ref, session_id, 1000.0)


async def due_refs(store: Store, now: float) -> list[str]:
    return [d.checkout.ref for d in await store.list_due_resumes(now=now, resume_after=RESUME_AFTER)]


async def test_a_bound_checkout_is_due_resume_after_its_last_update(store: Store) -> None:
    await bound(store, "a", "S01-a")
    await store.create_checkout(checkout("unbound"))
    assert await due_refs(store, 1000.0 + RESUME_AFTER - 1) == []
    due = await store.list_due_resumes(now=1000.0 + RESUME_AFTER, resume_after=RESUME_AFTER)
    assert [(d.checkout.ref, d.attempts) for d in due] == [("a", 0)]


async def test_a_claim_schedules_the_next_resume_and_counts_it(store: Store) -> None:
    await bound(store, "a", "S01-a")
    now = 1000.0 + RESUME_AFTER
    before = await store.get_checkout("a")
    assert await store.claim_resume("a", 0, now + 30)
    assert await due_refs(store, now + 29) == []
    due = await store.list_due_resumes(now=now + 30, resume_after=RESUME_AFTER)
    assert [(d.checkout.ref, d.attempts) for d in due] == [("a", 1)]
    after = await store.get_checkout("a")
    assert after is not None and before is not None
    assert (after.version, after.updated_at) == (before.version, before.updated_at)  # not a state change


async def test_only_one_of_two_instances_claims_a_slot(store: Store) -> None:
    await bound(store, "a", "S01-a")
    assert await store.claim_resume("a", 0, 2000.0)
    assert not await store.claim_resume("a", 0, 2000.0)  # the other read attempts=0 too: too late
    assert not await store.claim_resume("missing", 0, 2000.0)


async def test_leased_finished_and_expired_checkouts(store: Store, backend: Backend) -> None:
    await bound(store, "leased", "S01-leased")
    await bound(store, "done", "S01-done")
    await bound(store, "expired", "S01-expired", expires_at=1100.0)
    assert await store.claim_resume("expired", 0, 1300.0)  # past its expiry by then: still on its schedule
    await store.transition("done", owner=None, now=1001.0, state=State.COMPLETED)
    assert await store.try_lease("leased", "owner-1", 1002.0, 200.0) is not None
    assert await due_refs(store, 1050.0) == []
    assert await due_refs(store, 1100.0) == []
    await age_leases(backend, 200.0)
    assert await due_refs(store, 1202.0) == ["leased"]  # the lease ran out
    assert sorted(await due_refs(store, 1300.0)) == ["expired", "leased"]
    assert not await store.claim_resume("done", 0, 2000.0)  # finished: nothing to schedule


async def test_the_schedule_is_kept_across_instances(backend: Backend, store: Store) -> None:
    await bound(store, "a", "S01-a", expires_at=99_999.0)
    assert await store.claim_resume("a", 0, 5000.0)
    other = await backend.opened()  # another instance, or this one after a restart
    try:
        assert await due_refs(other, 4999.0) == []
        assert [(d.checkout.ref, d.attempts) for d in await other.list_due_resumes(now=5000.0, resume_after=1)] \
            == [("a", 1)]
    finally:
        await other.close()


async def test_a_bound_checkout_past_its_window_keeps_its_backoff(store: Store) -> None:
    """Past the window Amazon still settles it (it may have been paid): on the same schedule, not every pass."""
    await bound(store, "a", "S01-a", expires_at=1001.0)
    now = 1000.0 + RESUME_AFTER
    assert await due_refs(store, now) == ["a"]
    assert await store.claim_resume("a", 0, now + 30)
    assert await due_refs(store, now + 29) == []
    assert await due_refs(store, now + 30) == ["a"]


async def test_expired_unbound_lists_only_unbound_created_checkouts_past_their_window(store: Store) -> None:
    await store.create_checkout(checkout("late", expires_at=1500.0))
    await store.create_checkout(checkout("early", expires_at=1200.0))
    await store.create_checkout(checkout("open", expires_at=9000.0))
    await store.create_checkout(checkout("done", expires_at=1100.0, state=State.CANCELED))
    await bound(store, "bound", "S01-b", expires_at=1100.0)
    assert [c.ref for c in await store.list_expired_unbound(now=2000.0)] == ["early", "late"]
    assert [c.ref for c in await store.list_expired_unbound(now=2000.0, limit=1)] == ["early"]
