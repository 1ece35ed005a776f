"""The Store protocol: what the checkout service and the webhook worker need from persistence.

It persists the domain's types (router.checkout.model) and raises the domain's errors
(NotFound, DuplicateRef, SessionConflict, LeaseLost); StoreUnavailable is its own.

Every method is one transaction. Times are Unix seconds (float) passed in by the caller, so the
backends hold no clock of their own and tests control time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from router.checkout.model import Checkout, State

T = TypeVar("T")
EventStatus = Literal["pending", "delivered", "failed"]


# Columns a transition may change (besides `state`, which is always set).
MUTABLE_FIELDS = frozenset(
    {"checkout_session_id", "charge_id", "charge_permission_id", "reason_code", "result", "expires_at"}
)


@dataclass(frozen=True)
class NewEvent:
    """An event to write to the outbox in the same transaction as the state change it reports."""

    id: str
    type: str  # checkout.completed, checkout.pending, ...
    created: float
    body: bytes  # the exact JSON bytes that will be delivered and signed
    # What caused it, sent with every delivery by whichever process makes it: the request's id (the
    # Return-Router-Request-Id header) and its W3C traceparent when tracing is on. None for background work.
    request_id: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class OutboxEvent:
    id: str
    ref: str
    type: str
    created: float
    body: bytes
    seq: int
    status: EventStatus = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    delivered_at: float | None = None
    request_id: str | None = None  # as NewEvent
    traceparent: str | None = None


@dataclass(frozen=True)
class Binding:
    """What bind_and_lease did: the checkout as it now is, whether the session was bound just now,
    whether the caller now holds the lease, or (`rejected`) nothing, Amazon having refused the pair."""

    checkout: Checkout
    newly_bound: bool = False
    leased: bool = False
    rejected: bool = False


# --- ops (branch ops): metrics gauges and releasing leases on a graceful stop --------------------


@dataclass(frozen=True)
class OutboxStats:
    pending: int  # events waiting for delivery (not parked)
    oldest_pending_created: float | None  # `created` of the oldest of them; None when there are none
    parked: int = 0  # events given up on: each holds back the later events of its checkout

@dataclass(frozen=True)
class DueResume:
    """A bound, unfinished checkout whose resume is due, with how many resumes it has had."""

    checkout: Checkout
    attempts: int

REJECTED_PER_REF = 50  # sessions remembered as unknown per checkout (older ones are forgotten first)
PURGE_BATCH = 500  # rows a purge changes per call: one reconciler pass (2 s) purges 250 a second


class StoreError(Exception):
    """Base class of store errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked for too long; the caller answers 503."""


class MigrationLocked(StoreUnavailable):
    """Reachable, but another instance held the schema migration lock for too long (at start only)."""


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending schema migrations (safe when several instances start at once)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless a trivial query succeeds."""

    # --- checkouts -------------------------------------------------------------------------------

    async def create_checkout(self, checkout: Checkout) -> None:
        """Insert a new checkout; DuplicateRef if the ref exists."""

    async def get_checkout(self, ref: str) -> Checkout | None: ...

    async def bind_session(self, ref: str, checkout_session_id: str, now: float) -> Checkout:
        """Bind the session id to the ref once. Binding the same pair again is a no-op.

        NotFound for an unknown ref; SessionConflict if the ref is bound to a different session or
        the session is bound to a different ref.
        """

    async def bind_and_lease(self, ref: str, checkout_session_id: str, owner: str | None, now: float,
                             ttl: float, *, reclaim: bool = False) -> Binding:
        """A buyer's return in one transaction: bind as bind_session (same errors), then, with an `owner`
        and the checkout still `created`, try_lease. An unbound `canceled` checkout (the cancel URL's) is
        reopened to `created` in the same transaction: the buyer returned from Amazon after all. An
        unbound ref whose pair Amazon rejected (session_rejected) is left as it is: `rejected`. `reclaim` as
        in try_lease."""

    async def try_lease(self, ref: str, owner: str, now: float, ttl: float, *, reclaim: bool = False
                        ) -> Checkout | None:
        """Take the finalize lease atomically, or return None.

        Succeeds only when the checkout is in state `created` or `pending` and nobody holds an
        unexpired lease (lease_until > now; on PostgreSQL the lease runs on the database server's clock,
        not `now`). The returned checkout shows the new lease. Not re-entrant, but with `reclaim` `owner`
        takes its own unexpired lease of a `created` checkout back: one a write whose outcome it never
        heard (the connection lost during COMMIT) may have left, when it knows it holds none itself.
        """

    async def release_lease(self, ref: str, owner: str) -> None:
        """Drop the lease if `owner` still holds it (after a failure that leaves the state as is)."""

    async def transition(
        self,
        ref: str,
        *,
        owner: str | None,
        now: float,
        state: State,
        changes: Mapping[str, Any] | None = None,
        events: Sequence[NewEvent] = (),
        instead_after: tuple[str, Callable[[], Sequence[NewEvent]]] | None = None,
    ) -> Checkout:
        """Set the state (and MUTABLE_FIELDS in `changes`), release the lease, append `events`; with
        `instead_after` = (type, make), append `make()` instead when the checkout has an event of `type`.

        All in one transaction. With an `owner`, LeaseLost unless that owner still holds the lease;
        with owner None (merchant/cancel actions) the lease must be free or expired, else LeaseLost.
        NotFound for an unknown ref. `version` increases by one.
        """

    async def list_checkouts(
        self, states: Sequence[State], *, now: float, bound_only: bool = True, limit: int = 100,
        after: Checkout | None = None,
    ) -> list[Checkout]:
        """Checkouts in `states` whose lease is free or expired, oldest update first (reconciler); `after`:
        the last checkout of the previous page, so the next page starts past it."""

    async def list_expired_unbound(self, *, now: float, limit: int = 100) -> list[Checkout]:
        """Unbound checkouts in state created, past their window, lease free or expired; soonest first."""

    # --- outbox ----------------------------------------------------------------------------------

    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        """Lease up to `limit` due events for delivery by `owner`.

        Due: status pending, next_attempt_at <= now, not leased by another worker (or lease expired),
        and no earlier event (lower seq) of the same ref is still undelivered, so that events reach
        the merchant in order per checkout. The ones due longest ago are taken first (then by seq);
        the list is ordered by seq.
        """

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None: ...

    async def event_failed(
        self, event_id: str, owner: str, now: float, error: str, next_attempt_at: float | None
    ) -> None:
        """Record a failed attempt: retry at next_attempt_at, or park it (status failed) when None."""

    async def list_events(self, *, failed_only: bool = False, limit: int = 100) -> list[OutboxEvent]: ...

    async def get_event(self, event_id: str) -> OutboxEvent | None: ...

    async def redeliver(self, event_ids: Sequence[str] | None, now: float) -> int:
        """Put parked events back in the queue (None: every parked event); returns how many."""

    # --- ops (branch ops) ------------------------------------------------------------------------

    async def outbox_stats(self) -> OutboxStats:
        """How many events are pending and how old the oldest is (the metrics listener, per scrape)."""

    async def release_leases(self, owner: str) -> int:
        """Drop every checkout and outbox lease `owner` holds (a graceful stop); returns how many."""

    # --- resume schedule (reconciler backoff, branch quotas) -----------------------------------------

    async def list_due_resumes(self, *, now: float, resume_after: float, limit: int = 100) -> list[DueResume]:
        """Bound checkouts in state created, lease free or expired, whose resume is due: at
        next_resume_at once scheduled, else resume_after seconds after the last update (past the
        window too: Amazon settles those, on the same backoff)."""

    async def claim_resume(self, ref: str, attempts: int, next_resume_at: float) -> bool:
        """Count one resume and schedule the next, only if nobody counted one since we read `attempts`
        (so instances sharing the store resume a checkout once per slot). True when claimed."""

    # --- safety: probes, cancel, supersedes, readiness -------------------------------------------

    async def session_rejected(self, ref: str, checkout_session_id: str, now: float) -> bool:
        """Amazon answered "no such session" for this pair and the memory of it has not expired."""

    async def reject_session(self, ref: str, checkout_session_id: str, until: float, now: float) -> None:
        """Remember the pair until `until`; drop expired pairs and keep at most REJECTED_PER_REF per ref."""

    async def cancel_unbound(
        self, ref: str, now: float, changes: Mapping[str, Any], events: Sequence[NewEvent]
    ) -> Checkout | None:
        """Set state `canceled` (and `changes`, `events`) only if the checkout is `created`, bound to no
        session and not leased, in one transaction; None (nothing changed) otherwise."""

    async def expire_unbound(
        self, ref: str, now: float, changes: Mapping[str, Any], events: Sequence[NewEvent]
    ) -> Checkout | None:
        """Set state `expired` (and `changes`, `events`) only if the checkout is `created`, bound to no
        session, not leased and past its window at `now`, in one transaction; None otherwise."""

    async def cancel_or_get(
        self, ref: str, now: float, changes: Mapping[str, Any], events_for: Callable[[Checkout], Sequence[NewEvent]]
    ) -> tuple[Checkout | None, bool]:
        """cancel_unbound, its events made by `events_for(the canceled checkout)`, and otherwise a read of
        the checkout, in one transaction: (the checkout as it now is or None if unknown, canceled?)."""

    async def has_event(self, ref: str, event_type: str) -> bool:
        """Whether the outbox holds an event of `event_type` for the checkout (reliable for
        checkout.canceled, which no purge deletes; other delivered events leave after their retention)."""

    async def check_writable(self, now: float, timeout: float = 2.0) -> None:
        """Write the heartbeat row within `timeout` seconds, else raise StoreUnavailable."""

    # --- operator: retention (buyer details, delivered events) ----------------------------------------

    async def purge_buyer_details(self, before: float, limit: int = PURGE_BATCH) -> int:
        """Drop the buyer summary (`result`: name, masked email, address) of up to `limit` checkouts last
        updated before `before`; the checkout, its state and ids stay. Returns how many were purged."""

    async def purge_delivered_events(self, before: float, limit: int = PURGE_BATCH) -> int:
        """Delete up to `limit` events delivered before `before`, but never a checkout.canceled one (see
        has_event); pending and parked events stay until delivered. Returns how many were deleted."""

    async def drop_oldest_checkouts(self, keep: int) -> int:
        """Delete all but the `keep` newest checkouts (and their outbox events): the demo's bound.
        Returns how many checkouts were deleted."""


# --- safety: a bounded wait for readiness checks ------------------------------------------------------


async def within(awaitable: Awaitable[T], timeout: float, what: str) -> T:
    """`awaitable`'s result, or StoreUnavailable after `timeout` s without waiting for it to unwind
    (a connection stuck on an unreachable server may take far longer to give up than a probe may)."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(abandoned)
        raise StoreUnavailable(f"{what} within {timeout:g} s")
    return task.result()


def abandoned(task: asyncio.Future[Any]) -> None:
    """A done callback for a task cancelled and no longer awaited: its late failure is retrieved, not
    logged by asyncio as never retrieved (not worth a warning or a traceback)."""
    if not task.cancelled():
        task.exception()
