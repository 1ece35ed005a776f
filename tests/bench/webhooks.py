"""Webhooks: events delivered per second from the SQLite outbox against a receiver answering in 100 ms.

The receiver is tests/bench/_upstream.py in its own process, answering after LATENCY_MS.
The baseline is the ideal: `batch` events in flight per LATENCY_MS. The worker runs as the service
runs it, `WebhookWorker.run(stop)` on its own client (router.outbound), until every event of the run
is delivered. Plain signed POSTs through the same client, `batch` continuously in flight without the
store, are shown too: the gap between them and the outbox is what claim, lease and record cost.

Steady state, not start-up: a worker in the service lives for days with its connections open, so
both the worker and the plain sender first deliver one untimed batch (which opens `batch` TCP
connections and loads the trust store, ~25 ms), and a run is CYCLES × batch events so the first
and last round trips (the ramp up and the tail) are a small part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import httpx

from router.checkout.events import event_for
from router.checkout.model import Checkout, State
from router.ops.collector import settle_collector
from router.outbound import async_client
from router.store import open_store
from router.store.base import NewEvent, OutboxEvent, Store
from router.webhooks.worker import WebhookWorker, post_event
from tests.support.collector import restored_collector
from tests.support.stores import StoreWrapper

from .outbound import run_loop, upstream

CYCLES = int(os.environ.get("BENCH_WEBHOOK_CYCLES", "30"))  # events per timed run = batch × CYCLES
BATCHES = (5, 20, 100)
LATENCY_MS = 100
ROUNDS = 2
SECRET = "whsec_bench_secret"
FILL_AT_ONCE = 100  # concurrent writes while filling (the store commits them together)

_serial = iter(range(10**9))


def make_events(count: int, now: float) -> list[tuple[Checkout, NewEvent]]:
    """`count` completed checkouts and the event announcing each, as the orchestrator builds them."""
    pairs = []
    for _ in range(count):
        i = next(_serial)
        checkout = Checkout(ref=f"bench_{i:06d}_abcdefghijklmnop", merchant_reference=f"order-{i}",
                            amount="14.00", currency="USD", payment_intent="AuthorizeWithCapture",
                            can_handle_pending=True, created_at=now, expires_at=now + 3600, updated_at=now)
        event = event_for(replace(checkout, state=State.COMPLETED), now)
        assert event is not None
        pairs.append((checkout, event))
    return pairs


async def fill(store: Store, count: int) -> None:
    """Write `count` checkouts and their events the way the orchestrator does (one transaction per change)."""
    now = time.time()

    async def write(checkout: Checkout, event: NewEvent) -> None:
        await store.create_checkout(checkout)
        await store.transition(checkout.ref, owner=None, now=now, state=State.COMPLETED, events=[event])

    pairs = make_events(count, now)
    for i in range(0, count, FILL_AT_ONCE):
        await asyncio.gather(*(write(c, e) for c, e in pairs[i:i + FILL_AT_ONCE]))


class CountingStore(StoreWrapper):
    """The store, counting `event_delivered` calls and setting `done` once `target` is reached."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.delivered = 0
        self.target = 0  # none until a run sets one
        self.done = asyncio.Event()

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        await self.inner.event_delivered(event_id, owner, now)
        self.delivered += 1
        if self.target and self.delivered >= self.target:
            self.done.set()


async def outbox_run(db: Path, url: str, batch: int) -> tuple[float, int, float]:
    """(seconds, delivered, CPU seconds) for batch × CYCLES events, after one untimed warm-up batch."""
    store = open_store(f"sqlite:///{db}")
    await store.open()
    counting = CountingStore(store)
    try:
        async with WebhookWorker(cast(Store, counting), url, SECRET, batch=batch) as worker:
            await fill(store, batch)
            warmed = await worker.run_once()  # untimed: opens the pool's connections
            assert warmed == batch, f"warm-up delivered {warmed} of {batch}"
            await fill(store, batch * CYCLES)
            counting.delivered, counting.target = 0, batch * CYCLES
            stop = asyncio.Event()
            cpu, started = time.process_time(), time.perf_counter()
            task = asyncio.create_task(worker.run(stop))
            await counting.done.wait()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            stop.set()
            await task
            return seconds, counting.delivered, cpu
    finally:
        await store.close()


async def baseline_run(url: str, batch: int) -> tuple[float, int, float]:
    """(seconds, successes, CPU seconds) POSTing the same kind of bodies, signed, `batch` continuously in
    flight without any store, after one untimed warm-up batch."""
    events = [OutboxEvent(id=e.id, ref=c.ref, type=e.type, created=e.created, body=e.body, seq=i)
              for i, (c, e) in enumerate(make_events(batch * (CYCLES + 1), time.time()))]
    async with async_client(max_connections=batch, timeout=httpx.Timeout(10)) as client:
        async def send(event: OutboxEvent) -> bool:
            return (await post_event(client, url, SECRET, event, int(time.time()), 10.0)).ok

        warm = await asyncio.gather(*(send(e) for e in events[:batch]))
        assert all(warm), "warm-up POSTs failed"
        queue = iter(events[batch:])
        ok = 0

        async def sender() -> None:
            nonlocal ok
            for event in queue:
                sent = await send(event)  # awaited first: `ok += await …` would read ok before the wait
                ok += sent

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(batch)))
        return time.perf_counter() - started, ok, time.process_time() - cpu


@contextlib.contextmanager
def collector_as_served() -> Iterator[None]:
    """This process's garbage collector as a serving process sets it (the worker runs in one), until the end
    of the section."""
    with restored_collector():
        settle_collector()
        yield


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, upstream() as (base, _), collector_as_served():
        url = base + "/hooks"
        print("| what | events | events/s | CPU µs/event | vs ideal |\n|---|---:|---:|---:|---:|")
        for batch in BATCHES:
            events, ideal = batch * CYCLES, batch * 1000 / LATENCY_MS
            outbox: tuple[float, float] = (0.0, 0.0)
            plain: tuple[float, float] = (0.0, 0.0)
            for run in range(ROUNDS):  # interleaved, best of each, to share the machine's noise fairly
                db = Path(tmp) / f"outbox-{batch}-{run}.db"
                seconds, delivered, cpu = run_loop(outbox_run(db, url, batch))
                assert delivered == events, f"only {delivered} of {events} delivered"
                outbox = max(outbox, (delivered / seconds, 1e6 * cpu / delivered))
                seconds, ok, cpu = run_loop(baseline_run(url, batch))
                assert ok == events, f"only {ok} of {events} plain POSTs succeeded"
                plain = max(plain, (ok / seconds, 1e6 * cpu / ok))
            print(f"| outbox → receiver (SQLite, batch {batch}) | {events} | {outbox[0]:,.0f} | {outbox[1]:,.0f} | "
                  f"{outbox[0] / ideal:.2f}x |")
            print(f"| plain signed POSTs, same client ({batch} in flight) | {events} | {plain[0]:,.0f} | "
                  f"{plain[1]:,.0f} | {plain[0] / ideal:.2f}x |")
            print(f"| ideal: {batch} in flight / {LATENCY_MS} ms | – | {ideal:,.0f} | – | 1.00x |", flush=True)
        print(f"\n({CYCLES} × batch events per timed run after one untimed warm-up batch, best of {ROUNDS} "
              f"interleaved runs, on uvloop, the garbage collector set as in `serve`; the worker as the service "
              f"runs it (run(stop)); receiver: "
              f"tests/bench/_upstream.py answering in {LATENCY_MS} ms in its own process; the worker's own client, "
              f"router.outbound; CPU is this process's, the store's thread included; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
