"""Every SQL statement of both backends, written once with named parameters (`:name`).

The text is PostgreSQL's, with `:name` placeholders. Compiled once at import, each statement carries
asyncpg's form (`$n` placeholders and the parameter names in `$n` order) and sqlite3's form (named
placeholders, the few PostgreSQL-only constructs rewritten by _SQLITE_RULES). Where the two dialects
truly differ in shape (claiming outbox events), a statement gives its PostgreSQL text separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from router.store.records import CHECKOUT_COLUMNS

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")

# PostgreSQL constructs and their SQLite forms, applied in order.
_SQLITE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # A list parameter: SQLite receives it as JSON text (the SQLite store encodes lists).
    (re.compile(r"= ANY\((:\w+)::text\[\]\)"), r"IN (SELECT value FROM json_each(\1))"),
    # Casts tell asyncpg a parameter's type where the statement leaves it open; SQLite has no `::`.
    (re.compile(r"(:\w+)::\w+"), r"\1"),
    # Row locks: SQLite's BEGIN IMMEDIATE already holds the database's write lock.
    (re.compile(r" FOR UPDATE(?: SKIP LOCKED)?\b"), ""),
    # "Every row after the first N": SQLite needs a LIMIT before an OFFSET.
    (re.compile(r"\bOFFSET\b"), "LIMIT -1 OFFSET"),
)


@dataclass(frozen=True)
class Statement:
    sqlite: str  # named placeholders, for sqlite3
    postgres: str  # $n placeholders, for asyncpg
    names: tuple[str, ...]  # the parameter behind each $n, in order
    returns_rows: bool  # a SELECT or … RETURNING (else the backends report a row count)


def numbered(text: str) -> tuple[str, tuple[str, ...]]:
    """`:name` placeholders → `$n` (one number per distinct name) and the names in number order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, text), tuple(names)


def for_sqlite(text: str) -> str:
    for pattern, replacement in _SQLITE_RULES:
        text = pattern.sub(replacement, text)
    return text


# The database server's clock, in Unix seconds, as each statement runs (not the transaction's start).
SERVER_NOW = "extract(epoch FROM clock_timestamp())"
# A checkout lease on PostgreSQL is taken and judged on the server's clock, which every instance shares, so
# a host clock ahead cannot take another instance's live lease early (nor one behind hold a dead one long);
# `:now` (the caller's clock) still dates the rest. SQLite is one host: its statements keep `:now`.
_SERVER_CLOCK_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\blease_until <= :now\b"), f"lease_until <= {SERVER_NOW}"),
    (re.compile(r"\blease_until = :until\b"), f"lease_until = {SERVER_NOW} + :ttl::float8"),
)


def on_server_clock(text: str) -> str:
    """`text` with its checkout lease taken and compared on the PostgreSQL server's clock."""
    for pattern, replacement in _SERVER_CLOCK_RULES:
        text = pattern.sub(replacement, text)
    return text


def leasing(text: str) -> Statement:
    """A checkouts statement that takes or respects the finalize lease (see _SERVER_CLOCK_RULES)."""
    return statement(text, postgres=on_server_clock(text))


def statement(text: str, *, postgres: str | None = None) -> Statement:
    pg_text, names = numbered(text if postgres is None else postgres)
    head = text.lstrip().split(None, 1)[0].upper()
    returns = head in ("SELECT", "WITH") or re.search(r"\bRETURNING\b", text) is not None
    return Statement(for_sqlite(text), pg_text, names, returns)


# --- checkouts -------------------------------------------------------------------------------------

INSERT_CHECKOUT = statement(
    f"INSERT INTO checkouts ({', '.join(CHECKOUT_COLUMNS)}) VALUES ("  # noqa: S608 (fixed column names)
    + ", ".join(":result::jsonb" if name == "result" else f":{name}" for name in CHECKOUT_COLUMNS)
    + ")"
)
GET_CHECKOUT = statement("SELECT * FROM checkouts WHERE ref = :ref")
LOCK_CHECKOUT = statement("SELECT * FROM checkouts WHERE ref = :ref FOR UPDATE")
# A lease TRY_LEASE may take: free, expired, or (`:reclaim`, an owner, else NULL) that owner's own on a checkout
# still created, which a write whose COMMIT outcome it never heard may have left there (see try_lease).
_LEASE_FREE = """(lease_owner IS NULL OR lease_until <= :now
    OR (lease_owner = :reclaim::text AND state = 'created'))"""
# LOCK_CHECKOUT, with whether the lease is free (TRY_LEASE's test) judged by the database in this statement.
LOCK_FOR_LEASE = leasing(
    f"SELECT *, {_LEASE_FREE} AS lease_free FROM checkouts WHERE ref = :ref FOR UPDATE"  # noqa: S608
)
CHECKOUT_EXISTS = statement("SELECT 1 FROM checkouts WHERE ref = :ref")
BIND_SESSION = statement(
    "UPDATE checkouts SET checkout_session_id = :session, updated_at = :now WHERE ref = :ref RETURNING *"
)
# An unbound checkout whose lease is free, bound and leased at once (the row is locked, so whether the
# lease is free was read in the same transaction).
BIND_AND_LEASE = leasing("""
UPDATE checkouts SET checkout_session_id = :session, updated_at = :now, lease_owner = :owner, lease_until = :until
WHERE ref = :ref RETURNING *""")
# Back to `created` from a cancel-URL cancel (unbound), when the buyer returns from Amazon after all.
REOPEN_CANCELED = statement("""
UPDATE checkouts SET state = 'created', updated_at = :now, version = version + 1
WHERE ref = :ref AND state = 'canceled' AND checkout_session_id IS NULL RETURNING *""")
TRY_LEASE = leasing(f"""
UPDATE checkouts SET lease_owner = :owner, lease_until = :until
WHERE ref = :ref AND state IN ('created', 'pending') AND {_LEASE_FREE}
RETURNING *""")  # noqa: S608
RELEASE_LEASE = statement(
    "UPDATE checkouts SET lease_owner = NULL, lease_until = NULL WHERE ref = :ref AND lease_owner = :owner"
)

_TRANSITION_SET = """
UPDATE checkouts SET
    state = :state, updated_at = :now, version = version + 1, lease_owner = NULL, lease_until = NULL,
    checkout_session_id = CASE WHEN :set_checkout_session_id::boolean THEN :checkout_session_id::text
                               ELSE checkout_session_id END,
    charge_id = CASE WHEN :set_charge_id::boolean THEN :charge_id::text ELSE charge_id END,
    charge_permission_id = CASE WHEN :set_charge_permission_id::boolean THEN :charge_permission_id::text
                                ELSE charge_permission_id END,
    reason_code = CASE WHEN :set_reason_code::boolean THEN :reason_code::text ELSE reason_code END,
    result = CASE WHEN :set_result::boolean THEN :result::jsonb ELSE result END,
    expires_at = CASE WHEN :set_expires_at::boolean THEN :expires_at::float8 ELSE expires_at END
WHERE ref = :ref"""
# With an owner: that owner must still hold the lease (nobody took it over, even if it expired).
TRANSITION_OWNED = statement(_TRANSITION_SET + " AND lease_owner = :owner::text RETURNING *")
# Without one: nobody may hold an unexpired lease.
TRANSITION_FREE = leasing(_TRANSITION_SET + " AND (lease_owner IS NULL OR lease_until <= :now) RETURNING *")
# Only a checkout still created, bound to no session and not leased, as read in this very statement:
# a cancel-URL visit, or the expiry of one past its window (never a row another instance bound, paid
# or canceled since the caller listed it).
_UNBOUND_CREATED = """ AND state = 'created' AND checkout_session_id IS NULL
    AND (lease_owner IS NULL OR lease_until <= :now)"""
CANCEL_UNBOUND = leasing(_TRANSITION_SET + _UNBOUND_CREATED + " RETURNING *")
EXPIRE_UNBOUND = leasing(_TRANSITION_SET + _UNBOUND_CREATED + " AND expires_at <= :now RETURNING *")

# One page, oldest update first; the next page starts after (:after_at, :after_ref) (keyset paging).
LIST_CHECKOUTS = leasing("""
SELECT * FROM checkouts
WHERE state = ANY(:states::text[])
  AND (lease_owner IS NULL OR lease_until <= :now)
  AND (NOT :bound_only::boolean OR checkout_session_id IS NOT NULL)
  AND (:after_ref::text IS NULL OR updated_at > :after_at::float8
       OR (updated_at = :after_at::float8 AND ref > :after_ref::text))
ORDER BY updated_at, ref
LIMIT :limit""")
# Unbound checkouts past their window (bound ones are Amazon's to settle: DUE_RESUMES), soonest first.
LIST_EXPIRED_UNBOUND = leasing("""
SELECT * FROM checkouts
WHERE state = 'created' AND checkout_session_id IS NULL AND expires_at <= :now
  AND (lease_owner IS NULL OR lease_until <= :now)
ORDER BY expires_at, ref
LIMIT :limit""")

# --- outbox ----------------------------------------------------------------------------------------

# records.event_values' order
EVENT_FIELDS = ("id", "ref", "type", "created", "body", "next_attempt_at", "request_id", "traceparent")
INSERT_EVENT = statement("""
INSERT INTO outbox (id, ref, type, created, body, status, attempts, next_attempt_at, request_id, traceparent)
VALUES (:id, :ref, :type, :created, :body, 'pending', 0, :next_attempt_at, :request_id::text, :traceparent::text)""")

_DUE_EVENTS = """
    SELECT e.seq FROM outbox e
    WHERE e.status = 'pending' AND e.next_attempt_at <= :now
      AND (e.lease_owner IS NULL OR e.lease_until <= :now)
      AND NOT EXISTS (
          SELECT 1 FROM outbox p WHERE p.ref = e.ref AND p.seq < e.seq AND p.status <> 'delivered')
    ORDER BY e.next_attempt_at, e.seq
    LIMIT :limit"""
# Due longest ago first: the order of the (status, next_attempt_at) index, so a claim reads `limit` due
# rows and stops; ordered by seq alone it would read and sort every due row, the whole backlog after an
# outage (20 ms a claim at 50,000, in the one thread every commit waits for).
# PostgreSQL locks the candidates and skips those another worker is claiming (never waits on it).
CLAIM_EVENTS = statement(
    f"UPDATE outbox SET lease_owner = :owner, lease_until = :until WHERE seq IN ({_DUE_EVENTS}) RETURNING *",  # noqa: S608
    postgres=f"""
WITH due AS ({_DUE_EVENTS}
    FOR UPDATE SKIP LOCKED)
UPDATE outbox o SET lease_owner = :owner, lease_until = :until
FROM due WHERE o.seq = due.seq
RETURNING o.*""",  # noqa: S608
)
EVENT_DELIVERED = statement("""
UPDATE outbox SET status = 'delivered', delivered_at = :now, attempts = attempts + 1,
    lease_owner = NULL, lease_until = NULL
WHERE id = :id AND status <> 'delivered'""")
EVENT_FAILED = statement("""
UPDATE outbox SET attempts = attempts + 1, last_error = :error, lease_owner = NULL, lease_until = NULL,
    status = CASE WHEN :next::float8 IS NULL THEN 'failed' ELSE 'pending' END,
    next_attempt_at = COALESCE(:next::float8, next_attempt_at)
WHERE id = :id AND status = 'pending' AND lease_owner = :owner""")
EVENT_EXISTS = statement("SELECT 1 FROM outbox WHERE id = :id")
GET_EVENT = statement("SELECT * FROM outbox WHERE id = :id")
LIST_EVENTS = statement(
    "SELECT * FROM outbox WHERE (NOT :failed_only::boolean OR status = 'failed') ORDER BY seq DESC LIMIT :limit"
)
REDELIVER = statement("""
UPDATE outbox SET status = 'pending', next_attempt_at = :now, attempts = 0,
    lease_owner = NULL, lease_until = NULL
WHERE status = 'failed' AND (:all::boolean OR id = ANY(:ids::text[]))""")
HAS_EVENT = statement("SELECT 1 FROM outbox WHERE ref = :ref AND type = :type LIMIT 1")

# --- ops: metrics gauges, graceful stop --------------------------------------------------------------

OUTBOX_STATS = statement("""
SELECT coalesce(sum(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0),
       min(CASE WHEN status = 'pending' THEN created END),
       coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0)
FROM outbox WHERE status IN ('pending', 'failed')""")
RELEASE_LEASES = tuple(
    statement(f"UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = :owner")  # noqa: S608
    for table in ("checkouts", "outbox")
)

# --- resume schedule -------------------------------------------------------------------------------

DUE_RESUMES = leasing("""
SELECT * FROM checkouts
WHERE state = 'created' AND checkout_session_id IS NOT NULL
  AND (lease_owner IS NULL OR lease_until <= :now)
  AND COALESCE(next_resume_at, updated_at + :resume_after::float8) <= :now
ORDER BY COALESCE(next_resume_at, updated_at + :resume_after::float8), ref
LIMIT :limit""")
CLAIM_RESUME = statement("""
UPDATE checkouts SET resume_attempts = :attempts::integer + 1, next_resume_at = :next
WHERE ref = :ref AND resume_attempts = :attempts::integer AND state = 'created'""")

# --- safety: rejected sessions, readiness ------------------------------------------------------------

SESSION_REJECTED = statement("""
SELECT 1 FROM rejected_sessions WHERE ref = :ref AND checkout_session_id = :session AND expires_at > :now""")
REJECT_SESSION = statement("""
INSERT INTO rejected_sessions (ref, checkout_session_id, rejected_at, expires_at)
VALUES (:ref, :session, :now, :until)
ON CONFLICT (ref, checkout_session_id) DO UPDATE SET rejected_at = excluded.rejected_at,
    expires_at = excluded.expires_at""")
DROP_EXPIRED_REJECTED = statement("DELETE FROM rejected_sessions WHERE expires_at <= :now")
TRIM_REJECTED = statement("""
DELETE FROM rejected_sessions WHERE ref = :ref AND checkout_session_id NOT IN (
    SELECT checkout_session_id FROM rejected_sessions WHERE ref = :ref
    ORDER BY rejected_at DESC, checkout_session_id LIMIT :keep)""")
HEARTBEAT = statement(
    "INSERT INTO heartbeat (id, at) VALUES (1, :now) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
)

# --- operator: retention (buyer details, delivered events), the demo's bound -----------------------------------

# A batch at a time (a backlog after an upgrade or an outage must not hold the write lock for long),
# each read through its partial index (migration 5): the WHERE repeats the index's condition. Every
# instance purges: on PostgreSQL each skips the rows another is purging (without SKIP LOCKED two
# purges deadlocked, the row locks taken in different orders).
PURGE_BUYER_DETAILS = statement("""
UPDATE checkouts SET result = NULL WHERE ref IN (
    SELECT ref FROM checkouts WHERE result IS NOT NULL AND updated_at < :before LIMIT :limit
    FOR UPDATE SKIP LOCKED)""")
PURGE_DELIVERED_EVENTS = statement("""
DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM outbox WHERE delivered_at < :before AND type <> 'checkout.canceled' LIMIT :limit
    FOR UPDATE SKIP LOCKED)""")

_OLDEST = "SELECT ref FROM checkouts ORDER BY created_at DESC, ref DESC OFFSET :keep"
# Rows that reference a dropped checkout go first (the foreign keys).
DROP_OLDEST = tuple(
    statement(f"DELETE FROM {table} WHERE ref IN ({_OLDEST})")  # noqa: S608
    for table in ("outbox", "rejected_sessions", "checkouts")
)

# --- schema ----------------------------------------------------------------------------------------

PING = statement("SELECT 1 FROM schema_migrations LIMIT 1")
SCHEMA_VERSIONS = statement("SELECT version FROM schema_migrations ORDER BY version")
RECORD_MIGRATION = statement("INSERT INTO schema_migrations (version, name) VALUES (:version, :name)")
APPLIED_MIGRATIONS = statement("SELECT version FROM schema_migrations")
