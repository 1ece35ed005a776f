"""The embedded SQLite backend (the default; several worker processes may share one file).

One connection per store, owned by one dedicated thread (a single-worker executor), so the event loop
never blocks on SQLite and the connection is never shared between threads. Every read-modify-write runs
in a BEGIN IMMEDIATE transaction: SQLite hands the write lock to one connection at a time across all
processes, waiting up to the busy timeout, so leases and claims are atomic between workers.

Durability: WAL with synchronous=FULL. NORMAL could lose the last commits on power loss, and a lost
transition after Amazon finalized a payment (or a lost outbox event) is worse than one extra fsync per
write on a service that writes a few rows per checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from router.checkout.model import Checkout, CheckoutError, DuplicateRef, LeaseLost, NotFound, SessionConflict
from router.store import migrations
from router.store.base import (
    REJECTED_PER_REF,
    DueResume,
    NewEvent,
    OutboxEvent,
    OutboxStats,
    StoreError,
    StoreUnavailable,
    within,
)
from router.store.records import (
    check_state,
    checkout_from_row,
    checkout_values,
    clip_error,
    event_from_row,
    event_values,
    transition_values,
)

T = TypeVar("T")
Conn = sqlite3.Connection

MEMORY = ":memory:"

_INSERT_CHECKOUT = """
INSERT INTO checkouts (
    ref, merchant_reference, amount, currency, payment_intent, can_handle_pending, created_at, expires_at,
    state, updated_at, total_order_amount, supplementary_data, checkout_session_id, charge_id,
    charge_permission_id, reason_code, result, lease_owner, lease_until, version)
VALUES (
    :ref, :merchant_reference, :amount, :currency, :payment_intent, :can_handle_pending, :created_at,
    :expires_at, :state, :updated_at, :total_order_amount, :supplementary_data, :checkout_session_id,
    :charge_id, :charge_permission_id, :reason_code, :result, :lease_owner, :lease_until, :version)"""

_TRY_LEASE = """
UPDATE checkouts SET lease_owner = :owner, lease_until = :until
WHERE ref = :ref AND state IN ('created', 'pending') AND (lease_owner IS NULL OR lease_until <= :now)
RETURNING *"""

_TRANSITION_SET = """
UPDATE checkouts SET
    state = :state, updated_at = :now, version = version + 1, lease_owner = NULL, lease_until = NULL,
    checkout_session_id = CASE WHEN :set_checkout_session_id THEN :checkout_session_id
                               ELSE checkout_session_id END,
    charge_id = CASE WHEN :set_charge_id THEN :charge_id ELSE charge_id END,
    charge_permission_id = CASE WHEN :set_charge_permission_id THEN :charge_permission_id
                                ELSE charge_permission_id END,
    reason_code = CASE WHEN :set_reason_code THEN :reason_code ELSE reason_code END,
    result = CASE WHEN :set_result THEN :result ELSE result END,
    expires_at = CASE WHEN :set_expires_at THEN :expires_at ELSE expires_at END
WHERE ref = :ref"""
# With an owner: that owner must still hold the lease (nobody took it over, even if it expired).
_TRANSITION_OWNED = _TRANSITION_SET + " AND lease_owner = :owner RETURNING *"
# Without one: nobody may hold an unexpired lease.
_TRANSITION_FREE = _TRANSITION_SET + " AND (lease_owner IS NULL OR lease_until <= :now) RETURNING *"

_INSERT_EVENT = """
INSERT INTO outbox (id, ref, type, created, body, status, attempts, next_attempt_at)
VALUES (?, ?, ?, ?, ?, 'pending', 0, ?)"""

_DUE_RESUMES = """
SELECT * FROM checkouts
WHERE state = 'created' AND checkout_session_id IS NOT NULL
  AND (lease_owner IS NULL OR lease_until <= :now)
  AND (COALESCE(next_resume_at, updated_at + :resume_after) <= :now OR expires_at <= :now)
ORDER BY COALESCE(next_resume_at, updated_at + :resume_after), ref
LIMIT :limit"""

_CLAIM_RESUME = """
UPDATE checkouts SET resume_attempts = :attempts + 1, next_resume_at = :next
WHERE ref = :ref AND resume_attempts = :attempts AND state = 'created'"""

_LIST_CHECKOUTS = """
SELECT * FROM checkouts
WHERE state IN (SELECT value FROM json_each(:states))
  AND (lease_owner IS NULL OR lease_until <= :now)
  AND (NOT :bound_only OR checkout_session_id IS NOT NULL)
ORDER BY updated_at, ref
LIMIT :limit"""

_CLAIM_EVENTS = """
UPDATE outbox SET lease_owner = :owner, lease_until = :until
WHERE seq IN (
    SELECT e.seq FROM outbox e
    WHERE e.status = 'pending' AND e.next_attempt_at <= :now
      AND (e.lease_owner IS NULL OR e.lease_until <= :now)
      AND NOT EXISTS (
          SELECT 1 FROM outbox p WHERE p.ref = e.ref AND p.seq < e.seq AND p.status <> 'delivered')
    ORDER BY e.seq
    LIMIT :limit)
RETURNING *"""

_EVENT_DELIVERED = """
UPDATE outbox SET status = 'delivered', delivered_at = :now, attempts = attempts + 1,
    lease_owner = NULL, lease_until = NULL
WHERE id = :id AND status <> 'delivered'"""

_EVENT_FAILED = """
UPDATE outbox SET attempts = attempts + 1, last_error = :error, lease_owner = NULL, lease_until = NULL,
    status = CASE WHEN :next IS NULL THEN 'failed' ELSE 'pending' END,
    next_attempt_at = COALESCE(:next, next_attempt_at)
WHERE id = :id AND status = 'pending' AND lease_owner = :owner"""

_REDELIVER = """
UPDATE outbox SET status = 'pending', next_attempt_at = :now, attempts = 0,
    lease_owner = NULL, lease_until = NULL
WHERE status = 'failed' AND (:all OR id IN (SELECT value FROM json_each(:ids)))"""

_LIST_EVENTS = """
SELECT * FROM outbox WHERE (NOT :failed_only OR status = 'failed') ORDER BY seq DESC LIMIT :limit"""

# ops (branch ops)
_OUTBOX_STATS = "SELECT count(*), min(created) FROM outbox WHERE status = 'pending'"
_RELEASE_LEASES = tuple(f"UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?"  # noqa: S608
                        for table in ("checkouts", "outbox"))

# --- safety
_SESSION_REJECTED = """
SELECT 1 FROM rejected_sessions WHERE ref = ? AND checkout_session_id = ? AND expires_at > ?"""
_REJECT_SESSION = """
INSERT INTO rejected_sessions (ref, checkout_session_id, rejected_at, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (ref, checkout_session_id) DO UPDATE SET rejected_at = excluded.rejected_at,
    expires_at = excluded.expires_at"""
_TRIM_REJECTED = """
DELETE FROM rejected_sessions WHERE ref = ? AND checkout_session_id NOT IN (
    SELECT checkout_session_id FROM rejected_sessions WHERE ref = ?
    ORDER BY rejected_at DESC, checkout_session_id LIMIT ?)"""
_CANCEL_UNBOUND = _TRANSITION_SET + """ AND state = 'created' AND checkout_session_id IS NULL
    AND (lease_owner IS NULL OR lease_until <= :now) RETURNING *"""
_HEARTBEAT = """
INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at"""


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


class SQLiteStore:
    """Store on one SQLite file. Not opened by the constructor; call `open()`."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        if busy_timeout < 0:
            raise ValueError("busy_timeout must be >= 0 seconds")
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: Conn | None = None  # touched only in the executor's thread

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

    async def _run(self, fn: Callable[[Conn], T]) -> T:
        if self._executor is None:
            raise StoreUnavailable("SQLite store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[Conn], T]) -> T:
        if self._conn is None:
            raise StoreUnavailable("SQLite store is not open")
        try:
            return fn(self._conn)
        except (StoreError, CheckoutError):
            raise
        except Exception as exc:
            if _unavailable(exc):
                raise StoreUnavailable(f"SQLite database {self.path!r} unavailable: {exc}") from exc
            raise

    async def _fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[sqlite3.Row]:
        """One read statement (autocommit: a consistent snapshot of its own)."""
        return await self._run(lambda conn: conn.execute(sql, params).fetchall())

    async def _tx(self, fn: Callable[[Conn], T]) -> T:
        return await self._run(lambda conn: self._write(conn, fn))

    async def _tx_fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[sqlite3.Row]:
        return await self._tx(lambda conn: conn.execute(sql, params).fetchall())

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
        # check_same_thread=False: access is serialised by the one executor thread anyway; this only
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
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(executor, self._open_in_thread)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

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
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_in_thread)
        executor.shutdown(wait=True)

    def _close_in_thread(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def ping(self) -> None:
        await self._fetch("SELECT 1 FROM schema_migrations LIMIT 1", ())

    async def schema_versions(self) -> list[int]:
        """The migration versions recorded in this database, in order."""
        rows = await self._fetch("SELECT version FROM schema_migrations ORDER BY version", ())
        return [int(row[0]) for row in rows]

    # --- checkouts -------------------------------------------------------------------------------

    async def create_checkout(self, checkout: Checkout) -> None:
        values = checkout_values(checkout)

        def insert(conn: Conn) -> None:
            try:
                conn.execute(_INSERT_CHECKOUT, values)
            except sqlite3.IntegrityError as exc:
                raise _integrity(exc) from exc

        await self._tx(insert)

    async def get_checkout(self, ref: str) -> Checkout | None:
        rows = await self._fetch("SELECT * FROM checkouts WHERE ref = ?", (ref,))
        return checkout_from_row(rows[0]) if rows else None

    async def bind_session(self, ref: str, checkout_session_id: str, now: float) -> Checkout:
        if not checkout_session_id:
            raise ValueError("checkout_session_id must be a non-empty string")

        def bind(conn: Conn) -> Checkout:
            row = conn.execute("SELECT * FROM checkouts WHERE ref = ?", (ref,)).fetchone()
            if row is None:
                raise NotFound("unknown checkout ref")
            bound = row["checkout_session_id"]
            if bound == checkout_session_id:
                return checkout_from_row(row)
            if bound is not None:
                raise SessionConflict("the checkout is bound to another checkout session")
            try:
                row = conn.execute(
                    "UPDATE checkouts SET checkout_session_id = ?, updated_at = ? WHERE ref = ? RETURNING *",
                    (checkout_session_id, now, ref),
                ).fetchone()
            except sqlite3.IntegrityError as exc:
                raise _integrity(exc) from exc
            return checkout_from_row(row)

        return await self._tx(bind)

    async def try_lease(self, ref: str, owner: str, now: float, ttl: float) -> Checkout | None:
        params = {"ref": ref, "owner": owner, "now": now, "until": now + ttl}
        rows = await self._tx_fetch(_TRY_LEASE, params)
        return checkout_from_row(rows[0]) if rows else None

    async def release_lease(self, ref: str, owner: str) -> None:
        sql = "UPDATE checkouts SET lease_owner = NULL, lease_until = NULL WHERE ref = ? AND lease_owner = ?"
        await self._tx(lambda c: c.execute(sql, (ref, owner)))

    async def transition(
        self,
        ref: str,
        *,
        owner: str | None,
        now: float,
        state: str,
        changes: Mapping[str, Any] | None = None,
        events: Sequence[NewEvent] = (),
    ) -> Checkout:
        params: dict[str, Any] = {"ref": ref, "owner": owner, "now": now, "state": state}
        for name, (present, value) in transition_values(state, changes).items():
            params[f"set_{name}"] = present
            params[name] = value
        rows = [event_values(ref, now, event) for event in events]
        sql = _TRANSITION_FREE if owner is None else _TRANSITION_OWNED

        def apply(conn: Conn) -> Checkout:
            try:
                row = conn.execute(sql, params).fetchone()
                if row is None:
                    if conn.execute("SELECT 1 FROM checkouts WHERE ref = ?", (ref,)).fetchone() is None:
                        raise NotFound("unknown checkout ref")
                    raise LeaseLost("the finalize lease is held by someone else")
                conn.executemany(_INSERT_EVENT, rows)
            except sqlite3.IntegrityError as exc:
                raise _integrity(exc) from exc
            return checkout_from_row(row)

        return await self._tx(apply)

    async def list_checkouts(
        self, states: Sequence[str], *, now: float, bound_only: bool = True, limit: int = 100
    ) -> list[Checkout]:
        for state in states:
            check_state(state)
        if not states or limit <= 0:
            return []
        params = {"states": json.dumps(list(states)), "now": now, "bound_only": bound_only, "limit": limit}
        rows = await self._fetch(_LIST_CHECKOUTS, params)
        return [checkout_from_row(row) for row in rows]

    # --- outbox ----------------------------------------------------------------------------------

    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        params = {"owner": owner, "now": now, "until": now + lease_ttl, "limit": limit}
        rows = await self._tx_fetch(_CLAIM_EVENTS, params)
        return sorted((event_from_row(row) for row in rows), key=lambda event: event.seq)

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        # Recorded even if the lease was taken over meanwhile: the merchant has it, so stop sending it.
        params = {"id": event_id, "now": now}
        await self._tx(lambda c: _update_event(c, _EVENT_DELIVERED, params))

    async def event_failed(
        self, event_id: str, owner: str, now: float, error: str, next_attempt_at: float | None
    ) -> None:
        # Only the current lease holder schedules the next attempt; a stale worker's report is dropped.
        params = {"id": event_id, "owner": owner, "error": clip_error(error), "next": next_attempt_at}
        await self._tx(lambda c: _update_event(c, _EVENT_FAILED, params))

    async def list_events(self, *, failed_only: bool = False, limit: int = 100) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        params = {"failed_only": failed_only, "limit": limit}
        rows = await self._fetch(_LIST_EVENTS, params)
        return [event_from_row(row) for row in rows]

    async def get_event(self, event_id: str) -> OutboxEvent | None:
        rows = await self._fetch("SELECT * FROM outbox WHERE id = ?", (event_id,))
        return event_from_row(rows[0]) if rows else None

    async def redeliver(self, event_ids: Sequence[str] | None, now: float) -> int:
        if event_ids is not None and not event_ids:
            return 0
        params = {"now": now, "all": event_ids is None, "ids": json.dumps(list(event_ids or ()))}
        return await self._tx(lambda conn: conn.execute(_REDELIVER, params).rowcount)

    # --- ops (branch ops): metrics gauges, graceful stop -----------------------------------------

    async def outbox_stats(self) -> OutboxStats:
        rows = await self._fetch(_OUTBOX_STATS, ())
        return OutboxStats(int(rows[0][0]), rows[0][1])

    async def release_leases(self, owner: str) -> int:
        def release(conn: Conn) -> int:
            return sum(conn.execute(sql, (owner,)).rowcount for sql in _RELEASE_LEASES)
        return await self._tx(release)

    # --- resume schedule (reconciler backoff, branch quotas) -----------------------------------------

    async def list_due_resumes(self, *, now: float, resume_after: float, limit: int = 100) -> list[DueResume]:
        if limit <= 0:
            return []
        rows = await self._fetch(_DUE_RESUMES, {"now": now, "resume_after": resume_after, "limit": limit})
        return [DueResume(checkout_from_row(row), int(row["resume_attempts"])) for row in rows]

    async def claim_resume(self, ref: str, attempts: int, next_resume_at: float) -> bool:
        params = {"ref": ref, "attempts": attempts, "next": next_resume_at}
        return bool(await self._tx(lambda conn: conn.execute(_CLAIM_RESUME, params).rowcount))


    # --- safety: probes, cancel, supersedes, readiness -------------------------------------------

    async def session_rejected(self, ref: str, checkout_session_id: str, now: float) -> bool:
        rows = await self._fetch(_SESSION_REJECTED, (ref, checkout_session_id, now))
        return bool(rows)

    async def reject_session(self, ref: str, checkout_session_id: str, until: float, now: float) -> None:
        def reject(conn: Conn) -> None:
            conn.execute(_REJECT_SESSION, (ref, checkout_session_id, now, until))
            conn.execute("DELETE FROM rejected_sessions WHERE expires_at <= ?", (now,))
            conn.execute(_TRIM_REJECTED, (ref, ref, REJECTED_PER_REF))

        await self._tx(reject)

    async def cancel_unbound(
        self, ref: str, now: float, changes: Mapping[str, Any], events: Sequence[NewEvent]
    ) -> Checkout | None:
        params: dict[str, Any] = {"ref": ref, "owner": None, "now": now, "state": "canceled"}
        for name, (present, value) in transition_values("canceled", changes).items():
            params[f"set_{name}"] = present
            params[name] = value
        rows = [event_values(ref, now, event) for event in events]

        def apply(conn: Conn) -> Checkout | None:
            row = conn.execute(_CANCEL_UNBOUND, params).fetchone()
            if row is None:
                return None
            conn.executemany(_INSERT_EVENT, rows)
            return checkout_from_row(row)

        return await self._tx(apply)

    async def has_event(self, ref: str, event_type: str) -> bool:
        rows = await self._fetch("SELECT 1 FROM outbox WHERE ref = ? AND type = ? LIMIT 1", (ref, event_type))
        return bool(rows)

    async def check_writable(self, now: float, timeout: float = 2.0) -> None:
        """The heartbeat write waits for the lock at most `timeout` (not the busy timeout), and the caller
        is answered after `timeout` even if the store's thread is still stuck on the file."""
        millis = max(1, int(timeout * 1000))

        def beat(conn: Conn) -> None:
            conn.execute(f"PRAGMA busy_timeout = {millis}")
            try:
                self._write(conn, lambda c: c.execute(_HEARTBEAT, (now,)))
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

        await within(self._run(beat), timeout, f"SQLite database {self.path!r} not writable")

    # --- operator: buyer-detail retention (branch operator) ----------------------------------------

    async def purge_buyer_details(self, before: float) -> int:
        return await self._tx(lambda conn: conn.execute(_PURGE_BUYER_DETAILS, {"before": before}).rowcount)

    async def drop_oldest_checkouts(self, keep: int) -> int:
        def drop(conn: Conn) -> int:
            for sql in _DROP_OLDEST_DEPENDENTS:
                conn.execute(sql, {"keep": keep})
            return int(conn.execute(_DROP_OLDEST, {"keep": keep}).rowcount)

        return await self._tx(drop)


def _migrate(conn: Conn) -> None:
    conn.execute(migrations.SQLITE_MIGRATIONS_TABLE)
    applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}
    for migration in migrations.pending(applied):
        for statement in migration.sqlite:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (migration.version, migration.name)
        )


def _update_event(conn: Conn, sql: str, params: Mapping[str, Any]) -> None:
    if conn.execute(sql, params).rowcount == 0:
        if conn.execute("SELECT 1 FROM outbox WHERE id = ?", (params["id"],)).fetchone() is None:
            raise NotFound("unknown event id")


def _integrity(exc: sqlite3.IntegrityError) -> StoreError | CheckoutError:
    message = str(exc)
    if "checkouts.ref" in message:
        return DuplicateRef("a checkout with this ref exists")
    if "checkouts.checkout_session_id" in message:
        return SessionConflict("the checkout session is bound to another checkout")
    if "outbox.id" in message:
        return StoreError("an outbox event with this id exists")
    return StoreError(f"integrity error: {message}")


# --- operator: private files and buyer-detail retention (branch operator) ------------------------

_PURGE_BUYER_DETAILS = "UPDATE checkouts SET result = NULL WHERE result IS NOT NULL AND updated_at < :before"
# Rows that reference a dropped checkout go first (the foreign keys).
_DROP_OLDEST_DEPENDENTS = tuple(f"""
DELETE FROM {table} WHERE ref IN
    (SELECT ref FROM checkouts ORDER BY created_at DESC, ref DESC LIMIT -1 OFFSET :keep)"""  # noqa: S608
    for table in ("outbox", "rejected_sessions"))
_DROP_OLDEST = """
DELETE FROM checkouts WHERE ref IN
    (SELECT ref FROM checkouts ORDER BY created_at DESC, ref DESC LIMIT -1 OFFSET :keep)"""


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal and -shm files the
    same mode); an existing file keeps the mode its operator chose."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
