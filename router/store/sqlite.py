"""The embedded SQLite backend (the default; several worker processes may share one file).

One connection per store, owned by one dedicated thread fed by a queue, so the event loop never blocks
on SQLite and the connection is never shared between threads. Every read-modify-write runs in a BEGIN
IMMEDIATE transaction: SQLite hands the write lock to one connection at a time across all processes,
waiting up to the busy timeout, so leases and claims are atomic between workers.

Group commit: the write flows waiting in the queue when the thread gets to them run in one transaction,
each inside its own SAVEPOINT (a flow that raises is rolled back alone), and one COMMIT makes them all
durable; no caller hears of its write before that COMMIT returned. Under load this is one fsync for
many writes instead of one each.

Durability: WAL with synchronous=FULL. NORMAL could lose the last commits on power loss, and a lost
transition after Amazon finalized a payment (or a lost outbox event) is worse than one extra fsync per
write on a service that writes a few rows per checkout.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import router.metrics as metrics
from router.checkout.model import CheckoutError
from router.store import migrations
from router.store import statements as sql
from router.store.base import StoreError, StoreUnavailable, within
from router.store.common import Mode, SqlStore
from router.store.flows import Flow, Result, Step, drive, violation
from router.store.sqlite_thread import StoreThread

T = TypeVar("T")
Conn = sqlite3.Connection

MEMORY = ":memory:"
# A batch waits for another process's lock at most the busy timeout; beyond that and this margin the
# disk itself is stuck (PostgreSQL's calls are bounded likewise, by its command timeout).
STUCK_MARGIN = 10.0
# Readiness stays "not writable" this long after a write failed for a full disk: the one-row heartbeat
# may still fit where real writes (new rows, index pages) no longer do.
FULL_WINDOW = 10.0


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:` → (path, query)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {parts.scheme}://…")
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ValueError(
            "sqlite URL must be sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"
        )
    return unquote(parts.path[1:]), dict(parse_qsl(parts.query, keep_blank_values=True))


def _unavailable(exc: BaseException) -> bool:
    """Errors that mean 'the database cannot serve us now' rather than a bug in our SQL."""
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError | OSError):
        return True
    return type(exc) is sqlite3.DatabaseError  # "file is not a database", "disk image is malformed"


class SQLiteStore(SqlStore):
    """Store on one SQLite file. Not opened by the constructor; call `open()`."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0, stuck_seconds: float | None = None) -> None:
        """`stuck_seconds`: how long one batch of the store's thread may run before the callers waiting on
        it are answered StoreUnavailable (default: the busy timeout plus STUCK_MARGIN)."""
        if busy_timeout < 0:
            raise ValueError("busy_timeout must be >= 0 seconds")
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self.stuck_seconds = busy_timeout + STUCK_MARGIN if stuck_seconds is None else stuck_seconds
        self._thread: StoreThread | None = None
        self._conn: Conn | None = None  # touched only in the store's thread
        self._full_at: float | None = None  # when a write last failed for a full disk (monotonic)

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        path, query = parse_url(url)
        unknown = sorted(set(query) - {"busy_timeout"})
        if unknown:
            raise ValueError(f"unknown sqlite URL parameter(s): {', '.join(unknown)} (known: busy_timeout)")
        try:
            timeout = float(query.get("busy_timeout", "5"))
        except ValueError:
            raise ValueError("sqlite URL parameter busy_timeout must be a number of seconds") from None
        return cls(path, busy_timeout=timeout)

    def __repr__(self) -> str:
        return f"SQLiteStore(path={self.path!r})"

    # --- plumbing --------------------------------------------------------------------------------

    def _run(self, fn: Callable[[Conn], T], *, write: bool = False) -> Awaitable[T]:
        """`fn` in the store's thread; `write`: inside a BEGIN IMMEDIATE transaction (maybe a shared one).
        The thread's future itself, not a coroutine around it: one frame less per call."""
        if self._thread is None:
            raise StoreUnavailable("SQLite store is not open")
        return self._thread.submit(fn, write)

    def _call(self, fn: Callable[[Conn], T]) -> T:
        if self._conn is None:
            raise StoreUnavailable("SQLite store is not open")
        try:
            return fn(self._conn)
        except Exception as exc:
            raise self._mapped(exc) from exc

    def _mapped(self, exc: Exception) -> Exception:
        """The error a caller sees: domain errors as they are, 'cannot serve now' as StoreUnavailable."""
        if isinstance(exc, StoreError | CheckoutError) or not _unavailable(exc):
            return exc
        if _disk_full(exc):
            self._full_at = time.monotonic()
        unavailable = StoreUnavailable(f"SQLite database {self.path!r} unavailable: {exc}")
        unavailable.__cause__ = exc
        return unavailable

    @staticmethod
    def _write(conn: Conn, fn: Callable[[Conn], T]) -> T:
        """Run `fn` in a BEGIN IMMEDIATE transaction: the write lock is taken up front, so the reads
        inside `fn` cannot be invalidated by another process before the writes land."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _connect(self) -> Conn:
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
        # check_same_thread=False: access is serialised by the store's one thread anyway; this only
        # lets an instrumented subclass (the benchmark) hop threads differently.
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._write(conn, _migrate)
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: Conn) -> None:
        """Switch the file to WAL (persistent; a no-op once set). The switch needs an exclusive lock and
        SQLite answers "locked" at once instead of calling the busy handler, so wait here ourselves when
        several workers start together."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    # --- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            return
        thread = StoreThread(self._connection, self._mapped, name="sqlite-store", on_commit=metrics.sqlite_committed,
                             stuck_after=self.stuck_seconds)
        try:
            self._conn = await thread.call(self._open_in_thread)
        except BaseException:
            await thread.stop()
            raise
        self._thread = thread

    def _connection(self) -> Conn:
        if self._conn is None:
            raise StoreUnavailable("SQLite store is not open")
        return self._conn

    def _open_in_thread(self) -> Conn:
        try:
            return self._connect()
        except (StoreError, CheckoutError):
            raise
        except Exception as exc:
            if _unavailable(exc):
                raise StoreUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc
            raise

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await thread.call(self._close_in_thread)
        finally:
            thread.end()
        # Only a close that worked waits for the thread: one that failed or was cut short (a stuck disk,
        # the stop's bound) leaves it to end once free; it holds nothing at the process's exit.
        await thread.ended()

    def _close_in_thread(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _flow(self, make: Callable[[], Flow[T]], mode: Mode) -> Awaitable[T]:
        """The whole flow runs in the store's one thread; a write flow inside one BEGIN IMMEDIATE. A write
        job may run twice (its group's first try rolled back), each time on a new flow from `make`."""

        def run(conn: Conn) -> T:
            return drive(make(), lambda step: _execute(conn, step))

        return self._run(run, write=mode != "read")

    async def check_writable(self, now: float, timeout: float = 2.0) -> None:
        """The heartbeat write waits for the lock at most `timeout` (not the busy timeout), and the caller
        is answered after `timeout` even if the store's thread is still stuck on the file."""
        millis = max(1, int(timeout * 1000))

        def beat(conn: Conn) -> None:
            conn.execute(f"PRAGMA busy_timeout = {millis}")
            try:
                self._write(conn, lambda c: c.execute(sql.HEARTBEAT.sqlite, {"now": now}))
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

        what = f"SQLite database {self.path!r} not writable"
        full_at = self._full_at
        if full_at is not None and time.monotonic() - full_at < FULL_WINDOW:
            raise StoreUnavailable(f"{what}: a write failed for a full disk {time.monotonic() - full_at:.0f} s ago")
        try:
            await within(self._run(beat), timeout, what)
        except StoreUnavailable as exc:  # the lock wait gave up first ("locked"): the same answer, said the same
            if not str(exc).startswith(what):
                raise StoreUnavailable(f"{what}: {exc}") from exc
            raise


def _disk_full(exc: Exception) -> bool:
    if isinstance(exc, sqlite3.Error):  # one the module made itself has no code
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _migrate(conn: Conn) -> None:
    conn.execute(migrations.SQLITE_MIGRATIONS_TABLE)
    applied = {int(row[0]) for row in conn.execute(sql.APPLIED_MIGRATIONS.sqlite)}
    for migration in migrations.pending(applied):
        for statement in migration.sqlite:
            conn.execute(statement)
        conn.execute(sql.RECORD_MIGRATION.sqlite, {"version": migration.version, "name": migration.name})


def _execute(conn: Conn, step: Step) -> Result:
    """One step in SQLite: list parameters go in as JSON text (read back with json_each)."""
    statement = step.statement
    try:
        if step.many is not None:
            conn.executemany(statement.sqlite, [_encode(params) for params in step.many])
            return Result((), len(step.many))
        cursor = conn.execute(statement.sqlite, _encode(step.params))
    except sqlite3.IntegrityError as exc:
        raise _violation(exc) from exc
    if statement.returns_rows:
        rows = cursor.fetchall()
        return Result(rows, len(rows))
    return Result((), cursor.rowcount)


def _encode(params: Mapping[str, Any]) -> dict[str, Any]:
    return {name: json.dumps(value) if isinstance(value, list) else value for name, value in params.items()}


def _violation(exc: sqlite3.IntegrityError) -> Exception:
    """SQLite names a unique violation "UNIQUE constraint failed: table.column"."""
    message = str(exc)
    _, _, constraint = message.partition("UNIQUE constraint failed: ")
    return violation(constraint or None, message)


# --- operator: private files (branch operator) -----------------------------------------------------


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal and -shm files the
    same mode); an existing file keeps the mode its operator chose."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
