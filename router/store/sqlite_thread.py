"""The SQLite store's one thread: jobs from a queue, the write jobs waiting together committed together.

A job is a function of the connection. A read job runs on its own. Consecutive write jobs (as many as
are queued, up to MAX_GROUP) share one BEGIN IMMEDIATE … COMMIT, each inside a SAVEPOINT so that a job
that raises is rolled back alone; if the shared transaction itself fails (BEGIN, COMMIT, a savepoint),
every job in it fails. Results go back to the event loop only after the COMMIT returned, in one
wake-up per batch: a caller never hears of a write that is not durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Conn = sqlite3.Connection
MAX_GROUP = 64  # writes per shared transaction: bounds the work the first of them waits for


@dataclass(slots=True)
class _Job:
    fn: Callable[[Conn], Any] | Callable[[], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    raw: bool = False  # fn takes no connection (opening and closing it)


Outcome = tuple[_Job, Any, Exception | None]


class StoreThread:
    """Owns the thread; `connection()` is called in it, `mapped(exc)` turns an error into the caller's."""

    def __init__(self, connection: Callable[[], Conn], mapped: Callable[[Exception], Exception], *,
                 name: str) -> None:
        self._connection = connection
        self._mapped = mapped
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def submit(self, fn: Callable[[Conn], T], write: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, write, loop, future))
        return await future

    async def call(self, fn: Callable[[], T]) -> T:
        """`fn()` in the thread, in queue order (opening and closing the connection)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, False, loop, future, raw=True))
        return await future

    async def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    # --- in the thread -----------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            batch = [self._jobs.get()]
            while batch[-1] is not None and len(batch) < MAX_GROUP:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            jobs = [job for job in batch if job is not None]
            _deliver(self._run(jobs))
            if batch[-1] is None:
                return

    def _run(self, jobs: Sequence[_Job]) -> list[Outcome]:
        """Jobs in queue order: a read after a write sees it (the writes before it are committed first)."""
        outcomes: list[Outcome] = []
        group: list[_Job] = []
        for job in jobs:
            if job.future.cancelled():  # its caller is gone, as an executor drops a job not yet started
                continue
            if job.write:
                group.append(job)
                continue
            outcomes += self._writes(group)
            group = []
            outcomes.append(self._read(job))
        return outcomes + self._writes(group)

    def _read(self, job: _Job) -> Outcome:
        try:
            value = job.fn() if job.raw else job.fn(self._connection())  # type: ignore[call-arg]
            return job, value, None
        except Exception as exc:
            return job, None, self._mapped(exc)

    def _writes(self, group: Sequence[_Job]) -> list[Outcome]:
        if not group:
            return []
        conn: Conn | None = None
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._alone(conn, group[0])] if len(group) == 1 else [
                self._in_savepoint(conn, job) for job in group]
            if conn.in_transaction:  # a lone job that raised was rolled back already
                conn.execute("COMMIT")
            return outcomes
        except Exception as exc:
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
            error = self._mapped(exc)
            return [(job, None, error) for job in group]

    def _alone(self, conn: Conn, job: _Job) -> Outcome:
        """The only write of its transaction: no savepoint needed, a failure rolls it all back."""
        try:
            return job, job.fn(conn), None  # type: ignore[call-arg]
        except Exception as exc:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                conn.execute("ROLLBACK")
            return job, None, self._mapped(exc)

    def _in_savepoint(self, conn: Conn, job: _Job) -> Outcome:
        conn.execute("SAVEPOINT job")
        try:
            value = job.fn(conn)  # type: ignore[call-arg]
        except Exception as exc:
            conn.execute("ROLLBACK TO job")  # if this fails, the whole group fails (see _writes)
            conn.execute("RELEASE job")
            return job, None, self._mapped(exc)
        conn.execute("RELEASE job")
        return job, value, None


def _deliver(outcomes: Sequence[Outcome]) -> None:
    """One call_soon_threadsafe per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: Sequence[Outcome]) -> None:
    for job, value, error in items:
        if job.future.done():
            continue
        if error is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(error)
