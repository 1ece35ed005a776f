"""SQLite store: how the async bridge and the durability setting cost, against blocking calls.

Workload per operation: try_lease, transition with one outbox event, get_checkout (two write
transactions and a read), 16 tasks at a time, on a real file. Baseline: the same store calling
SQLite directly on the event loop thread (fast, but it would block every other request).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from router.checkout.model import State
from router.store.base import NewEvent
from router.store.sqlite import Conn, SQLiteStore
from tests.support.stores import checkout

T = TypeVar("T")
OPS = 1000
TASKS = 16


class BlockingStore(SQLiteStore):
    """Baseline: no thread hop at all."""

    async def _run(self, fn: Callable[[Conn], T], *, write: bool = False) -> T:
        return self._call((lambda conn: self._write(conn, fn)) if write else fn)


class ToThreadStore(SQLiteStore):
    """The alternative design: asyncio.to_thread (the default pool) with one connection behind a lock."""

    _lock: asyncio.Lock | None = None

    async def _run(self, fn: Callable[[Conn], T], *, write: bool = False) -> T:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            return await asyncio.to_thread(self._call, (lambda conn: self._write(conn, fn)) if write else fn)


async def run(store: SQLiteStore, synchronous: str) -> float:
    await store.open()
    try:
        await store._run(lambda conn: conn.execute(f"PRAGMA synchronous={synchronous}"))
        for i in range(OPS):
            await store.create_checkout(checkout(f"r{i}"))
        queue = list(range(OPS))

        async def worker() -> None:
            while queue:
                ref = f"r{queue.pop()}"
                await store.try_lease(ref, "w", now=1.0, ttl=30.0)
                await store.transition(
                    ref, owner="w", now=2.0, state=State.COMPLETED, events=[NewEvent(f"e-{ref}", "t", 2.0, b"{}")]
                )
                await store.get_checkout(ref)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(TASKS)))
        return OPS / (time.perf_counter() - started)
    finally:
        await store.close()


def best_of(runs: int, cls: type[SQLiteStore], synchronous: str, tmp: Path) -> float:
    """Highest rate of a few fresh runs: fsync timing on shared disks is noisy."""
    return max(
        asyncio.run(run(cls(tmp / f"{cls.__name__}-{synchronous}-{n}.db"), synchronous)) for n in range(runs)
    )


def main() -> None:
    variants: list[tuple[str, type[SQLiteStore], str]] = [
        ("blocking calls on the loop (baseline), synchronous=NORMAL", BlockingStore, "NORMAL"),
        ("dedicated thread, group commit (chosen), synchronous=NORMAL", SQLiteStore, "NORMAL"),
        ("asyncio.to_thread + lock, synchronous=NORMAL", ToThreadStore, "NORMAL"),
        ("dedicated thread, group commit (chosen), synchronous=FULL (chosen)", SQLiteStore, "FULL"),
        ("blocking calls on the loop, synchronous=FULL", BlockingStore, "FULL"),
    ]
    print(
        f"{OPS} checkouts, {TASKS} concurrent tasks; one op = lease + transition(+event) + read; best of 3\n"
    )
    print("| variant | ops/s | vs baseline |")
    print("|---|---:|---:|")
    baseline = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls, synchronous in variants:
            rate = best_of(3, cls, synchronous, Path(tmp))
            baseline = baseline or rate
            print(f"| {name} | {rate:,.0f} | {rate / baseline:.2f} |")
