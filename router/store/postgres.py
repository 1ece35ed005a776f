"""The PostgreSQL backend (several return-router instances sharing one database), over an asyncpg pool.

Leases are single conditional `UPDATE … WHERE … RETURNING` statements; outbox claims lock candidate
rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers never claim one event twice and never wait
on each other. Lost connections surface as StoreUnavailable; asyncpg's pool replaces a broken
connection on the next acquire, so the store recovers by itself once the server is back.

`?schema=NAME` in the URL (or `schema=` in the constructor) keeps every table in that schema (created
if missing) by setting the connections' search_path; without it the server's default search_path is used.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import asyncpg.pool

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
    CHECKOUT_COLUMNS,
    check_state,
    checkout_from_row,
    checkout_values,
    clip_error,
    event_from_row,
    event_values,
    transition_values,
)

T = TypeVar("T")
Conn: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# First key of the two-int advisory lock that serialises migrations ("RRTR"); the second is the schema.
_MIGRATION_LOCK = 0x52525452

# Errors meaning "the server cannot serve us now", as opposed to a bug in a query.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (connect / command timeout) is an OSError too
    asyncpg.PostgresConnectionError,  # lost or broken connection
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, cannot connect now, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)

# At connect time anything the server or driver says means there is no store to serve from.
_CANNOT_CONNECT: tuple[type[BaseException], ...] = (
    *_UNAVAILABLE,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

_INSERT_CHECKOUT = """
INSERT INTO checkouts (
    ref, merchant_reference, amount, currency, payment_intent, can_handle_pending, created_at, expires_at,
    state, updated_at, total_order_amount, supplementary_data, checkout_session_id, charge_id,
    charge_permission_id, reason_code, result, lease_owner, lease_until, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18, $19, $20)"""


_TRY_LEASE = """
UPDATE checkouts SET lease_owner = $2, lease_until = $4
WHERE ref = $1 AND state IN ('created', 'pending') AND (lease_owner IS NULL OR lease_until <= $3)
RETURNING *"""

# $1 ref, $2 now, $3 state, then (flag, value) pairs in records.MUTABLE_ORDER, $16 owner.
_RELEASE_LEASE = (
    "UPDATE checkouts SET lease_owner = NULL, lease_until = NULL WHERE ref = $1 AND lease_owner = $2"
)

_TRANSITION_SET = """
UPDATE checkouts SET
    state = $3, updated_at = $2, version = version + 1, lease_owner = NULL, lease_until = NULL,
    checkout_session_id = CASE WHEN $4::boolean THEN $5::text ELSE checkout_session_id END,
    charge_id = CASE WHEN $6::boolean THEN $7::text ELSE charge_id END,
    charge_permission_id = CASE WHEN $8::boolean THEN $9::text ELSE charge_permission_id END,
    reason_code = CASE WHEN $10::boolean THEN $11::text ELSE reason_code END,
    result = CASE WHEN $12::boolean THEN $13::jsonb ELSE result END,
    expires_at = CASE WHEN $14::boolean THEN $15::float8 ELSE expires_at END
WHERE ref = $1"""
# With an owner: that owner must still hold the lease (nobody took it over, even if it expired).
_TRANSITION_OWNED = _TRANSITION_SET + " AND lease_owner = $16::text RETURNING *"
# Without one: nobody may hold an unexpired lease.
_TRANSITION_FREE = _TRANSITION_SET + " AND (lease_owner IS NULL OR lease_until <= $2) RETURNING *"

_INSERT_EVENT = """
INSERT INTO outbox (id, ref, type, created, body, status, attempts, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6)"""

_DUE_RESUMES = """
SELECT * FROM checkouts
WHERE state = 'created' AND checkout_session_id IS NOT NULL
  AND (lease_owner IS NULL OR lease_until <= $1)
  AND (COALESCE(next_resume_at, updated_at + $2::double precision) <= $1 OR expires_at <= $1)
ORDER BY COALESCE(next_resume_at, updated_at + $2::double precision), ref
LIMIT $3"""

_CLAIM_RESUME = """
UPDATE checkouts SET resume_attempts = $2::integer + 1, next_resume_at = $3
WHERE ref = $1 AND resume_attempts = $2::integer AND state = 'created'"""

_LIST_CHECKOUTS = """
SELECT * FROM checkouts
WHERE state = ANY($1::text[])
  AND (lease_owner IS NULL OR lease_until <= $2)
  AND (NOT $3::boolean OR checkout_session_id IS NOT NULL)
ORDER BY updated_at, ref
LIMIT $4"""

_CLAIM_EVENTS = """
WITH due AS (
    SELECT e.seq FROM outbox e
    WHERE e.status = 'pending' AND e.next_attempt_at <= $2
      AND (e.lease_owner IS NULL OR e.lease_until <= $2)
      AND NOT EXISTS (
          SELECT 1 FROM outbox p WHERE p.ref = e.ref AND p.seq < e.seq AND p.status <> 'delivered')
    ORDER BY e.seq
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
UPDATE outbox o SET lease_owner = $1, lease_until = $3
FROM due WHERE o.seq = due.seq
RETURNING o.*"""

_EVENT_DELIVERED = """
UPDATE outbox SET status = 'delivered', delivered_at = $2, attempts = attempts + 1,
    lease_owner = NULL, lease_until = NULL
WHERE id = $1 AND status <> 'delivered'"""

_EVENT_FAILED = """
UPDATE outbox SET attempts = attempts + 1, last_error = $3, lease_owner = NULL, lease_until = NULL,
    status = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END,
    next_attempt_at = COALESCE($4::float8, next_attempt_at)
WHERE id = $1 AND status = 'pending' AND lease_owner = $2"""

_REDELIVER = """
UPDATE outbox SET status = 'pending', next_attempt_at = $1, attempts = 0,
    lease_owner = NULL, lease_until = NULL
WHERE status = 'failed' AND ($2::boolean OR id = ANY($3::text[]))"""

_LIST_EVENTS = """
SELECT * FROM outbox WHERE (NOT $1::boolean OR status = 'failed') ORDER BY seq DESC LIMIT $2"""

# ops (branch ops)
_OUTBOX_STATS = "SELECT count(*), min(created) FROM outbox WHERE status = 'pending'"
_RELEASE_LEASES = tuple(f"UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1"  # noqa: S608
                        for table in ("checkouts", "outbox"))

# --- safety
_SESSION_REJECTED = """
SELECT 1 FROM rejected_sessions WHERE ref = $1 AND checkout_session_id = $2 AND expires_at > $3"""
_REJECT_SESSION = """
INSERT INTO rejected_sessions (ref, checkout_session_id, rejected_at, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (ref, checkout_session_id) DO UPDATE SET rejected_at = excluded.rejected_at,
    expires_at = excluded.expires_at"""
_TRIM_REJECTED = """
DELETE FROM rejected_sessions WHERE ref = $1 AND checkout_session_id NOT IN (
    SELECT checkout_session_id FROM rejected_sessions WHERE ref = $1
    ORDER BY rejected_at DESC, checkout_session_id LIMIT $2)"""
_CANCEL_UNBOUND = _TRANSITION_SET + """ AND state = 'created' AND checkout_session_id IS NULL
    AND (lease_owner IS NULL OR lease_until <= $2) RETURNING *"""
_HEARTBEAT = """
INSERT INTO heartbeat (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at"""


def parse_url(url: str) -> tuple[str, str | None]:
    """Split `postgresql://…?schema=NAME` into (DSN for asyncpg, schema)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise ValueError("PostgreSQL URL has more than one schema parameter")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[0] if schemas else None)


def _check_schema(schema: str | None) -> None:
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"invalid PostgreSQL schema name {schema!r}: use lowercase letters, digits and _ (max 63)"
        )


class PostgresStore:
    """Store on a PostgreSQL database. Not connected by the constructor; call `open()`."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        acquire_timeout: float = 10.0,
    ) -> None:
        _check_schema(schema)
        self._dsn = dsn
        self.schema = schema
        self._pool_options: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
        }
        self.acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        dsn, schema = parse_url(url)
        return cls(dsn, schema=schema)

    def __repr__(self) -> str:
        parts = urlsplit(self._dsn)  # no user or password in reprs
        where = f"host={parts.hostname!r}, port={parts.port}, db={parts.path[1:]!r}"
        return f"PostgresStore({where}, schema={self.schema!r})"

    # --- plumbing --------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("PostgreSQL store is not open")
        try:
            async with pool.acquire(timeout=self.acquire_timeout) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from exc

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        async with self._connection() as conn, conn.transaction():
            return await fn(conn)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement, committed on its own (atomic by itself)."""
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    # --- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": self.schema} if self.schema else None
        try:
            pool = await asyncpg.create_pool(self._dsn, server_settings=settings, **self._pool_options)
        except _CANNOT_CONNECT as exc:
            # Refused, timed out, or turned away (bad password, unknown database).
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        self._pool = pool
        try:
            await self._tx(self._migrate)
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, conn: Conn) -> None:
        # Serialise concurrent starts; the lock is released with the transaction.
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", _MIGRATION_LOCK, self.schema or ""
        )
        if self.schema:
            # The name matched _SCHEMA_NAME, so it needs no quoting and cannot inject anything.
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        await conn.execute(migrations.POSTGRES_MIGRATIONS_TABLE)
        applied = {int(row["version"]) for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations.pending(applied):
            for statement in migration.postgres:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except _UNAVAILABLE:  # includes TimeoutError
            pool.terminate()

    async def ping(self) -> None:
        await self._fetch("SELECT 1 FROM schema_migrations LIMIT 1")

    async def schema_versions(self) -> list[int]:
        """The migration versions recorded in this database, in order."""
        rows = await self._fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [int(row["version"]) for row in rows]

    # --- checkouts -------------------------------------------------------------------------------

    async def create_checkout(self, checkout: Checkout) -> None:
        values = checkout_values(checkout)
        try:
            await self._fetch(_INSERT_CHECKOUT, *(values[name] for name in CHECKOUT_COLUMNS))
        except asyncpg.UniqueViolationError as exc:
            raise _unique(exc) from exc

    async def get_checkout(self, ref: str) -> Checkout | None:
        rows = await self._fetch("SELECT * FROM checkouts WHERE ref = $1", ref)
        return checkout_from_row(rows[0]) if rows else None

    async def bind_session(self, ref: str, checkout_session_id: str, now: float) -> Checkout:
        if not checkout_session_id:
            raise ValueError("checkout_session_id must be a non-empty string")

        async def bind(conn: Conn) -> Checkout:
            row = await conn.fetchrow("SELECT * FROM checkouts WHERE ref = $1 FOR UPDATE", ref)
            if row is None:
                raise NotFound("unknown checkout ref")
            bound = row["checkout_session_id"]
            if bound == checkout_session_id:
                return checkout_from_row(row)
            if bound is not None:
                raise SessionConflict("the checkout is bound to another checkout session")
            row = await conn.fetchrow(
                "UPDATE checkouts SET checkout_session_id = $2, updated_at = $3 WHERE ref = $1 RETURNING *",
                ref,
                checkout_session_id,
                now,
            )
            assert row is not None  # locked above
            return checkout_from_row(row)

        try:
            return await self._tx(bind)
        except asyncpg.UniqueViolationError as exc:
            raise _unique(exc) from exc

    async def try_lease(self, ref: str, owner: str, now: float, ttl: float) -> Checkout | None:
        rows = await self._fetch(_TRY_LEASE, ref, owner, now, now + ttl)
        return checkout_from_row(rows[0]) if rows else None

    async def release_lease(self, ref: str, owner: str) -> None:
        sql = (
            "UPDATE checkouts SET lease_owner = NULL, lease_until = NULL WHERE ref = $1 AND lease_owner = $2"
        )
        await self._fetch(sql, ref, owner)

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
        args: list[Any] = [ref, now, state]
        for present, value in transition_values(state, changes).values():
            args += [present, value]
        if owner is not None:
            args.append(owner)
        rows = [event_values(ref, now, event) for event in events]
        sql = _TRANSITION_FREE if owner is None else _TRANSITION_OWNED

        async def apply(conn: Conn) -> Checkout:
            row = await conn.fetchrow(sql, *args)
            if row is None:
                if await conn.fetchval("SELECT 1 FROM checkouts WHERE ref = $1", ref) is None:
                    raise NotFound("unknown checkout ref")
                raise LeaseLost("the finalize lease is held by someone else")
            if rows:
                await conn.executemany(_INSERT_EVENT, rows)
            return checkout_from_row(row)

        try:
            return await self._tx(apply)
        except asyncpg.UniqueViolationError as exc:
            raise _unique(exc) from exc

    async def list_checkouts(
        self, states: Sequence[str], *, now: float, bound_only: bool = True, limit: int = 100
    ) -> list[Checkout]:
        for state in states:
            check_state(state)
        if not states or limit <= 0:
            return []
        rows = await self._fetch(_LIST_CHECKOUTS, list(states), now, bound_only, limit)
        return [checkout_from_row(row) for row in rows]

    # --- outbox ----------------------------------------------------------------------------------

    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        rows = await self._fetch(_CLAIM_EVENTS, owner, now, now + lease_ttl, limit)
        return sorted((event_from_row(row) for row in rows), key=lambda event: event.seq)

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        # Recorded even if the lease was taken over meanwhile: the merchant has it, so stop sending it.
        await self._update_event(_EVENT_DELIVERED, event_id, now)

    async def event_failed(
        self, event_id: str, owner: str, now: float, error: str, next_attempt_at: float | None
    ) -> None:
        # Only the current lease holder schedules the next attempt; a stale worker's report is dropped.
        await self._update_event(_EVENT_FAILED, event_id, owner, clip_error(error), next_attempt_at)

    async def _update_event(self, sql: str, event_id: str, *args: Any) -> None:
        async def update(conn: Conn) -> None:
            status = await conn.execute(sql, event_id, *args)
            if (
                status.endswith(" 0")
                and await conn.fetchval("SELECT 1 FROM outbox WHERE id = $1", event_id) is None
            ):
                raise NotFound("unknown event id")

        await self._tx(update)

    async def list_events(self, *, failed_only: bool = False, limit: int = 100) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        rows = await self._fetch(_LIST_EVENTS, failed_only, limit)
        return [event_from_row(row) for row in rows]

    async def get_event(self, event_id: str) -> OutboxEvent | None:
        rows = await self._fetch("SELECT * FROM outbox WHERE id = $1", event_id)
        return event_from_row(rows[0]) if rows else None

    async def redeliver(self, event_ids: Sequence[str] | None, now: float) -> int:
        if event_ids is not None and not event_ids:
            return 0
        async with self._connection() as conn:
            status = await conn.execute(_REDELIVER, now, event_ids is None, list(event_ids or ()))
        return int(status.rsplit(" ", 1)[1])

    # --- ops (branch ops): metrics gauges, graceful stop -----------------------------------------

    async def outbox_stats(self) -> OutboxStats:
        rows = await self._fetch(_OUTBOX_STATS)
        return OutboxStats(int(rows[0][0]), rows[0][1])

    async def release_leases(self, owner: str) -> int:
        async def release(conn: Conn) -> int:
            return sum([int((await conn.execute(sql, owner)).rsplit(" ", 1)[1]) for sql in _RELEASE_LEASES])
        return await self._tx(release)

    # --- resume schedule (reconciler backoff, branch quotas) -----------------------------------------

    async def list_due_resumes(self, *, now: float, resume_after: float, limit: int = 100) -> list[DueResume]:
        if limit <= 0:
            return []
        rows = await self._fetch(_DUE_RESUMES, now, resume_after, limit)
        return [DueResume(checkout_from_row(row), int(row["resume_attempts"])) for row in rows]

    async def claim_resume(self, ref: str, attempts: int, next_resume_at: float) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(_CLAIM_RESUME, ref, attempts, next_resume_at)
        return int(status.rsplit(" ", 1)[1]) == 1


    # --- safety: probes, cancel, supersedes, readiness -------------------------------------------

    async def session_rejected(self, ref: str, checkout_session_id: str, now: float) -> bool:
        return bool(await self._fetch(_SESSION_REJECTED, ref, checkout_session_id, now))

    async def reject_session(self, ref: str, checkout_session_id: str, until: float, now: float) -> None:
        async def reject(conn: Conn) -> None:
            await conn.execute(_REJECT_SESSION, ref, checkout_session_id, now, until)
            await conn.execute("DELETE FROM rejected_sessions WHERE expires_at <= $1", now)
            await conn.execute(_TRIM_REJECTED, ref, REJECTED_PER_REF)

        await self._tx(reject)

    async def cancel_unbound(
        self, ref: str, now: float, changes: Mapping[str, Any], events: Sequence[NewEvent]
    ) -> Checkout | None:
        args: list[Any] = [ref, now, "canceled"]
        for present, value in transition_values("canceled", changes).values():
            args += [present, value]
        rows = [event_values(ref, now, event) for event in events]

        async def apply(conn: Conn) -> Checkout | None:
            row = await conn.fetchrow(_CANCEL_UNBOUND, *args)
            if row is None:
                return None
            if rows:
                await conn.executemany(_INSERT_EVENT, rows)
            return checkout_from_row(row)

        return await self._tx(apply)

    async def has_event(self, ref: str, event_type: str) -> bool:
        sql = "SELECT 1 FROM outbox WHERE ref = $1 AND type = $2 LIMIT 1"
        return bool(await self._fetch(sql, ref, event_type))

    async def check_writable(self, now: float, timeout: float = 2.0) -> None:
        """Answered within `timeout` even when the server is unreachable (connect, acquire and command
        timeouts are far longer: they suit requests, not a readiness probe)."""
        await within(self._fetch(_HEARTBEAT, now), timeout, "PostgreSQL not writable")

    # --- operator: buyer-detail retention (branch operator) ----------------------------------------

    async def purge_buyer_details(self, before: float) -> int:
        async with self._connection() as conn:
            status = await conn.execute(_PURGE_BUYER_DETAILS, before)
        return int(status.rsplit(" ", 1)[1])

    async def drop_oldest_checkouts(self, keep: int) -> int:
        async def drop(conn: Conn) -> int:
            for sql in _DROP_OLDEST_DEPENDENTS:
                await conn.execute(sql, keep)
            status = await conn.execute(_DROP_OLDEST, keep)
            return int(status.rsplit(" ", 1)[1])

        return await self._tx(drop)


def _unique(exc: asyncpg.UniqueViolationError) -> StoreError | CheckoutError:
    constraint = exc.constraint_name
    if constraint == "checkouts_pkey":
        return DuplicateRef("a checkout with this ref exists")
    if constraint == "checkouts_checkout_session_id_key":
        return SessionConflict("the checkout session is bound to another checkout")
    if constraint == "outbox_id_key":
        return StoreError("an outbox event with this id exists")
    return StoreError(f"unique violation on {constraint}")


# --- operator: buyer-detail retention (branch operator) -------------------------------------------

_PURGE_BUYER_DETAILS = "UPDATE checkouts SET result = NULL WHERE result IS NOT NULL AND updated_at < $1"
# Rows that reference a dropped checkout go first (the foreign keys).
_DROP_OLDEST_DEPENDENTS = tuple(f"""
DELETE FROM {table} WHERE ref IN
    (SELECT ref FROM checkouts ORDER BY created_at DESC, ref DESC OFFSET $1)"""  # noqa: S608
    for table in ("outbox", "rejected_sessions"))
_DROP_OLDEST = """
DELETE FROM checkouts WHERE ref IN
    (SELECT ref FROM checkouts ORDER BY created_at DESC, ref DESC OFFSET $1)"""
