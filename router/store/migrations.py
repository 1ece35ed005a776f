"""Versioned schema migrations, written once per dialect.

Each backend applies the pending ones inside `open()`, under its own cross-instance lock
(SQLite: BEGIN IMMEDIATE; PostgreSQL: pg_advisory_xact_lock), and records them in
`schema_migrations`. Migrations are append-only: never edit a released version, add a new one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from router.store.base import StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


SQLITE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)"""

POSTGRES_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

_V1_SQLITE = (
    """
    CREATE TABLE checkouts (
        ref TEXT PRIMARY KEY,
        merchant_reference TEXT NOT NULL,
        amount TEXT NOT NULL,
        currency TEXT NOT NULL,
        payment_intent TEXT NOT NULL,
        can_handle_pending INTEGER NOT NULL CHECK (can_handle_pending IN (0, 1)),
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        state TEXT NOT NULL,
        updated_at REAL NOT NULL,
        total_order_amount TEXT,
        supplementary_data TEXT,
        checkout_session_id TEXT UNIQUE,
        charge_id TEXT,
        charge_permission_id TEXT,
        reason_code TEXT,
        result TEXT,
        lease_owner TEXT,
        lease_until REAL,
        version INTEGER NOT NULL
    )""",
    "CREATE INDEX checkouts_state_updated ON checkouts (state, updated_at)",
    # seq is the rowid: one global, strictly increasing order of insertion.
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        ref TEXT NOT NULL REFERENCES checkouts (ref),
        type TEXT NOT NULL,
        created REAL NOT NULL,
        body BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        delivered_at REAL,
        lease_owner TEXT,
        lease_until REAL
    )""",
    "CREATE INDEX outbox_status_due ON outbox (status, next_attempt_at)",
    "CREATE INDEX outbox_ref_seq ON outbox (ref, seq)",
)

_V1_POSTGRES = (
    """
    CREATE TABLE checkouts (
        ref TEXT PRIMARY KEY,
        merchant_reference TEXT NOT NULL,
        amount TEXT NOT NULL,
        currency TEXT NOT NULL,
        payment_intent TEXT NOT NULL,
        can_handle_pending BOOLEAN NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        total_order_amount TEXT,
        supplementary_data TEXT,
        checkout_session_id TEXT UNIQUE,
        charge_id TEXT,
        charge_permission_id TEXT,
        reason_code TEXT,
        result JSONB,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        version INTEGER NOT NULL
    )""",
    "CREATE INDEX checkouts_state_updated ON checkouts (state, updated_at)",
    """
    CREATE TABLE outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ref TEXT NOT NULL REFERENCES checkouts (ref),
        type TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        body BYTEA NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        last_error TEXT,
        delivered_at DOUBLE PRECISION,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION
    )""",
    "CREATE INDEX outbox_status_due ON outbox (status, next_attempt_at)",
    "CREATE INDEX outbox_ref_seq ON outbox (ref, seq)",
)

# Branch quotas: the reconciler's per-checkout resume backoff, in the store so that it survives
# restarts and is shared by every instance.
_RESUME_SQLITE = (
    "ALTER TABLE checkouts ADD COLUMN resume_attempts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE checkouts ADD COLUMN next_resume_at REAL",
)
_RESUME_POSTGRES = (
    "ALTER TABLE checkouts ADD COLUMN resume_attempts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE checkouts ADD COLUMN next_resume_at DOUBLE PRECISION",
)

# --- safety: sessions Amazon rejected per ref (bounded by each checkout's expiry), the readiness heartbeat
_SAFETY_SQLITE = (
    """
    CREATE TABLE rejected_sessions (
        ref TEXT NOT NULL REFERENCES checkouts (ref),
        checkout_session_id TEXT NOT NULL,
        rejected_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (ref, checkout_session_id)
    )""",
    "CREATE INDEX rejected_sessions_expires ON rejected_sessions (expires_at)",
    "CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL)",
)

_SAFETY_POSTGRES = (
    """
    CREATE TABLE rejected_sessions (
        ref TEXT NOT NULL REFERENCES checkouts (ref),
        checkout_session_id TEXT NOT NULL,
        rejected_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (ref, checkout_session_id)
    )""",
    "CREATE INDEX rejected_sessions_expires ON rejected_sessions (expires_at)",
    "CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at DOUBLE PRECISION NOT NULL)",
)

# --- ops: what caused each event (the request's id and trace), so that any process delivering it sends them
_CAUSE = (
    "ALTER TABLE outbox ADD COLUMN request_id TEXT",
    "ALTER TABLE outbox ADD COLUMN traceparent TEXT",
)

# --- retention: the purges read only what they remove (a whole-table scan every pass, in the one thread
# every SQLite commit waits for, grew with the table: 16-36 ms a pass at 200,000 checkouts).
# delivered_at is set exactly when an event is delivered. A checkout.canceled event is kept: it is the
# record of the buyer's cancel that a made-up session id must not undo (CheckoutService._unbind).
_RETENTION = (
    "CREATE INDEX checkouts_result_updated ON checkouts (updated_at) WHERE result IS NOT NULL",
    "CREATE INDEX outbox_delivered ON outbox (delivered_at)"
    " WHERE delivered_at IS NOT NULL AND type <> 'checkout.canceled'",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "checkouts and outbox", _V1_SQLITE, _V1_POSTGRES),
    Migration(2, "quotas: resume schedule", _RESUME_SQLITE, _RESUME_POSTGRES),
    Migration(3, "safety: rejected sessions and heartbeat", _SAFETY_SQLITE, _SAFETY_POSTGRES),
    Migration(4, "ops: the request that caused each event", _CAUSE, _CAUSE),
    Migration(5, "retention: indexes for the purges", _RETENTION, _RETENTION),
)

LATEST_VERSION = MIGRATIONS[-1].version


def pending(applied: Collection[int]) -> list[Migration]:
    """The migrations still to apply, in order; refuse a database newer than this code."""
    newest = max(applied, default=0)
    if newest > LATEST_VERSION:
        raise StoreError(
            f"database schema version {newest} is newer than this return-router supports "
            f"({LATEST_VERSION}); upgrade return-router"
        )
    return [m for m in MIGRATIONS if m.version not in applied]
