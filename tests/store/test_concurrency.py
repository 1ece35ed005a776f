"""Races: tasks in one process, stores on separate connections, and separate processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from router.checkout.model import State
from router.store.base import OutboxEvent, Store
from router.store.migrations import MIGRATIONS
from tests.support.stores import Backend, checkout, event

ROOT = Path(__file__).resolve().parents[2]


async def test_fifty_concurrent_leases_one_winner(store: Store) -> None:
    await store.create_checkout(checkout("hot"))
    results = await asyncio.gather(*(store.try_lease("hot", f"w{i}", now=10.0, ttl=30.0) for i in range(50)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    loaded = await store.get_checkout("hot")
    assert loaded is not None and loaded.lease_owner == winners[0].lease_owner


async def test_fifty_leases_across_five_stores_one_winner(backend: Backend, store: Store) -> None:
    await store.create_checkout(checkout("hot"))
    others = [await backend.opened() for _ in range(5)]
    try:
        results = await asyncio.gather(
            *(others[i % 5].try_lease("hot", f"w{i}", now=10.0, ttl=30.0) for i in range(50))
        )
    finally:
        for other in others:
            await other.close()
    assert sum(r is not None for r in results) == 1


def run_racers(url: str, *args_per_racer: list[str]) -> list[object]:
    """Start one _race_worker per args, release them together, return what each printed (JSON)."""
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store._race_worker", url, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for args in args_per_racer
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.communicate(timeout=60)[0] for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    assert [racer.returncode for racer in racers] == [0] * len(racers)
    return [json.loads(output) for output in outputs]


async def test_two_processes_lease_each_ref_once(backend: Backend, store: Store) -> None:
    refs = [f"p{i:03d}" for i in range(150)]
    for ref in refs:
        await store.create_checkout(checkout(ref))
    outputs = run_racers(backend.url, ["proc-a", *refs], ["proc-b", *refs])
    won = [set(output) for output in outputs]  # type: ignore[call-overload]
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(refs)
    for owner, mine in zip(("proc-a", "proc-b"), won, strict=True):
        for ref in sorted(mine)[:5]:
            loaded = await store.get_checkout(ref)
            assert loaded is not None and loaded.lease_owner == owner


async def test_processes_starting_together_on_a_fresh_database(backend: Backend) -> None:
    outputs = run_racers(backend.url, *(["starter"] for _ in range(4)))
    assert outputs == [[m.version for m in MIGRATIONS]] * 4


async def test_two_stores_never_claim_one_event_twice(backend: Backend, store: Store) -> None:
    refs = [f"c{i:02d}" for i in range(25)]
    for ref in refs:
        await store.create_checkout(checkout(ref))
        for n in range(3):
            await store.transition(ref, owner=None, now=1.0, state=State.PENDING, events=[event(f"{ref}-{n}")])
    total = len(refs) * 3
    claims: list[tuple[str, OutboxEvent]] = []

    async def worker(worker_store: Store, owner: str) -> None:
        while len(claims) < total:
            batch = await worker_store.claim_events(owner, now=5.0, lease_ttl=3600.0, limit=4)
            claims.extend((owner, claimed) for claimed in batch)
            for claimed in batch:
                await worker_store.event_delivered(claimed.id, owner, now=6.0)
            await asyncio.sleep(0)

    other = await backend.opened()
    try:
        # A first round side by side (25 heads, 20 asked for: both get some), then drain the rest.
        first = await asyncio.gather(
            store.claim_events("w1", now=5.0, lease_ttl=3600.0, limit=10),
            other.claim_events("w2", now=5.0, lease_ttl=3600.0, limit=10),
        )
        assert all(first)
        for owner, batch in zip(("w1", "w2"), first, strict=True):
            claims.extend((owner, claimed) for claimed in batch)
        for (owner, claimed), worker_store in zip(claims, [store] * 10 + [other] * 10, strict=True):
            await worker_store.event_delivered(claimed.id, owner, now=6.0)
        await asyncio.wait_for(asyncio.gather(worker(store, "w1"), worker(other, "w2")), timeout=30)
    finally:
        await other.close()

    counts = Counter(claimed.id for _, claimed in claims)
    assert len(counts) == total and set(counts.values()) == {1}
    for ref in refs:  # and every ref's events went out in order
        order = [claimed.id for _, claimed in claims if claimed.ref == ref]
        assert order == [f"{ref}-{n}" for n in range(3)]
