"""Readiness right after real writes failed for a full disk: the one-row heartbeat may still fit where they
did not, so check_writable also says "not writable" for a while after such a failure (FULL_WINDOW).

The first test fills the file up to SQLite's own page limit (max_page_count, "database or disk is full")
and runs everywhere; the second fills a real loop-mounted ext4 file system, needs root and mount, and is
skipped with the reason elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import router.store.sqlite as sqlite_module
from router.store.base import StoreUnavailable
from router.store.sqlite import SQLiteStore
from tests.support.loop_disk import loop_mount
from tests.support.stores import checkout

WINDOW = 0.5  # FULL_WINDOW in these tests, so that the recovery is seen quickly


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(path, busy_timeout=1.0)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def fail_for_full_disk(store: SQLiteStore) -> None:
    """New checkouts until one fails for lack of space (the free room left on the last page goes first)."""
    for i in range(500):
        try:
            await store.create_checkout(checkout(f"full{i:04d}"))
        except StoreUnavailable as exc:
            assert "full" in str(exc), exc
            return
    pytest.fail("no write failed for a full disk")


@pytest.fixture(autouse=True)
def short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "FULL_WINDOW", WINDOW)


async def test_not_writable_right_after_a_write_failed_for_a_full_file(tmp_path: Path) -> None:
    async with opened(tmp_path / "full.db") as store:
        await store.check_writable(now=1.0)  # the heartbeat row exists: beating again needs no new page
        await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1").fetchone())  # = its size now
        await fail_for_full_disk(store)
        with pytest.raises(StoreUnavailable, match="not writable: a write failed for a full disk"):
            await store.check_writable(now=2.0)
        await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823").fetchone())
        await _after_window()
        await store.check_writable(now=3.0)  # room again, and no failure within the window
        await store.create_checkout(checkout("after"))


async def _after_window() -> None:
    await asyncio.sleep(WINDOW + 0.1)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all the space but `leave` bytes (about one WAL frame: a one-row write fits, a
    checkout's rows and index entries do not)."""
    filler = disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):  # ENOSPC: full
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


async def test_not_ready_right_after_writes_failed_on_a_full_disk(tmp_path: Path) -> None:
    with loop_mount(tmp_path, "8M") as disk:
        async with opened(disk / "rr.db") as store:
            for i in range(50):
                await store.create_checkout(checkout(f"warm{i:03d}"))
            filler = fill(disk, leave=4096)
            await fail_for_full_disk(store)
            with pytest.raises(StoreUnavailable, match="not writable"):
                await store.check_writable(now=2.0)
            filler.unlink()
            await _after_window()
            await store.check_writable(now=3.0)
            await store.create_checkout(checkout("after"))
