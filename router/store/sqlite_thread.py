"""The SQLite store's one thread: jobs from a queue, the write jobs waiting together committed together.

A job is a function of the connection. A read job runs on its own. Consecutive write jobs (as many as
are queued, up to MAX_GROUP) share one BEGIN IMMEDIATE … COMMIT. They run one after another without
savepoints first; if one raises, the whole transaction is rolled back and the group runs again from its
start, each job inside a SAVEPOINT so that the one that raises is rolled back alone. A write job must
therefore be safe to run twice (SQLiteStore's are: each run makes a new flow). Savepoints cost two
statements a job, and each statement hands the GIL to the event loop and back (Python's sqlite3 releases
it around every step): about a tenth of a cancel's CPU. A job that raises (a return with an unknown ref,
a lost lease) makes its group run twice, the second time with the savepoints. If the shared transaction
itself fails (BEGIN, COMMIT, a savepoint), every job in it fails. Results go back to the event loop only
after the COMMIT returned, in one wake-up per batch: a caller never hears of a write that is not durable.

A write waits for another process's lock at most the connection's busy timeout since it was asked, not
since its group began: a group queued behind another that waited out the lock has spent part of that
already. Its BEGIN then waits only what its oldest job has left; a job whose time is up fails at once
(its failure is sent right away), and the others try again with what each has left.

Each hop costs a thread wake-up on both sides, so the per-job Python around it is kept small: a job is a
named tuple, the caller awaits the future itself (no coroutine around it), the jobs a loop submits during
one turn reach the thread together at the end of that turn (one wake-up, and their writes share a COMMIT
even when the thread was idle). A job runs in a copy of its caller's
context (contextvars), so what it reads from there (the request id an event records) is the caller's.

A stuck disk (a hung fsync, a frozen or lost network volume) holds the thread in one batch, and every
caller queued behind it would wait as long as the disk does. A watchdog thread fails them once the batch
has run `stuck_after` seconds (their callers answer 503; a write still in the stuck batch may yet
commit, like a COMMIT whose answer was lost, and the leases and idempotency keys cover that), and new
jobs fail at once until the batch returns. Opening and closing the connection are not watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")
Conn = sqlite3.Connection
MAX_GROUP = 64  # writes per shared transaction: bounds the work the first of them waits for
# A group whose oldest job waited in the queue less than this waits the full busy timeout (no PRAGMAs
# around its BEGIN: the usual case under load costs nothing); the bound is overshot by at most this.
QUEUE_SLACK = 0.05
log = logging.getLogger("router.store.sqlite")


class _Job(NamedTuple):
    """A tuple (cheaper to make than a dataclass) whose fields have names."""

    fn: Callable[..., Any]
    write: bool
    future: asyncio.Future[Any]  # of the caller's event loop, which hears of the outcome
    context: contextvars.Context  # the caller's, copied: what fn reads from it (the request id) is theirs
    raw: bool  # fn takes no connection (opening and closing it)
    asked: float  # when it was submitted (monotonic): a write waits for the lock at most busy timeout from then


Outcome = tuple["asyncio.Future[Any]", Any, Exception | None]
OnCommit = Callable[[int, float], None]  # (write jobs committed, seconds the COMMIT took), in the thread


class StoreThread:
    """Owns the thread; `connection()` is called in it, `mapped(exc)` turns an error into the caller's,
    `on_commit` hears of every COMMIT (the metrics); `stuck_after`: seconds one batch may run before its
    waiting callers are failed (None: never)."""

    def __init__(self, connection: Callable[[], Conn], mapped: Callable[[Exception], Exception], *,
                 name: str, on_commit: OnCommit | None = None, stuck_after: float | None = None) -> None:
        self._connection = connection
        self._mapped = mapped
        self._on_commit = on_commit
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        # Jobs submitted during one turn of a loop, handed over together at its end: one wake-up of the
        # thread for all of them, and the writes among them share a COMMIT even when the thread was idle.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._batch: list[_Job] = []  # the jobs the thread is on
        self._since: float | None = None  # when it began them (monotonic); None while idle
        self._stuck = False  # set by the watchdog, cleared when the stuck batch returns
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        if stuck_after is not None:
            threading.Thread(target=self._watch, args=(stuck_after,), name=f"{name}-watchdog", daemon=True).start()

    def submit(self, fn: Callable[[Conn], T], write: bool) -> asyncio.Future[T]:
        """`fn(connection)` in the thread; await the returned future for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._stuck:  # nothing queued now would run before the stuck batch returns
            future.set_exception(self._stuck_error())
            return future
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append(_Job(fn, write, future, contextvars.copy_context(), False, time.monotonic()))
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._pending.pop(loop, None)
        if jobs:
            self._jobs.put(jobs)

    async def call(self, fn: Callable[[], T]) -> T:
        """`fn()` in the thread, in queue order (opening and closing the connection)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._flush(loop)  # after what this loop submitted before
        self._jobs.put([_Job(fn, False, future, contextvars.copy_context(), True, time.monotonic())])
        return await future

    async def stop(self) -> None:
        """Finish the queued jobs, then end the thread, and wait for that."""
        self.end()
        await self.ended()

    def end(self) -> None:
        """The thread ends once it has run what is queued now; nothing waits for it."""
        with contextlib.suppress(RuntimeError):
            self._flush(asyncio.get_running_loop())
        self._jobs.put(None)

    async def ended(self) -> None:
        """Awaited on the loop, not joined in an executor thread: the interpreter joins executor threads at
        exit (not this daemon one), and a join stuck behind a hung disk would hold the process's exit."""
        while self._thread.is_alive():
            await asyncio.sleep(0.01)

    # --- the watchdog ------------------------------------------------------------------------------

    def _watch(self, stuck_after: float) -> None:
        while not self._ended.wait(min(1.0, stuck_after / 4)):
            since = self._since
            if since is None or time.monotonic() - since < stuck_after:
                continue
            if not self._stuck:
                log.error("SQLite has not answered for %.0f s (a hung disk?): requests fail until it does",
                          time.monotonic() - since)
            self._stuck = True
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        """Fail the stuck batch's callers and every job queued behind it (they are not run later)."""
        jobs = list(self._batch)
        stop = False
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
            else:
                jobs += item
        if stop:
            self._jobs.put(None)
        error = self._stuck_error()
        _deliver([(job.future, None, error) for job in jobs])

    def _stuck_error(self) -> Exception:
        return self._mapped(sqlite3.OperationalError("the store's thread is stuck in a call (a hung disk?)"))

    # --- in the thread -----------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            self._serve_jobs()
        finally:
            self._ended.set()

    def _serve_jobs(self) -> None:
        get, get_nowait = self._jobs.get, self._jobs.get_nowait
        while True:
            batch = get()
            if batch is None:
                return
            last: list[_Job] | None = batch
            while len(batch) < MAX_GROUP:
                try:
                    last = get_nowait()
                except queue.Empty:
                    break
                if last is None:
                    break
                batch += last
            # Opening and closing the connection are not watched: a slow open (a fresh file's schema,
            # WAL's switch waiting for other workers) is a slow start, with no caller queued behind it.
            self._batch, self._since = batch, None if any(job.raw for job in batch) else time.monotonic()
            for start in range(0, len(batch), MAX_GROUP):
                jobs = batch[start:start + MAX_GROUP] if len(batch) > MAX_GROUP else batch
                _deliver(self._run(jobs))
            self._batch, self._since = [], None
            if self._stuck:
                self._stuck = False
                log.warning("SQLite answers again")
            if last is None:
                return

    def _run(self, jobs: Sequence[_Job]) -> list[Outcome]:
        """Jobs in queue order: a read after a write sees it (the writes before it are committed first)."""
        outcomes: list[Outcome] = []
        group: list[_Job] = []
        for job in jobs:
            if job.future.done():  # its caller is gone or was failed (stuck), as an executor drops a job
                continue
            if job.write:
                group.append(job)
                continue
            outcomes += self._writes(group)
            group = []
            outcomes.append(self._read(job))
        return outcomes + self._writes(group)

    def _read(self, job: _Job) -> Outcome:
        fn, _, future, context, raw, _ = job
        try:
            return future, context.run(fn) if raw else context.run(fn, self._connection()), None
        except Exception as exc:
            return future, None, self._mapped(exc)

    def _writes(self, group: Sequence[_Job]) -> list[Outcome]:
        if not group:
            return []
        conn: Conn | None = None
        took: float | None = None  # the COMMIT's seconds; None when nothing was committed
        try:
            conn = self._connection()
            group = self._begin(conn, group)
            if not group:  # each waited out the lock
                return []
            outcomes = self._together(conn, group) if len(group) > 1 else [self._alone(conn, group[0])]
            if outcomes is None:  # one of them raised: all rolled back; again, each in its savepoint
                group = self._begin(conn, group)
                outcomes = [self._in_savepoint(conn, job) for job in group]
            if conn.in_transaction:  # a lone job that raised was rolled back already
                started = time.perf_counter()
                conn.execute("COMMIT")
                took = time.perf_counter() - started
        except Exception as exc:
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
            error = self._mapped(exc)
            return [(job.future, None, error) for job in group]
        if took is not None and self._on_commit is not None:
            with contextlib.suppress(Exception):  # a metric must never turn a durable write into a failure
                self._on_commit(sum(error is None for _, _, error in outcomes), took)
        return outcomes

    def _begin(self, conn: Conn, group: Sequence[_Job]) -> Sequence[_Job]:
        """BEGIN IMMEDIATE for `group`, each job waiting for the lock at most the busy timeout since it was
        asked; returns the jobs that got it (maybe none: the others were answered "locked" already)."""
        if time.monotonic() - min(job.asked for job in group) < QUEUE_SLACK:
            conn.execute("BEGIN IMMEDIATE")
            return group
        millis = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        bound = millis / 1000
        try:
            while group:
                left = min(job.asked for job in group) + bound - time.monotonic()
                conn.execute(f"PRAGMA busy_timeout = {max(0, int(left * 1000))}")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return group
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
                    group = self._fail_late(group, bound, exc)
            return group
        finally:
            conn.execute(f"PRAGMA busy_timeout = {millis}")

    def _fail_late(self, group: Sequence[_Job], bound: float, exc: Exception) -> list[_Job]:
        """Answer the jobs whose lock wait is up (at least the oldest: it waited all it had left) now,
        not after the others' wait; returns the others."""
        late_after = time.monotonic() + QUEUE_SLACK - bound
        late = [job for job in group if job.asked <= late_after]
        error = self._mapped(exc)
        _deliver([(job.future, None, error) for job in late])
        return [job for job in group if job.asked > late_after]

    def _alone(self, conn: Conn, job: _Job) -> Outcome:
        """The only write of its transaction: no savepoint needed, a failure rolls it all back."""
        fn, _, future, context, _, _ = job
        try:
            return future, context.run(fn, conn), None
        except Exception as exc:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                conn.execute("ROLLBACK")
            return future, None, self._mapped(exc)

    def _together(self, conn: Conn, group: Sequence[_Job]) -> list[Outcome] | None:
        """The group's jobs one after another in the open transaction, no savepoints; None, with the
        transaction rolled back, as soon as one raises (its writes are mixed with the others' then)."""
        outcomes: list[Outcome] = []
        for fn, _, future, context, _, _ in group:
            try:
                outcomes.append((future, context.run(fn, conn), None))
            except Exception:
                if conn.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                    conn.execute("ROLLBACK")
                return None
        return outcomes

    def _in_savepoint(self, conn: Conn, job: _Job) -> Outcome:
        fn, _, future, context, _, _ = job
        conn.execute("SAVEPOINT job")
        try:
            value = context.run(fn, conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")  # if this fails, the whole group fails (see _writes)
            conn.execute("RELEASE job")
            return future, None, self._mapped(exc)
        conn.execute("RELEASE job")
        return future, value, None


def _deliver(outcomes: list[Outcome]) -> None:
    """One call_soon_threadsafe per event loop for the whole batch (after its COMMIT)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, items in by_loop.items():
        _wake(loop, items)


def _wake(loop: asyncio.AbstractEventLoop, items: list[Outcome]) -> None:
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, items)


def _settle(items: Sequence[Outcome]) -> None:
    for future, value, error in items:
        if future.done():
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
