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
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import asyncpg.pool

from router.store import flows, migrations
from router.store import statements as sql
from router.store.base import MigrationLocked, StoreUnavailable, within
from router.store.common import Mode, SqlStore
from router.store.flows import Flow, Result, Step, drive_async, violation

T = TypeVar("T")
Conn: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
log = logging.getLogger("router.store.postgres")
# A host clock this far from the database server's is warned of at open. Checkout leases run on the server's
# clock (statements.SERVER_NOW), but the times the instances write (updated_at, a checkout's window, the
# resume schedule, outbox retries and leases) are still their own.
CLOCK_SKEW_WARNING = 2.0
# First key of the two-int advisory lock that serialises migrations ("RRTR"); the second is the schema.
_MIGRATION_LOCK = 0x52525452
# A process frozen mid-transaction (SIGSTOP, a VM or container paused) keeps its row locks while its
# connection stays up: the server ends such a session after this long idle inside a transaction, so the
# next holder waits this long, not until the process thaws. Ours are never idle there: milliseconds.
IDLE_IN_TRANSACTION_TIMEOUT = "10s"

# Errors meaning "the server cannot serve us now", as opposed to a bug in a query. (A connection lost
# inside a transaction surfaces as an InterfaceError instead: see _connection.)
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (connect / command timeout) is an OSError too
    asyncpg.PostgresConnectionError,  # lost or broken connection
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, cannot connect now, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.LockNotAvailableError,  # the operator's lock_timeout ran out
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby, or the primary during a failover
    asyncpg.exceptions.DeadlockDetectedError,  # the server rolled the transaction back: try again
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.StatementCompletionUnknownError,  # the connection went during a COMMIT
)

# At connect time anything the server or driver says means there is no store to serve from.
_CANNOT_CONNECT: tuple[type[BaseException], ...] = (
    *_UNAVAILABLE,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

# Unique constraints by PostgreSQL's default names, as the `table.column` the flows map to errors.
_CONSTRAINTS = {
    "checkouts_pkey": "checkouts.ref",
    "checkouts_checkout_session_id_key": "checkouts.checkout_session_id",
    "outbox_id_key": "outbox.id",
}


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


class PostgresStore(SqlStore):
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
                try:
                    yield conn
                except asyncio.CancelledError:
                    # Cut short (a stop's bound, a probe's timeout): the pool's release would first wait
                    # for the server to answer a reset, 10 s and more on a hung network. Dropped at once.
                    conn.terminate()
                    raise
                except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
                    # Lost inside a transaction: leaving it raises one of these, replacing the lost
                    # connection's error (InternalClientError when the server's notice that it ended the
                    # session came in just before our COMMIT). On an open connection it is a misuse of
                    # asyncpg, a bug: raised as it is.
                    if not _lost(conn):
                        raise
                    raise StoreUnavailable(f"PostgreSQL connection lost: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from exc

    async def _flow(self, make: Callable[[], Flow[T]], mode: Mode) -> T:
        """The whole flow on one pooled connection; a "transaction" flow inside one transaction."""
        async with self._connection() as conn:
            if mode != "transaction":
                return await drive_async(make(), lambda step: _execute(conn, step))
            async with conn.transaction():
                return await drive_async(make(), lambda step: _execute(conn, step))

    # --- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": self.schema} if self.schema else {}
        given = {key for key, _ in parse_qsl(urlsplit(self._dsn).query)}
        if "idle_in_transaction_session_timeout" not in given:  # the URL's own (or none) wins over ours
            settings["idle_in_transaction_session_timeout"] = IDLE_IN_TRANSACTION_TIMEOUT
        try:
            pool = await asyncpg.create_pool(self._dsn, server_settings=settings, **self._pool_options)
        except _CANNOT_CONNECT as exc:
            # Refused, timed out, or turned away (bad password, unknown database).
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        self._pool = pool
        try:
            async with self._connection() as conn:
                async with conn.transaction():
                    await self._migrate(conn)
                await _warn_of_clock_skew(conn)
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, conn: Conn) -> None:
        # Serialise concurrent starts; the lock is released with the transaction.
        lock = (_MIGRATION_LOCK, self.schema or "")
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, hashtext($2))", *lock):
            log.info("storage: another instance is applying the schema migrations; waiting for it")
            try:
                await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", *lock)
            except TimeoutError as exc:  # the command timeout: a long migration, or a holder that is stuck
                raise MigrationLocked(
                    f"another instance held the schema migration lock for {self._pool_options['command_timeout']:g} s"
                ) from exc
        if self.schema:
            # The name matched _SCHEMA_NAME, so it needs no quoting and cannot inject anything.
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        await conn.execute(migrations.POSTGRES_MIGRATIONS_TABLE)
        applied = {int(row["version"]) for row in await conn.fetch(sql.APPLIED_MIGRATIONS.postgres)}
        for migration in migrations.pending(applied):
            for statement in migration.postgres:
                await conn.execute(statement)
            await conn.execute(sql.RECORD_MIGRATION.postgres, migration.version, migration.name)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except _UNAVAILABLE:  # includes TimeoutError
            pool.terminate()

    async def check_writable(self, now: float, timeout: float = 2.0) -> None:
        """Answered within `timeout` even when the server is unreachable (connect, acquire and command
        timeouts are far longer: they suit requests, not a readiness probe)."""
        beat = partial(flows.count, sql.HEARTBEAT, now=now)
        await within(self._flow(beat, "write"), timeout, "PostgreSQL not writable")


async def _warn_of_clock_skew(conn: Conn) -> None:
    """Say so if this host's clock is off from the database server's (which every instance shares) by more
    than CLOCK_SKEW_WARNING: the times an instance writes are its own clock's (see CLOCK_SKEW_WARNING)."""
    before = time.time()
    server = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
    after = time.time()
    skew = (before + after) / 2 - server
    if abs(skew) > CLOCK_SKEW_WARNING + (after - before) / 2:
        log.warning("storage: this host's clock is %.1f s %s the database server's; checkout windows, retries "
                    "and webhook leases between instances assume clocks that agree (run NTP or chrony on every "
                    "host)", abs(skew),
                    "ahead of" if skew > 0 else "behind")


def _lost(conn: Conn) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # detached from its proxy already: the pool saw the connection go
        return True


async def _execute(conn: Conn, step: Step) -> Result:
    statement = step.statement
    try:
        if step.many is not None:
            await conn.executemany(statement.postgres, [_args(statement, params) for params in step.many])
            return Result((), len(step.many))
        args = _args(statement, step.params)
        if statement.returns_rows:
            rows = await conn.fetch(statement.postgres, *args)
            return Result(rows, len(rows))
        status = await conn.execute(statement.postgres, *args)  # e.g. "UPDATE 3"
    except asyncpg.UniqueViolationError as exc:
        name = exc.constraint_name
        raise violation(_CONSTRAINTS.get(name or ""), f"unique violation on {name}") from exc
    return Result((), int(status.rsplit(" ", 1)[1]))


def _args(statement: sql.Statement, params: Mapping[str, Any]) -> list[Any]:
    return [params[name] for name in statement.names]
