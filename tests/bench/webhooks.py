"""Webhooks: events delivered per second from the SQLite outbox against a receiver answering in 100 ms.

The receiver is tests/bench/_upstream.py in its own process, answering after LATENCY_MS.
The baseline is the ideal: `batch` events in flight per LATENCY_MS. The worker uses its own client
(router.outbound). Plain signed POSTs through the same client, `batch` at a time without the store,
are shown too: the gap between them and the outbox is what claim, lease and record cost.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from router.checkout.events import event_for
from router.checkout.model import Checkout, State
from router.outbound import async_client
from router.store import open_store
from router.store.base import NewEvent, OutboxEvent, Store
from router.webhooks.worker import WebhookWorker, post_event

from .outbound import run_loop, upstream

CYCLES = int(os.environ.get("BENCH_WEBHOOK_CYCLES", "10"))  # batches per run: events = batch × CYCLES
BATCHES = (5, 20, 100)
LATENCY_MS = 100
ROUNDS = 2
SECRET = "whsec_bench_secret"


def make_events(count: int, now: float) -> list[tuple[Checkout, NewEvent]]:
    """`count` completed checkouts and the event announcing each, as the orchestrator builds them."""
    pairs = []
    for i in range(count):
        checkout = Checkout(ref=f"bench_{i:06d}_abcdefghijklmnop", merchant_reference=f"order-{i}",
                            amount="14.00", currency="USD", payment_intent="AuthorizeWithCapture",
                            can_handle_pending=True, created_at=now, expires_at=now + 3600, updated_at=now)
        event = event_for(replace(checkout, state=State.COMPLETED), now)
        assert event is not None
        pairs.append((checkout, event))
    return pairs


async def fill(store: Store, pairs: list[tuple[Checkout, NewEvent]], now: float) -> None:
    """Write each checkout and its event the way the orchestrator does (one transaction per change)."""
    for checkout, event in pairs:
        await store.create_checkout(checkout)
        await store.transition(checkout.ref, owner=None, now=now, state=State.COMPLETED, events=[event])


async def outbox_run(db: Path, url: str, batch: int) -> tuple[float, int]:
    """Seconds to deliver batch × CYCLES events from a fresh outbox, and how many were delivered."""
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        now = time.time()
        await fill(store, make_events(batch * CYCLES, now), now)
        async with WebhookWorker(store, url, SECRET, batch=batch) as worker:
            started = time.perf_counter()
            delivered = 0
            while (n := await worker.run_once()) > 0:
                delivered += n
            return time.perf_counter() - started, delivered
    finally:
        await store.close()


async def baseline_run(url: str, batch: int) -> tuple[float, int]:
    """Seconds to POST the same kind of bodies, signed, `batch` at a time, without any store."""
    events = [OutboxEvent(id=e.id, ref=c.ref, type=e.type, created=e.created, body=e.body, seq=i)
              for i, (c, e) in enumerate(make_events(batch * CYCLES, time.time()))]
    async with async_client(max_connections=batch, timeout=httpx.Timeout(10)) as client:
        started = time.perf_counter()
        ok = 0
        for i in range(0, len(events), batch):
            results = await asyncio.gather(*(post_event(client, url, SECRET, e, int(time.time()), 10.0)
                                             for e in events[i:i + batch]))
            ok += sum(r.ok for r in results)
        return time.perf_counter() - started, ok


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, upstream() as (base, _):
        url = base + "/hooks"
        print("| what | events | events/s | vs ideal |\n|---|---:|---:|---:|")
        for batch in BATCHES:
            events, ideal = batch * CYCLES, batch * 1000 / LATENCY_MS
            outbox_rate, plain_rate = 0.0, 0.0
            for run in range(ROUNDS):  # interleaved, best of each, to share the machine's noise fairly
                db = Path(tmp) / f"outbox-{batch}-{run}.db"
                seconds, delivered = run_loop(outbox_run(db, url, batch))
                assert delivered == events, f"only {delivered} of {events} delivered"
                outbox_rate = max(outbox_rate, delivered / seconds)
                seconds, ok = run_loop(baseline_run(url, batch))
                assert ok == events, f"only {ok} of {events} plain POSTs succeeded"
                plain_rate = max(plain_rate, ok / seconds)
            print(f"| outbox → receiver (SQLite, batch {batch}) | {events} | {outbox_rate:,.0f} | "
                  f"{outbox_rate / ideal:.2f}x |")
            print(f"| plain signed POSTs, same client ({batch} in flight) | {events} | {plain_rate:,.0f} | "
                  f"{plain_rate / ideal:.2f}x |")
            print(f"| ideal: {batch} in flight / {LATENCY_MS} ms | – | {ideal:,.0f} | 1.00x |")
        print(f"\n({CYCLES} batches per run, best of {ROUNDS} interleaved runs, on uvloop; receiver: "
              f"tests/bench/_upstream.py answering in {LATENCY_MS} ms in its own process; the worker's own client, "
              f"router.outbound; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
