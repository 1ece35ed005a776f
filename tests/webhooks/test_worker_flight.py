"""`WebhookWorker.run`: deliveries kept in flight continuously, not in lockstep batches.

The real stores and a real receiver over HTTP. Requests the receiver holds (`Receiver.held`) stand
for a slow merchant: while one is held, the tests check what else the worker does, by what the
receiver and the store saw, never by how long it took.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import cast

import pytest

from router.store.base import NewEvent, OutboxEvent, Store
from router.webhooks.worker import WebhookWorker, _Flight
from tests.support.receiver import Receiver
from tests.support.stores import StoreWrapper
from tests.webhooks.outbox import Clock, StoreFactory, add_checkout, add_event, new_ref
from tests.webhooks.test_worker import eventually, make_worker

STATES = ("pending", "authorized", "completed")  # a checkout's events, in the order it emits them


async def add_chain(store: Store, clock: Clock, length: int = len(STATES)) -> list[NewEvent]:
    """One checkout's first `length` events, written in order."""
    ref = new_ref()
    await add_checkout(store, clock(), ref)
    return [await add_event(store, clock(), state, ref=ref) for state in STATES[:length]]


@asynccontextmanager
async def running(worker: WebhookWorker, idle_interval: float = 0.05) -> AsyncIterator[asyncio.Event]:
    """`worker.run` in a task while inside; set the yielded event to stop it, which the exit waits for."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, idle_interval=idle_interval))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def assert_in_order(receiver: Receiver, chains: Sequence[Sequence[NewEvent]]) -> None:
    """Each event reached the receiver only after the one before it in its chain was answered 2xx."""
    received = receiver.received
    for chain in chains:
        for earlier, later in itertools.pairwise(chain):
            first_ok = next(i for i, r in enumerate(received) if r.event_id == earlier.id and r.status < 300)
            assert all(i > first_ok for i, r in enumerate(received) if r.event_id == later.id), (earlier, later)


async def _attempts_are(store: Store, event: NewEvent, attempts: int) -> bool:
    stored = await store.get_event(event.id)
    return stored is not None and stored.attempts == attempts


async def statuses(store: Store, events: Sequence[NewEvent]) -> list[str]:
    found = [await store.get_event(e.id) for e in events]
    return [e.status if e else "missing" for e in found]


async def test_many_refs_delivered_once_each_in_order(store: Store, receiver: Receiver, clock: Clock) -> None:
    receiver.delay, receiver.random_delay = 0.02, True  # answers end out of order
    chains = [await add_chain(store, clock) for _ in range(15)]
    events = [e for chain in chains for e in chain]
    async with make_worker(store, receiver.url, clock, batch=6) as worker, running(worker):
        await eventually(lambda: len(receiver.ids(ok_only=True)) >= len(events), timeout=30)
    assert sorted(receiver.ids()) == sorted(e.id for e in events)  # each once, none twice
    assert_in_order(receiver, chains)
    assert 2 <= receiver.max_inflight <= 6
    assert await statuses(store, events) == ["delivered"] * len(events)


async def test_a_slow_delivery_does_not_hold_up_the_others(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    slow = await add_chain(store, clock, 2)  # its first event is held; its second must wait for it
    others = [await add_chain(store, clock) for _ in range(8)]
    receiver.held.add(slow[0].id)
    async with make_worker(store, receiver.url, clock, batch=4, timeout=30) as worker, running(worker):
        # In lockstep, the three other slots of the held event's batch would wait for it too.
        others_ids = {e.id for chain in others for e in chain}
        await eventually(lambda: others_ids <= set(receiver.ids(ok_only=True)), timeout=30)
        assert receiver.inflight.get(slow[0].id) == 1  # still held all along
        assert slow[1].id not in receiver.ids()  # withheld behind its ref's first event
        receiver.release()
        await eventually(lambda: slow[1].id in receiver.ids(ok_only=True), timeout=30)
    assert_in_order(receiver, [slow, *others])
    assert sorted(receiver.ids()) == sorted([e.id for e in slow] + list(others_ids))


async def test_a_failing_ref_does_not_block_the_others(store: Store, receiver: Receiver, clock: Clock) -> None:
    failing = await add_chain(store, clock)
    others = [await add_chain(store, clock) for _ in range(5)]
    receiver.fail_times[failing[0].id] = 2
    async with make_worker(store, receiver.url, clock, batch=3) as worker, running(worker):
        others_ids = {e.id for chain in others for e in chain}
        await eventually(lambda: others_ids <= set(receiver.ids(ok_only=True)), timeout=30)
        assert receiver.ids().count(failing[0].id) == 1  # failed once, its retry not due yet
        assert failing[1].id not in receiver.ids()
        for failed in (1, 2):
            # The failure recorded first (its retry is scheduled from the clock of that moment), then the
            # clock reaches the retry; notify() saves waiting for the idle interval.
            await eventually(lambda n=failed: _attempts_are(store, failing[0], n), timeout=30)
            clock.advance(3600)
            worker.notify()
        await eventually(lambda: failing[2].id in receiver.ids(ok_only=True), timeout=30)
    assert receiver.ids().count(failing[0].id) == 3
    assert_in_order(receiver, [failing, *others])
    assert await statuses(store, failing) == ["delivered"] * 3


async def test_stop_waits_for_the_deliveries_in_flight(store: Store, receiver: Receiver, clock: Clock) -> None:
    events = [e for _ in range(4) for e in await add_chain(store, clock, 1)]
    queued = [e for _ in range(6) for e in await add_chain(store, clock, 1)]
    receiver.held.update(e.id for e in events)
    async with make_worker(store, receiver.url, clock, batch=4, timeout=30) as worker:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, idle_interval=0.05))
        await eventually(lambda: sum(receiver.inflight.values()) == 4)
        stop.set()
        await asyncio.sleep(0.2)
        assert not task.done()  # a delivery under way is finished, not dropped
        receiver.release()
        await asyncio.wait_for(task, 30)
    assert sorted(receiver.ids()) == sorted(e.id for e in events)  # nothing new claimed after the stop
    assert await statuses(store, events) == ["delivered"] * 4
    assert await statuses(store, queued) == ["pending"] * 6
    assert await store.release_leases(worker.owner) == 0  # and it holds no lease: those it queued ahead
    claimed = await store.claim_events("next-worker", clock(), 60, 10)  # are due again at once
    assert sorted(e.id for e in claimed) == sorted(e.id for e in queued)


class RecordGate(StoreWrapper):
    """The store, with the recording of `held` events' deliveries waiting until `open` is set."""

    def __init__(self, store: Store, held: set[str]) -> None:
        super().__init__(store)
        self.held = held
        self.open = asyncio.Event()

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        if event_id in self.held:
            await self.open.wait()
        await self.inner.event_delivered(event_id, owner, now)


async def test_a_slot_is_free_once_its_post_ends(store: Store, receiver: Receiver, clock: Clock) -> None:
    """The next event is sent while the one before it in the slot is still being recorded."""
    first, second, third = [e for _ in range(3) for e in await add_chain(store, clock, 1)]
    gate = RecordGate(store, {first.id, second.id})
    async with make_worker(cast(Store, gate), receiver.url, clock, batch=2) as worker, running(worker):
        try:
            # Answered is not yet recorded: wait for its record, which nothing holds back.
            await eventually(lambda: _all_delivered(store, [third]))
            assert await statuses(store, [first, second]) == ["pending", "pending"]
        finally:
            gate.open.set()  # else, on a failure, the stop would wait out the held records
        await eventually(lambda: _all_delivered(store, [first, second]))
    assert receiver.max_inflight <= 2


def _add_one_event_chains(flight: _Flight, *event_ids: str) -> None:
    for event_id in event_ids:
        flight.add([OutboxEvent(id=event_id, ref=f"ref-{event_id}", type="t", created=0.0, body=b"{}", seq=0)], 1.0)


async def test_a_slot_starts_its_next_post_in_the_step_its_post_ended() -> None:
    """In-process, `_Flight` alone: as A's POST ends, B's begins before anything else the loop has to run
    (a task per POST would begin after the rest of the loop's turn: under a wave of answers, a wait)."""
    happened: list[str] = []
    answer = asyncio.Event()

    async def attempt(event: OutboxEvent) -> asyncio.Task[bool]:
        happened.append(f"POST {event.id}")
        if event.id == "a":
            await answer.wait()
            asyncio.get_running_loop().call_soon(happened.append, "the loop's next callback")
        return asyncio.create_task(asyncio.sleep(0, result=True))

    flight = _Flight(attempt, 1, lambda: 0.0)
    _add_one_event_chains(flight, "a", "b")
    await eventually(lambda: happened == ["POST a"])
    answer.set()
    await flight.drain()
    assert happened == ["POST a", "POST b", "the loop's next callback"]
    assert len(flight) == 0 and flight.ended == 2


async def test_an_attempt_that_raises_leaves_the_flight() -> None:
    """A bug in an attempt (not a failed POST, which is recorded): the event leaves the flight, so that a later
    claim can take it again once its lease runs out, and the other slots go on."""
    happened: list[str] = []

    async def attempt(event: OutboxEvent) -> asyncio.Task[bool]:
        happened.append(f"POST {event.id}")
        if event.id == "a":
            raise RuntimeError("a bug")
        return asyncio.create_task(asyncio.sleep(0, result=True))

    flight = _Flight(attempt, 2, lambda: 0.0)
    _add_one_event_chains(flight, "a", "b")
    await flight.drain()
    assert happened == ["POST a", "POST b"]
    assert len(flight) == 0 and flight.ended == 2 and flight.sending == 0


async def _all_delivered(store: Store, events: Sequence[NewEvent]) -> bool:
    return await statuses(store, events) == ["delivered"] * len(events)


async def test_a_queued_event_whose_lease_runs_short_is_not_sent(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    """Claimed ahead, it waits for a slot; once less than a whole attempt is left on its lease it is not
    sent (another worker could claim it mid-attempt) but claimed anew when the lease has run out."""
    first, *queued = [e for _ in range(3) for e in await add_chain(store, clock, 1)]
    receiver.held.add(first.id)
    async with make_worker(store, receiver.url, clock, batch=1, lease_seconds=60, timeout=30) as worker, \
            running(worker):
        await eventually(lambda: receiver.inflight.get(first.id) == 1)  # the other two queued behind it
        clock.advance(31)  # 29 s left on their leases: less than the 30 s an attempt may take
        receiver.release()
        await eventually(lambda: _all_delivered(store, [first]))
        await asyncio.sleep(0.2)  # the worker claims again meanwhile: they are still leased
        assert receiver.ids() == [first.id]
        clock.advance(30)
        worker.notify()
        await eventually(lambda: _all_delivered(store, queued))
    assert sorted(receiver.ids()) == sorted(e.id for e in [first, *queued])  # each sent once


class RecordDuringClaim(RecordGate):
    """Once `armed`, the gate opens inside a claim that took one of the `held` events again (its lease ran
    out while it was being recorded), and that claim returns only once the record and its delivery ended."""

    def __init__(self, store: Store, held: set[str]) -> None:
        super().__init__(store, held)
        self.armed = False
        self.recorded = asyncio.Event()

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        await super().event_delivered(event_id, owner, now)
        if event_id in self.held:
            self.recorded.set()

    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        events = await self.inner.claim_events(owner, now, lease_ttl, limit)
        if self.armed and not self.open.is_set() and any(e.id in self.held for e in events):
            self.open.set()
            await self.recorded.wait()
            await asyncio.sleep(0.1)  # the delivery's task ends and leaves the flight meanwhile
        return events


async def test_an_event_recorded_during_the_claim_that_took_it_again_is_not_sent_again(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    """Its record hung past its lease, so a claim took it again; the record ends while that claim is under
    way: the claim's answer must not start it a second time (it is delivered)."""
    event = await add_event(store, clock(), "completed")
    gate = RecordDuringClaim(store, {event.id})
    async with make_worker(cast(Store, gate), receiver.url, clock, batch=1, lease_seconds=60, timeout=30) as worker, \
            running(worker):
        await eventually(lambda: event.id in receiver.ids(ok_only=True))  # answered; its record waits
        clock.advance(61)  # the lease runs out: the next claim takes the event again
        gate.armed = True
        worker.notify()
        await eventually(gate.recorded.is_set)
        await asyncio.sleep(0.3)  # the claim's answer is handled, and the worker claims again meanwhile
    assert receiver.ids() == [event.id]
    assert await statuses(store, [event]) == ["delivered"]


async def test_cancelled_mid_flight_loses_nothing(
    store_factory: StoreFactory, receiver: Receiver, clock: Clock
) -> None:
    store_a, store_b = store_factory(), store_factory()  # the dying process and the one after it
    await store_a.open()
    await store_b.open()
    events = [e for _ in range(6) for e in await add_chain(store_a, clock, 1)]
    receiver.held.update(e.id for e in events)
    doomed = make_worker(store_a, receiver.url, clock, batch=6, owner="worker-a", lease_seconds=60)
    task = asyncio.create_task(doomed.run(asyncio.Event(), idle_interval=0.05))
    await eventually(lambda: sum(receiver.inflight.values()) == 6)
    task.cancel()  # the process dies with every event claimed and sent, none answered
    with pytest.raises(asyncio.CancelledError):
        await task
    await doomed.aclose()
    receiver.release()
    await eventually(lambda: sum(receiver.inflight.values()) == 0)
    assert await statuses(store_b, events) == ["pending"] * 6

    async with make_worker(store_b, receiver.url, clock, batch=6, owner="worker-b", lease_seconds=60) as rescuer:
        assert await rescuer.run_once() == 0  # still leased to the dead worker
        clock.advance(61)
        async with running(rescuer):
            async def all_recorded() -> bool:
                return await statuses(store_b, events) == ["delivered"] * 6

            await eventually(all_recorded, timeout=30)
    # Sent by each worker (the receiver answered the dead one's requests too, unheard): at least once.
    assert all(receiver.ids().count(e.id) == 2 for e in events)


class SlowAnswers(StoreWrapper):
    """The store, answering claims and records after a random pause: other deliveries end, and their
    records commit, between a claim's statement and the worker reading its answer (a slow network to
    PostgreSQL, a busy SQLite thread)."""

    def __init__(self, store: Store, rng: random.Random) -> None:
        super().__init__(store)
        self.rng = rng

    async def _pause(self) -> None:
        await asyncio.sleep(self.rng.choice((0, 0, 0.005, 0.02)))

    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        events = await self.inner.claim_events(owner, now, lease_ttl, limit)
        await self._pause()
        return events

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        await self._pause()
        await self.inner.event_delivered(event_id, owner, now)


@pytest.mark.parametrize("seed", range(4))
async def test_random_outboxes_each_event_delivered_in_order(
    store: Store, receiver: Receiver, clock: Clock, seed: int
) -> None:
    """A model of the outbox: random chains, random failures, random answer times, events added while
    the worker runs; every event ends delivered, once per success, each after its ref's previous one."""
    rng = random.Random(seed)
    receiver.delay, receiver.random_delay = 0.015, True
    chains: list[list[NewEvent]] = []

    async def add_some(count: int) -> None:
        for _ in range(count):
            chain = await add_chain(store, clock, rng.randint(1, 3))
            for event in chain:
                if rng.random() < 0.2:
                    receiver.fail_times[event.id] = rng.randint(1, 2)
            chains.append(chain)

    def all_delivered() -> Callable[[], bool]:
        return lambda: len(set(receiver.ids(ok_only=True))) == sum(len(c) for c in chains)

    await add_some(rng.randint(5, 15))
    slow = cast(Store, SlowAnswers(store, random.Random(seed)))
    async with make_worker(slow, receiver.url, clock, batch=rng.choice([1, 3, 8])) as worker, running(worker):
        await add_some(rng.randint(0, 10))
        worker.notify()

        async def delivered_as_time_passes() -> bool:
            # Failed events come due as the clock passes their retry time; a failure recorded after one
            # step of the clock is scheduled from it and comes due at the next.
            clock.advance(3600)
            worker.notify()
            await asyncio.sleep(0.05)
            return all_delivered()()

        await eventually(delivered_as_time_passes, timeout=30)
    events = [e for chain in chains for e in chain]
    ok = receiver.ids(ok_only=True)
    assert sorted(ok) == sorted(e.id for e in events)  # each answered 2xx exactly once
    assert receiver.max_inflight_per_event == 1
    assert receiver.max_inflight <= worker.batch  # queued ahead, but never more POSTs at once than batch
    assert_in_order(receiver, chains)
    assert await statuses(store, events) == ["delivered"] * len(events)
