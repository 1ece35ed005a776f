"""A stuck disk holds the SQLite store's one thread: its callers are answered StoreUnavailable after a
bound, not when the disk comes back (router/store/sqlite_thread.py's watchdog). In-process: a job that
does not return stands for a hung fsync; tests/e2e/test_stuck_disk.py freezes a real file system."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from router.checkout.model import State
from router.store.base import StoreUnavailable
from router.store.sqlite import STUCK_MARGIN, SQLiteStore
from tests.support.stores import checkout


async def test_callers_behind_a_stuck_call_are_answered_within_the_bound(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", stuck_seconds=0.5)
    await store.open()
    gate = threading.Event()
    try:
        await store.create_checkout(checkout("x"))
        started = time.monotonic()
        hung = store._run(lambda conn: gate.wait(30))  # the thread's call that does not return
        queued_write = asyncio.ensure_future(store.transition("x", owner=None, now=2.0, state=State.COMPLETED))
        with pytest.raises(StoreUnavailable, match="stuck"):
            await asyncio.wait_for(store.get_checkout("x"), 10)
        assert time.monotonic() - started < 3
        for waiting in (hung, queued_write):
            with pytest.raises(StoreUnavailable, match="stuck"):
                await asyncio.wait_for(waiting, 1)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):  # while still stuck: at once
            await store.get_checkout("x")
        assert time.monotonic() - started < 0.1
        gate.set()  # the disk answers again
        for _ in range(100):
            try:
                found = await store.get_checkout("x")
                break
            except StoreUnavailable:
                await asyncio.sleep(0.05)
        assert found is not None and found.state == State.CREATED  # the failed write was never run
        await store.transition("x", owner=None, now=3.0, state=State.COMPLETED)
        assert (await store.get_checkout("x")).state == State.COMPLETED  # type: ignore[union-attr]
    finally:
        gate.set()
        await store.close()


async def test_a_slow_batch_under_the_bound_is_waited_for(tmp_path: Path) -> None:
    """Only a batch past the bound fails its callers: a slow one (a lock held by another process for
    less than the busy timeout) answers as usual."""
    store = SQLiteStore(tmp_path / "s.db", stuck_seconds=2.0)
    await store.open()
    try:
        await store.create_checkout(checkout("x"))
        slow = store._run(lambda conn: time.sleep(0.8))
        assert (await store.get_checkout("x")) is not None
        await slow
    finally:
        await store.close()


def test_the_default_bound_leaves_room_for_the_busy_timeout() -> None:
    assert SQLiteStore("x.db", busy_timeout=5).stuck_seconds == 5 + STUCK_MARGIN
    assert SQLiteStore.from_url("sqlite:///x.db?busy_timeout=0.5").stuck_seconds == 0.5 + STUCK_MARGIN


async def test_a_slow_open_is_not_a_stuck_disk(tmp_path: Path) -> None:
    """Opening is a start, not a caller queued behind a hung disk: a loaded machine's slow open (a fresh
    file's schema and fsyncs) must not fail it (CI once saw this test file's first open take over 1 s)."""
    store = SQLiteStore(tmp_path / "s.db", stuck_seconds=0.3)
    slow_connect = store._connect

    def connect() -> object:
        time.sleep(1.0)  # past the bound and the watchdog's next look
        return slow_connect()

    store._connect = connect  # type: ignore[method-assign]
    await store.open()
    try:
        await store.create_checkout(checkout("x"))
        assert (await store.get_checkout("x")) is not None
    finally:
        await store.close()
