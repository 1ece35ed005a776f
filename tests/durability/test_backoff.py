"""An Amazon outage costs O(log) resumes per checkout, not one per reconciler pass (SQLite and PostgreSQL).

In process, with the clock injected: real store, the emulator on a real socket (it counts the calls),
the real client, service and reconcilers. Two reconcilers on one store stand for two instances (or a
restart): the schedule lives in the store, so together they resume no more often than one.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from router.amazon_pay import AmazonPayClient, ClientConfig, RetryPolicy, load_private_key
from router.amazon_pay.breaker import CircuitBreaker
from router.checkout.model import NewCheckout, State
from router.checkout.reconciler import MAX_RESUME_DELAY, Reconciler
from router.checkout.service import CheckoutService
from router.store import open_store
from router.store.base import Store
from tests.support.config import KEY_ID
from tests.support.emulator import Emulator

INTERVAL = 5.0  # seconds between passes
RESUME_AFTER = 15.0
OUTAGE = 20 * 60.0


@dataclass
class World:
    store: Store
    client: AmazonPayClient
    emulator: Emulator
    now: float = 1_800_000_000.0

    def clock(self) -> float:
        return self.now

    def reconciler(self, breaker: CircuitBreaker | None = None) -> Reconciler:
        service = CheckoutService(self.store, self.client, clock=self.clock)  # its own lease owner
        return Reconciler(service, interval=INTERVAL, resume_after=RESUME_AFTER, clock=self.clock,
                          breaker=breaker)

    async def abandoned_checkout(self, session_id: str) -> str:
        """A bound checkout whose finalize holder died before it could call Amazon."""
        service = CheckoutService(self.store, self.client, clock=self.clock)
        checkout = await service.register(NewCheckout("order-1", "14.00", "USD", "AuthorizeWithCapture", False))
        await self.store.bind_session(checkout.ref, session_id, self.now)
        return checkout.ref

    async def passes(self, reconcilers: list[Reconciler], seconds: float) -> None:
        for i in range(int(seconds / INTERVAL)):
            self.now += INTERVAL
            await reconcilers[i % len(reconcilers)].run_once()

    def finalize_calls(self, session_id: str) -> int:
        return len(self.emulator.requests("finalizeCheckoutSession", session_id))

    def recover(self, session_id: str) -> None:
        session = self.emulator.core.state.sessions[session_id]
        session.spec = replace(session.spec, fail_first_n=0)


@pytest.fixture
async def world(db_url: str, emulator: Emulator, key_files: tuple[Path, Path]) -> AsyncIterator[World]:
    store = open_store(db_url)
    await store.open()
    config = ClientConfig(public_key_id=KEY_ID, private_key=load_private_key(key_files[0].read_bytes()),
                          region="us", endpoint=emulator.url,
                          retry=RetryPolicy(max_attempts=1, connect_timeout=2, read_timeout=5, deadline=10))
    async with AmazonPayClient(config) as client:
        yield World(store, client, emulator)
    await store.close()


def log2_bound(seconds: float) -> int:
    """Resumes that doubling delays from RESUME_AFTER allow in `seconds` (jitter shortens them by <= 20 %)."""
    doublings = math.log2(min(seconds, MAX_RESUME_DELAY) / (0.8 * RESUME_AFTER)) + 1
    return math.ceil(doublings) + math.ceil(max(0.0, seconds - MAX_RESUME_DELAY) / (0.8 * MAX_RESUME_DELAY)) + 1


async def test_an_outage_costs_logarithmically_many_resumes(world: World) -> None:
    down = world.emulator.create_session(fail_first_n=1000, fail_status=503)
    ref = await world.abandoned_checkout(down)
    instances = [world.reconciler(), world.reconciler()]
    await world.passes(instances, OUTAGE)
    resumes = world.finalize_calls(down)
    passes = int(OUTAGE / INTERVAL)
    assert 4 <= resumes <= log2_bound(OUTAGE) < passes / 20  # was one resume per pass: ~235 here
    stored = await world.store.get_checkout(ref)
    assert stored is not None and stored.state == State.CREATED  # still waiting, nothing lost
    world.recover(down)
    await world.passes(instances, MAX_RESUME_DELAY + INTERVAL)  # the next resume comes within the cap
    stored = await world.store.get_checkout(ref)
    assert stored is not None and stored.state == State.COMPLETED
    assert world.finalize_calls(down) == resumes + 1


async def test_an_open_breaker_keeps_background_work_off_amazon(world: World) -> None:
    down = world.emulator.create_session(fail_first_n=1000, fail_status=503)
    refs = [await world.abandoned_checkout(world.emulator.create_session(fail_first_n=1000, fail_status=503))
            for _ in range(5)]
    refs.append(await world.abandoned_checkout(down))
    breaker = CircuitBreaker(threshold=3, window=60, cooldown=120, clock=world.clock)
    world.client.breaker = breaker
    reconciler = world.reconciler(breaker)
    await world.passes([reconciler], RESUME_AFTER + INTERVAL)  # all six are due: the breaker opens at 3
    assert breaker.state == "open"
    calls = sum(len(world.emulator.requests(session_id=s)) for s in world.emulator.core.state.sessions)
    assert calls == 3  # resume 1: finalize + read, both 503; resume 2: finalize 503, and it opens
    due = await world.store.list_due_resumes(now=world.now, resume_after=RESUME_AFTER)
    assert sorted(d.attempts for d in due) == [0, 0, 0, 0]  # the other four skipped, not counted
    await world.passes([reconciler], OUTAGE)
    during = sum(len(world.emulator.requests(session_id=s)) for s in world.emulator.core.state.sessions)
    assert during <= 3 + OUTAGE / breaker.cooldown  # one probe per cool-down at most
    for session_id in world.emulator.core.state.sessions:
        world.recover(session_id)
    await world.passes([reconciler], breaker.cooldown + MAX_RESUME_DELAY + INTERVAL)
    for ref in refs:
        stored = await world.store.get_checkout(ref)
        assert stored is not None and stored.state == State.COMPLETED
