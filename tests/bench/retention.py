"""The reconciler's retention purges (buyer details, delivered events) on a grown SQLite store.

They run every pass (2 s) in the store's one thread, which every commit waits for, so a pass must not
grow with the table. The store holds CHECKOUTS checkouts, one a minute (about 139 days), each with one
delivered event, a fifth of them checkout.canceled (kept for good). Each figure is the median of PASSES
steady passes, after the backlog is gone. Baseline (the ideal): the same passes on an empty store.
Shown beside them: the buyer-detail purge as it was before migration 5, a scan of every checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from router.store.sqlite import SQLiteStore
from tests.support.stores import BASE

CHECKOUTS = 200_000
PASSES = 50
DAY = 86400.0
COLUMNS = ("ref", "merchant_reference", "amount", "currency", "payment_intent", "can_handle_pending", "created_at",
           "expires_at", "state", "updated_at", "checkout_session_id", "result", "version")
OLD_PURGE = "UPDATE checkouts NOT INDEXED SET result = NULL WHERE result IS NOT NULL AND updated_at < :before"


def grow(path: Path, now: float) -> None:
    """CHECKOUTS completed checkouts, written behind the store's back (one transaction, not 200,000)."""
    checkouts, events = [], []
    for n in range(CHECKOUTS):
        at = now - (CHECKOUTS - n) * 60.0
        result = '{"buyerName":"Hanako Yamada"}' if now - at < 30 * DAY else None  # older: purged already
        checkouts.append((f"r{n:07d}", BASE.merchant_reference, BASE.amount, BASE.currency, BASE.payment_intent, 0,
                          at, at + DAY, "completed", at, f"s{n}", result, 1))
        kind = "checkout.canceled" if n % 5 == 0 else "checkout.completed"
        events.append((f"e{n}", f"r{n:07d}", kind, at, b"x" * 400, "delivered", 1, at, at + 1.0))
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(f"INSERT INTO checkouts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                         checkouts)
        conn.executemany("INSERT INTO outbox (id, ref, type, created, body, status, attempts, next_attempt_at,"
                         " delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", events)


async def passes(store: SQLiteStore, now: float) -> float:
    """Median ms of one pass's two purges, once nothing is left to purge."""
    while await store.purge_delivered_events(now - 30 * DAY) or await store.purge_buyer_details(now - 30 * DAY):
        pass
    timings = []
    for _ in range(PASSES):
        started = time.perf_counter()
        await store.purge_buyer_details(now - 30 * DAY)
        await store.purge_delivered_events(now - 30 * DAY)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def measure(path: Path, now: float, *, grown: bool) -> float:
    store = SQLiteStore(path)
    await store.open()  # the schema, then the rows
    await store.close()
    if grown:
        grow(path, now)
    await store.open()
    try:
        return await passes(store, now)
    finally:
        await store.close()


def old_purge_ms(path: Path, now: float) -> float:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            conn.execute(OLD_PURGE, {"before": now - 30 * DAY})
            conn.commit()
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        empty = asyncio.run(measure(Path(tmp) / "empty.db", now, grown=False))
        grown = asyncio.run(measure(Path(tmp) / "grown.db", now, grown=True))
        old = old_purge_ms(Path(tmp) / "grown.db", now)
    print(f"{CHECKOUTS:,} checkouts and events; median of {PASSES} passes, nothing left to purge\n")
    print("| one pass's purges | ms | vs empty store |")
    print("|---|---:|---:|")
    print(f"| empty store (baseline) | {empty:.3f} | 1.00 |")
    print(f"| grown store | {grown:.3f} | {grown / empty:.2f} |")
    print(f"| grown store, buyer-detail purge before migration 5 (a scan) | {old:.3f} | {old / empty:.1f} |")
