"""Finalize leases between instances whose clocks disagree (PostgreSQL: the database server's clock decides).

The store's clock is its caller's: every method takes `now` (CheckoutService passes its `clock()`). Here two
stores on one database are called with clocks a minute apart, as two hosts without NTP would be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from router.checkout.model import LeaseLost, State
from router.store.base import Store
from tests.support.stores import Backend, checkout

SKEW = 60.0  # far beyond any lease in this test
TTL = 1.0


def ahead() -> float:
    return time.time() + SKEW


def behind() -> float:
    return time.time() - SKEW


@pytest.fixture
async def two(pg_backend: Backend) -> AsyncIterator[tuple[Store, Store]]:
    """Two instances' stores on one PostgreSQL schema."""
    first, second = await pg_backend.opened(), await pg_backend.opened()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_an_instance_whose_clock_runs_ahead_cannot_take_a_live_lease(two: tuple[Store, Store]) -> None:
    mine, fast = two
    for ref in ("leased", "unbound"):
        await mine.create_checkout(checkout(ref))
    assert (await mine.bind_and_lease("leased", "S01-leased", "me", time.time(), TTL)).leased
    assert await mine.try_lease("unbound", "me", time.time(), TTL) is not None

    # Every way the other instance might act on a lease it judged expired on its own clock:
    assert await fast.try_lease("leased", "fast", ahead(), TTL) is None
    assert not (await fast.bind_and_lease("leased", "S01-leased", "fast", ahead(), TTL)).leased
    assert not (await fast.bind_and_lease("unbound", "S01-unbound", "fast", ahead(), TTL)).leased
    with pytest.raises(LeaseLost):
        await fast.transition("leased", owner=None, now=ahead(), state=State.CANCELED)
    assert await fast.cancel_unbound("unbound", ahead(), {}, []) is None
    assert [c.ref for c in await fast.list_checkouts([State.CREATED], now=ahead())] == []
    assert await fast.list_due_resumes(now=ahead(), resume_after=0.0) == []
    leased = await mine.get_checkout("leased")
    assert leased is not None and leased.lease_owner == "me" and leased.state == State.CREATED

    done = await mine.transition("leased", owner="me", now=time.time(), state=State.COMPLETED)
    assert done.state == State.COMPLETED  # the holder finishes; nobody else finalized meanwhile


async def test_an_expired_lease_is_taken_even_by_an_instance_whose_clock_runs_behind(
    two: tuple[Store, Store],
) -> None:
    mine, slow = two
    await mine.create_checkout(checkout("held"))
    assert (await mine.bind_and_lease("held", "S01-held", "me", time.time(), TTL)).leased
    assert await slow.try_lease("held", "slow", behind(), TTL) is None  # still live
    await asyncio.sleep(TTL + 0.2)  # the holder died: its lease ran out on the server's clock

    assert [c.ref for c in await slow.list_checkouts([State.CREATED], now=behind())] == ["held"]
    taken = await slow.bind_and_lease("held", "S01-held", "slow", behind(), TTL)
    assert taken.leased and taken.checkout.lease_owner == "slow"
    assert await mine.try_lease("held", "me", ahead(), TTL) is None  # the new holder's lease is live for all
    with pytest.raises(LeaseLost):
        await mine.transition("held", owner="me", now=time.time(), state=State.COMPLETED)
