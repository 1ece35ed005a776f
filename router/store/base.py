"""The Store protocol: what the checkout orchestrator and the webhook worker need from persistence.

Every method is one transaction. Times are Unix seconds (float) passed in by the caller, so the
backends hold no clock of their own and tests control time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# Checkout states. `created` waits for the buyer's return; the others record what Amazon said.
CREATED = "created"
PENDING = "pending"  # finalize answered 202: authorization pending at Amazon
COMPLETED = "completed"  # finalize answered 200, session Completed
AUTHORIZED = "authorized"  # a pending authorization became Authorized (or Captured)
DECLINED = "declined"
CANCELED = "canceled"  # the buyer canceled (cancel URL, or session Canceled/BuyerCanceled)
EXPIRED = "expired"
FAILED = "failed"  # Amazon refused the finalize for a reason the buyer cannot fix by retrying

STATES = (CREATED, PENDING, COMPLETED, AUTHORIZED, DECLINED, CANCELED, EXPIRED, FAILED)
FINAL_STATES = frozenset({COMPLETED, AUTHORIZED, DECLINED, CANCELED, EXPIRED, FAILED})

EventStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Checkout:
    """A checkout registered by the merchant, and what became of it."""

    ref: str
    merchant_reference: str
    amount: str  # decimal string in the currency's exact format ("14.00", "1000")
    currency: str
    payment_intent: str  # Confirm | Authorize | AuthorizeWithCapture
    can_handle_pending: bool
    created_at: float
    expires_at: float
    state: str = CREATED
    updated_at: float = 0.0
    total_order_amount: str | None = None
    supplementary_data: str | None = None
    checkout_session_id: str | None = None
    charge_id: str | None = None
    charge_permission_id: str | None = None
    reason_code: str | None = None
    # Buyer-facing summary of Amazon's answer (buyer name, masked email, descriptor, billing address).
    result: Mapping[str, Any] | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    version: int = 0


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


class StoreError(Exception):
    """Base class of store errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked for too long; the caller answers 503."""


class NotFound(StoreError):
    pass


class DuplicateRef(StoreError):
    pass


class SessionConflict(StoreError):
    """The ref is bound to another checkout session, or the session to another ref."""


class LeaseLost(StoreError):
    """The caller no longer holds the finalize lease (it expired and someone else took it)."""


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

    async def try_lease(self, ref: str, owner: str, now: float, ttl: float) -> Checkout | None:
        """Take the finalize lease atomically, or return None.

        Succeeds only when the checkout is in state `created` or `pending` and nobody holds an
        unexpired lease (lease_until > now). The returned checkout shows the new lease.
        """

    async def release_lease(self, ref: str, owner: str) -> None:
        """Drop the lease if `owner` still holds it (after a failure that leaves the state as is)."""

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
        """Set the state (and MUTABLE_FIELDS in `changes`), release the lease, append `events`.

        All in one transaction. With an `owner`, LeaseLost unless that owner still holds the lease;
        with owner None (merchant/cancel actions) the lease must be free or expired, else LeaseLost.
        NotFound for an unknown ref. `version` increases by one.
        """

    async def list_checkouts(
        self, states: Sequence[str], *, now: float, bound_only: bool = True, limit: int = 100
    ) -> list[Checkout]:
        """Checkouts in `states` whose lease is free or expired, oldest update first (reconciler)."""

    # --- outbox ----------------------------------------------------------------------------------

    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        """Lease up to `limit` due events for delivery by `owner`.

        Due: status pending, next_attempt_at <= now, not leased by another worker (or lease expired),
        and no earlier event (lower seq) of the same ref is still undelivered, so that events reach
        the merchant in order per checkout. Ordered by seq.
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
