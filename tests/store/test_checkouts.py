"""Checkout rules, identical on both backends."""

from __future__ import annotations

import pytest

from router.checkout.model import STATES, DuplicateRef, LeaseLost, NotFound, SessionConflict, State
from router.store.base import Store, StoreError
from tests.support.stores import Backend, age_leases, checkout, event, lease_ends


async def test_create_and_get_round_trip_every_field(store: Store) -> None:
    original = checkout(
        "r-full",
        can_handle_pending=False,
        created_at=0.1 + 0.2,  # not representable exactly in decimal: must survive as the same double
        expires_at=1e-300,
        updated_at=1_700_000_000.123456789,
        total_order_amount="15.00",
        supplementary_data='{"k": "v"}',
        checkout_session_id="sess-full",
        charge_id="ch",
        charge_permission_id="cp",
        reason_code="rc",
        result={"buyer": {"name": "Jörg 山田", "email": "j***@example.com"}, "n": [1, 2.5, True, None]},
        lease_owner="o",
        lease_until=1.5,
        version=7,
        state=State.PENDING,
    )
    await store.create_checkout(original)
    loaded = await store.get_checkout("r-full")
    assert loaded == original
    assert loaded is not None
    assert loaded.can_handle_pending is False
    assert isinstance(loaded.created_at, float) and loaded.created_at == 0.1 + 0.2

    await store.create_checkout(checkout("r-true"))
    loaded = await store.get_checkout("r-true")
    assert loaded is not None and loaded.can_handle_pending is True and loaded.result is None


async def test_get_unknown_is_none(store: Store) -> None:
    assert await store.get_checkout("nope") is None


async def test_duplicate_ref(store: Store) -> None:
    await store.create_checkout(checkout("dup", amount="1.00"))
    with pytest.raises(DuplicateRef):
        await store.create_checkout(checkout("dup", amount="2.00"))
    loaded = await store.get_checkout("dup")
    assert loaded is not None and loaded.amount == "1.00"


async def test_create_rejects_bad_input(store: Store) -> None:
    with pytest.raises(ValueError, match="state"):
        await store.create_checkout(checkout("bad", state="paid"))
    with pytest.raises(ValueError, match="JSON"):
        await store.create_checkout(checkout("bad", result={"x": float("nan")}))
    assert await store.get_checkout("bad") is None


async def test_bind_once_same_pair_noop_and_conflicts(store: Store) -> None:
    await store.create_checkout(checkout("a"))
    await store.create_checkout(checkout("b"))
    bound = await store.bind_session("a", "sess-a", now=1100.0)
    assert bound.checkout_session_id == "sess-a" and bound.updated_at == 1100.0

    again = await store.bind_session("a", "sess-a", now=1200.0)
    assert again == bound  # a no-op: not even updated_at moves

    with pytest.raises(SessionConflict):  # the ref is bound to another session
        await store.bind_session("a", "sess-other", now=1300.0)
    with pytest.raises(SessionConflict):  # the session is bound to another ref
        await store.bind_session("b", "sess-a", now=1300.0)
    with pytest.raises(NotFound):
        await store.bind_session("missing", "sess-x", now=1300.0)

    b = await store.get_checkout("b")
    assert b is not None and b.checkout_session_id is None
    assert await store.get_checkout("a") == bound


async def test_bind_and_lease_in_one_transaction(store: Store, backend: Backend) -> None:
    await store.create_checkout(checkout("a"))
    await store.create_checkout(checkout("b"))
    first = await store.bind_and_lease("a", "sess-a", "w1", now=1100.0, ttl=30.0)
    assert first.newly_bound and first.leased and not first.rejected
    assert first.checkout.checkout_session_id == "sess-a" and first.checkout.lease_owner == "w1"
    assert lease_ends(backend, first.checkout.lease_until, 1100.0, 30.0)

    again = await store.bind_and_lease("a", "sess-a", "w2", now=1110.0, ttl=30.0)  # w1 holds the lease
    assert not again.newly_bound and not again.leased and again.checkout.lease_owner == "w1"
    joined = await store.bind_and_lease("a", "sess-a", None, now=1110.0, ttl=30.0)  # no owner: bind only
    assert not joined.leased and joined.checkout == again.checkout

    with pytest.raises(SessionConflict):  # the ref is bound to another session
        await store.bind_and_lease("a", "sess-other", "w2", now=1200.0, ttl=30.0)
    with pytest.raises(SessionConflict):  # the session is bound to another ref: nothing of b changes
        await store.bind_and_lease("b", "sess-a", "w2", now=1200.0, ttl=30.0)
    b = await store.get_checkout("b")
    assert b is not None and b.checkout_session_id is None and b.lease_owner is None
    with pytest.raises(NotFound):
        await store.bind_and_lease("missing", "sess-x", "w1", now=1200.0, ttl=30.0)


async def test_bind_and_lease_binds_nothing_to_an_order_settled_without_a_session(store: Store) -> None:
    """Expired unused: nothing is left to pay, and the session (ids are unique) stays free for its order."""
    await store.create_checkout(checkout("gone", state=State.EXPIRED, reason_code="Expired"))
    await store.create_checkout(checkout("open"))
    settled = await store.bind_and_lease("gone", "sess-of-open", "w1", now=1100.0, ttl=30.0)
    assert not settled.newly_bound and not settled.leased and not settled.rejected
    assert settled.checkout.state == State.EXPIRED and settled.checkout.checkout_session_id is None
    assert (await store.bind_and_lease("open", "sess-of-open", "w1", now=1100.0, ttl=30.0)).newly_bound


async def test_bind_and_lease_leaves_a_rejected_pair_and_leases_only_created(store: Store) -> None:
    await store.create_checkout(checkout("r"))
    await store.reject_session("r", "probe-0001", until=5000.0, now=1000.0)
    rejected = await store.bind_and_lease("r", "probe-0001", "w1", now=1100.0, ttl=30.0)
    assert rejected.rejected and not rejected.leased and rejected.checkout.checkout_session_id is None
    r = await store.get_checkout("r")
    assert r is not None and r.checkout_session_id is None and r.lease_owner is None

    await store.create_checkout(checkout("c", state=State.CANCELED))  # the cancel URL's: unbound
    reopened = await store.bind_and_lease("c", "sess-c", "w1", now=1100.0, ttl=30.0)
    assert reopened.newly_bound and reopened.leased  # the payment wins: reopened, bound and leased at once
    assert (reopened.checkout.state, reopened.checkout.checkout_session_id, reopened.checkout.lease_owner) == (
        State.CREATED, "sess-c", "w1")
    assert reopened.checkout == await store.get_checkout("c")

    await store.create_checkout(checkout("a", state=State.CANCELED, checkout_session_id="sess-a"))  # Amazon's
    again = await store.bind_and_lease("a", "sess-a", "w1", now=1100.0, ttl=30.0)
    assert not again.newly_bound and not again.leased and again.checkout.state == State.CANCELED


async def test_bind_and_lease_takes_only_a_free_or_expired_lease_of_an_unbound_checkout(
    store: Store, backend: Backend
) -> None:
    for ref in ("held", "expired", "edge"):
        await store.create_checkout(checkout(ref))
        assert await store.try_lease(ref, "other", now=1000.0, ttl=30.0) is not None  # leased, still unbound
    await age_leases(backend, 29.0)
    held = await store.bind_and_lease("held", "sess-h", "w1", now=1029.0, ttl=30.0)
    assert held.newly_bound and not held.leased
    assert (held.checkout.checkout_session_id, held.checkout.lease_owner) == ("sess-h", "other")
    assert lease_ends(backend, held.checkout.lease_until, 1000.0, 30.0 - (backend.name == "postgres") * 29.0)
    await age_leases(backend, 1.0)
    for ref, now in (("expired", 1031.0), ("edge", 1030.0)):  # lease_until <= now: expired
        taken = await store.bind_and_lease(ref, f"sess-{ref}", "w1", now=now, ttl=30.0)
        assert taken.newly_bound and taken.leased
        assert (taken.checkout.checkout_session_id, taken.checkout.lease_owner) == (f"sess-{ref}", "w1")
        assert lease_ends(backend, taken.checkout.lease_until, now, 30.0)
        assert taken.checkout.updated_at == now and taken.checkout == await store.get_checkout(ref)


async def test_lease_is_exclusive_until_it_expires(store: Store, backend: Backend) -> None:
    await store.create_checkout(checkout("l"))
    leased = await store.try_lease("l", "w1", now=2000.0, ttl=30.0)
    assert leased is not None and leased.lease_owner == "w1" and lease_ends(backend, leased.lease_until, 2000.0, 30.0)
    assert leased.version == 0  # a lease is not a transition

    await age_leases(backend, 10.0)
    assert await store.try_lease("l", "w2", now=2010.0, ttl=30.0) is None
    assert await store.try_lease("l", "w1", now=2010.0, ttl=30.0) is None  # not re-entrant either
    await age_leases(backend, 19.0)  # the server's clock moves on between statements: no 1 ms edge there
    assert await store.try_lease("l", "w2", now=2029.999, ttl=30.0) is None

    await age_leases(backend, 1.0)
    taken = await store.try_lease("l", "w2", now=2030.0, ttl=30.0)  # lease_until <= now: expired
    assert taken is not None and taken.lease_owner == "w2" and lease_ends(backend, taken.lease_until, 2030.0, 30.0)


async def test_reclaim_takes_back_only_the_owners_own_lease_of_a_created_checkout(store: Store) -> None:
    """What a write whose COMMIT outcome was never heard may have left: its owner takes it back at once."""
    for ref in ("mine", "theirs", "pending", "unbound"):
        await store.create_checkout(checkout(ref, state=State.PENDING if ref == "pending" else State.CREATED))
        assert await store.try_lease(ref, "theirs" if ref == "theirs" else "me", now=2000.0, ttl=30.0) is not None
    assert await store.try_lease("mine", "me", now=2001.0, ttl=30.0) is None  # not re-entrant without reclaim
    again = await store.try_lease("mine", "me", now=2001.0, ttl=30.0, reclaim=True)
    assert again is not None and again.lease_owner == "me"
    assert await store.try_lease("theirs", "me", now=2001.0, ttl=30.0, reclaim=True) is None  # another's
    assert await store.try_lease("pending", "me", now=2001.0, ttl=30.0, reclaim=True) is None  # a refresher's
    assert not (await store.bind_and_lease("unbound", "sess-u", "me", now=2001.0, ttl=30.0)).leased
    rebound = await store.bind_and_lease("unbound", "sess-u", "me", now=2001.0, ttl=30.0, reclaim=True)
    assert rebound.leased and rebound.checkout.lease_owner == "me" and not rebound.newly_bound
    fresh = await store.bind_and_lease("mine", "sess-m", "me", now=2001.0, ttl=30.0, reclaim=True)
    assert fresh.leased and fresh.newly_bound and fresh.checkout.checkout_session_id == "sess-m"
    taken = await store.bind_and_lease("theirs", "sess-t", "me", now=2001.0, ttl=30.0, reclaim=True)
    assert taken.newly_bound and not taken.leased and taken.checkout.lease_owner == "theirs"


async def test_lease_only_in_created_or_pending(store: Store) -> None:
    for state in STATES:
        await store.create_checkout(checkout(f"s-{state}", state=state))
        leased = await store.try_lease(f"s-{state}", "w", now=2000.0, ttl=10.0)
        assert (leased is not None) == (state in (State.CREATED, State.PENDING)), state
    assert await store.try_lease("unknown", "w", now=2000.0, ttl=10.0) is None


async def test_release_lease_only_by_its_owner(store: Store) -> None:
    await store.create_checkout(checkout("rl"))
    await store.try_lease("rl", "w1", now=2000.0, ttl=30.0)
    await store.release_lease("rl", "w2")
    assert await store.try_lease("rl", "w2", now=2001.0, ttl=30.0) is None
    await store.release_lease("rl", "w1")
    loaded = await store.get_checkout("rl")
    assert loaded is not None and loaded.lease_owner is None and loaded.lease_until is None
    assert await store.try_lease("rl", "w2", now=2002.0, ttl=30.0) is not None
    await store.release_lease("missing", "w1")  # nothing to release: no error


async def test_transition_with_owner(store: Store) -> None:
    await store.create_checkout(checkout("t"))
    await store.try_lease("t", "w1", now=2000.0, ttl=30.0)
    done = await store.transition(
        "t",
        owner="w1",
        now=2005.0,
        state=State.COMPLETED,
        changes={"charge_id": "ch-1", "result": {"ok": True, "x": 0.5}, "expires_at": 9999.5},
        events=[event("e1"), event("e2")],
    )
    assert done.state == State.COMPLETED and done.version == 1 and done.updated_at == 2005.0
    assert done.charge_id == "ch-1" and done.result == {"ok": True, "x": 0.5} and done.expires_at == 9999.5
    assert done.lease_owner is None and done.lease_until is None
    assert done.charge_permission_id is None  # untouched fields stay as they were
    assert await store.get_checkout("t") == done
    stored = [await store.get_event("e1"), await store.get_event("e2")]
    assert [e.ref for e in stored if e] == ["t", "t"]
    assert stored[0] and stored[1] and stored[0].seq < stored[1].seq


async def test_transition_clears_a_field_with_none_and_bumps_version_each_time(store: Store) -> None:
    await store.create_checkout(checkout("v", reason_code="Old"))
    first = await store.transition("v", owner=None, now=2000.0, state=State.PENDING, changes={"reason_code": None})
    assert first.reason_code is None and first.version == 1
    second = await store.transition("v", owner=None, now=2001.0, state=State.AUTHORIZED)
    assert second.version == 2 and second.state == State.AUTHORIZED


async def test_transition_lease_lost_writes_nothing(store: Store, backend: Backend) -> None:
    await store.create_checkout(checkout("ll"))
    await store.try_lease("ll", "w1", now=2000.0, ttl=10.0)
    await age_leases(backend, 10.0)
    await store.try_lease("ll", "w2", now=2010.0, ttl=10.0)  # w1's lease expired and w2 took it
    with pytest.raises(LeaseLost):
        await store.transition("ll", owner="w1", now=2011.0, state=State.COMPLETED, events=[event("lost")])
    assert await store.get_event("lost") is None
    loaded = await store.get_checkout("ll")
    assert loaded is not None and loaded.state == State.CREATED and loaded.version == 0
    assert loaded.lease_owner == "w2"

    await store.release_lease("ll", "w2")
    with pytest.raises(LeaseLost):  # an owner that holds nothing
        await store.transition("ll", owner="w2", now=2012.0, state=State.COMPLETED)


async def test_transition_by_owner_after_expiry_if_nobody_took_over(store: Store) -> None:
    await store.create_checkout(checkout("late"))
    await store.try_lease("late", "w1", now=2000.0, ttl=10.0)
    done = await store.transition("late", owner="w1", now=2100.0, state=State.COMPLETED)
    assert done.state == State.COMPLETED


async def test_transition_without_owner(store: Store, backend: Backend) -> None:
    await store.create_checkout(checkout("free"))
    await store.try_lease("free", "w1", now=2000.0, ttl=10.0)
    with pytest.raises(LeaseLost):  # someone holds an unexpired lease
        await store.transition("free", owner=None, now=2005.0, state=State.CANCELED, events=[event("c1")])
    assert await store.get_event("c1") is None
    await age_leases(backend, 10.0)
    canceled = await store.transition("free", owner=None, now=2010.0, state=State.CANCELED, events=[event("c1")])
    assert canceled.state == State.CANCELED and canceled.version == 1
    assert await store.get_event("c1") is not None


async def test_transition_errors(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.transition("missing", owner=None, now=1.0, state=State.CANCELED)
    with pytest.raises(NotFound):
        await store.transition("missing", owner="w", now=1.0, state=State.CANCELED)
    await store.create_checkout(checkout("e"))
    with pytest.raises(ValueError, match="state"):
        await store.transition("e", owner=None, now=1.0, state="paid")
    with pytest.raises(ValueError, match="amount"):
        await store.transition("e", owner=None, now=1.0, state=State.CANCELED, changes={"amount": "0"})
    loaded = await store.get_checkout("e")
    assert loaded is not None and loaded.version == 0


async def test_failed_insert_of_an_event_rolls_back_the_transition(store: Store) -> None:
    await store.create_checkout(checkout("x1"))
    await store.create_checkout(checkout("x2"))
    await store.transition("x1", owner=None, now=2000.0, state=State.PENDING, events=[event("same")])
    with pytest.raises(StoreError):
        await store.transition(
            "x2", owner=None, now=2001.0, state=State.COMPLETED, events=[event("new"), event("same")]
        )
    loaded = await store.get_checkout("x2")
    assert loaded is not None and loaded.state == State.CREATED and loaded.version == 0
    assert await store.get_event("new") is None


async def test_transition_to_a_session_bound_elsewhere_conflicts(store: Store) -> None:
    await store.create_checkout(checkout("s1", checkout_session_id="sess-1"))
    await store.create_checkout(checkout("s2"))
    with pytest.raises(SessionConflict):
        await store.transition(
            "s2", owner=None, now=1.0, state=State.PENDING, changes={"checkout_session_id": "sess-1"}
        )
    with pytest.raises(SessionConflict):
        await store.create_checkout(checkout("s3", checkout_session_id="sess-1"))


async def test_list_checkouts_filters_and_order(store: Store, backend: Backend) -> None:
    await store.create_checkout(checkout("old", state=State.PENDING, updated_at=10.0, checkout_session_id="s-old"))
    await store.create_checkout(checkout("new", state=State.PENDING, updated_at=30.0, checkout_session_id="s-new"))
    await store.create_checkout(checkout("mid", state=State.CREATED, updated_at=20.0, checkout_session_id="s-mid"))
    await store.create_checkout(checkout("unbound", state=State.PENDING, updated_at=5.0))
    await store.create_checkout(
        checkout("done", state=State.COMPLETED, updated_at=1.0, checkout_session_id="s-done")
    )
    await store.create_checkout(checkout("leased", state=State.PENDING, updated_at=2.0, checkout_session_id="s-l"))
    await store.try_lease("leased", "w", now=100.0, ttl=50.0)

    def refs(items: list) -> list[str]:
        return [c.ref for c in items]

    assert refs(await store.list_checkouts([State.PENDING, State.CREATED], now=100.0)) == ["old", "mid", "new"]
    assert refs(await store.list_checkouts([State.PENDING], now=100.0, bound_only=False)) == [
        "unbound",
        "old",
        "new",
    ]
    assert refs(await store.list_checkouts([State.PENDING, State.CREATED], now=100.0, limit=2)) == ["old", "mid"]
    assert refs(await store.list_checkouts([State.COMPLETED], now=100.0)) == ["done"]
    await age_leases(backend, 50.0)
    assert refs(await store.list_checkouts([State.PENDING], now=150.0)) == ["leased", "old", "new"]  # lease expired
    assert await store.list_checkouts([], now=100.0) == []
    with pytest.raises(ValueError):
        await store.list_checkouts(["bogus"], now=100.0)


async def test_transition_writes_the_superseding_events_when_the_earlier_type_is_stored(store: Store) -> None:
    await store.create_checkout(checkout("x"))
    await store.create_checkout(checkout("y"))
    await store.transition("x", owner=None, now=1100.0, state=State.CANCELED,
                           events=[event("e-x-canceled", type="checkout.canceled")])
    await store.transition("x", owner=None, now=1200.0, state=State.CREATED)  # reopened: the buyer paid after all
    for ref in ("x", "y"):
        await store.transition(ref, owner=None, now=1300.0, state=State.COMPLETED, events=[event(f"e-{ref}-plain")],
                               instead_after=("checkout.canceled", lambda ref=ref: [event(f"e-{ref}-superseding")]))
    ids = {e.id for e in await store.list_events()}
    assert {"e-x-superseding", "e-y-plain"} <= ids
    assert not {"e-x-plain", "e-y-superseding"} & ids


async def test_list_checkouts_pages_past_the_last_one_read(store: Store) -> None:
    """Keyset pages: every checkout once, ties in updated_at broken by ref."""
    for i, at in enumerate([1000.0, 1000.0, 1000.0, 1001.0, 1002.0]):
        await store.create_checkout(checkout(f"r{i}", state=State.PENDING, checkout_session_id=f"sess-{i}",
                                             updated_at=at))
    seen: list[str] = []
    page = await store.list_checkouts([State.PENDING], now=100.0, limit=2)
    while page:
        seen += [c.ref for c in page]
        page = await store.list_checkouts([State.PENDING], now=100.0, limit=2, after=page[-1])
    assert seen == ["r0", "r1", "r2", "r3", "r4"]
