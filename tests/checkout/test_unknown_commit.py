"""A lease write whose COMMIT outcome is unknown: the server committed it, the connection went before the
answer came back (or a release the store could not confirm). The instance's own lease is then in the row
while it believes it holds none; the buyer's retry must not wait for it to run out (lease_seconds). Real
PostgreSQL, through a proxy that cuts the connection right after forwarding the COMMIT; the real emulator
in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import pytest

from router.checkout.model import Busy, NewCheckout, State
from router.checkout.service import CheckoutService
from router.store import open_store
from router.store.base import Store, StoreUnavailable
from tests.checkout.conftest import Amazon, Clock, InjectedError, make_amazon
from tests.store.tcp_proxy import CommitCutter
from tests.support.stores import Backend, StoreWrapper

ORDER = NewCheckout("order-1", "14.00", "USD", "AuthorizeWithCapture", False)
LEASE_SECONDS = 60.0  # far longer than the test may take: the retry must not wait for it


@pytest.fixture
async def cutter(pg_backend: Backend) -> AsyncIterator[CommitCutter]:
    parts = urlsplit(pg_backend.url)
    proxy = CommitCutter(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def cut_store(pg_backend: Backend, cutter: CommitCutter) -> AsyncIterator[Store]:
    """The service's store, reaching PostgreSQL through the cutter."""
    parts = urlsplit(pg_backend.url)
    user = f"{parts.username}@" if parts.username else ""
    store = open_store(urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{cutter.port}")))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def direct(pg_backend: Backend) -> AsyncIterator[Store]:
    """The test's own view of the database, behind the service's back."""
    store = await pg_backend.opened()
    yield store
    await store.close()


@pytest.fixture
async def amazon() -> AsyncIterator[Amazon]:
    world = make_amazon(Clock())
    yield world
    await world.client.aclose()


async def test_a_retry_after_a_lease_whose_commit_went_unanswered_is_not_held_for_the_lease(
    cut_store: Store, direct: Store, cutter: CommitCutter, amazon: Amazon
) -> None:
    service = CheckoutService(cut_store, amazon.client, clock=Clock(), lease_seconds=LEASE_SECONDS, wait_seconds=2)
    checkout = await service.register(ORDER)
    session_id = amazon.session("14.00").session_id

    cutter.cut_after_commit()
    with pytest.raises(StoreUnavailable):  # the buyer's first return: bind + lease committed, answer lost
        await service.finalize(checkout.ref, session_id)
    assert cutter.cuts == 1
    left = await direct.get_checkout(checkout.ref)
    assert left is not None and left.checkout_session_id == session_id and left.lease_owner == service.owner
    assert left.state == State.CREATED and amazon.faults.sent == 0  # nothing went to Amazon

    started = time.monotonic()
    outcome = await service.finalize(checkout.ref, session_id)  # the buyer reloads: our own lease, taken back
    assert outcome.checkout.state == State.COMPLETED and outcome.error is None
    assert time.monotonic() - started < LEASE_SECONDS / 4
    done = await direct.get_checkout(checkout.ref)
    assert done is not None and done.state == State.COMPLETED and done.lease_owner is None


async def test_after_a_commit_went_unanswered_another_instances_lease_is_still_not_taken(
    cut_store: Store, direct: Store, cutter: CommitCutter, amazon: Amazon
) -> None:
    service = CheckoutService(cut_store, amazon.client, clock=Clock(), lease_seconds=LEASE_SECONDS, wait_seconds=1)
    checkout = await service.register(ORDER)
    session_id = amazon.session("14.00").session_id
    cutter.cut_after_commit()
    with pytest.raises(StoreUnavailable):
        await service.finalize(checkout.ref, session_id)
    # Meanwhile another instance's lease replaced ours (ours expired, say): not this instance's to take.
    await direct.release_lease(checkout.ref, service.owner)
    assert await direct.try_lease(checkout.ref, "another-instance", time.time(), LEASE_SECONDS) is not None
    with pytest.raises(Busy):
        await service.finalize(checkout.ref, session_id)
    held = await direct.get_checkout(checkout.ref)
    assert held is not None and held.lease_owner == "another-instance" and amazon.faults.sent == 0


async def test_two_retries_at_once_after_a_commit_went_unanswered_call_amazon_once(
    cut_store: Store, direct: Store, cutter: CommitCutter, amazon: Amazon
) -> None:
    """The lease stays exclusive between this instance's own callers: one retry takes it back and leads,
    the other joins it (were both to take it back, both would call Amazon)."""
    service = CheckoutService(cut_store, amazon.client, clock=Clock(), lease_seconds=LEASE_SECONDS, wait_seconds=5)
    checkout = await service.register(ORDER)
    session_id = amazon.session("14.00").session_id
    cutter.cut_after_commit()
    with pytest.raises(StoreUnavailable):
        await service.finalize(checkout.ref, session_id)

    outcomes = await asyncio.gather(*(service.finalize(checkout.ref, session_id) for _ in range(2)))
    assert [o.checkout.state for o in outcomes] == [State.COMPLETED, State.COMPLETED]
    assert amazon.faults.sent == 1


async def test_a_release_the_store_could_not_confirm_is_taken_back_on_the_next_return(
    store: Store, amazon: Amazon
) -> None:
    """The finalize failed before Amazon answered and the release after it found the store unreachable:
    our lease stays in the row, and the next return takes it back (both backends)."""

    class ReleaseUnanswered(StoreWrapper):
        failures = 1

        async def release_lease(self, ref: str, owner: str) -> None:
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("injected: the connection went during the release")
            await self.inner.release_lease(ref, owner)

    service = CheckoutService(cast(Store, ReleaseUnanswered(store)), amazon.client, clock=Clock(),
                              lease_seconds=LEASE_SECONDS, wait_seconds=1)
    checkout = await service.register(ORDER)
    session_id = amazon.session("14.00").session_id
    amazon.faults.queue.append("error")  # something that is not Amazon's answer: the lease must go
    with pytest.raises(InjectedError):
        await service.finalize(checkout.ref, session_id)
    left = await store.get_checkout(checkout.ref)
    assert left is not None and left.lease_owner == service.owner  # the release never happened

    outcome = await service.finalize(checkout.ref, session_id)
    assert outcome.checkout.state == State.COMPLETED and outcome.error is None
