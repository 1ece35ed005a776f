"""The checkout domain: states, the checkout record, outcomes, the id rules and the domain's errors.

Pure: imports nothing of the service. The store persists these types; the web layer shows them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Where a checkout stands. `created` waits for the buyer's return; the others record what Amazon said."""

    CREATED = "created"
    PENDING = "pending"  # finalize answered 202: authorization pending at Amazon
    COMPLETED = "completed"  # finalize answered 200, session Completed
    AUTHORIZED = "authorized"  # a pending authorization became Authorized (or Captured)
    DECLINED = "declined"
    CANCELED = "canceled"  # the buyer canceled (cancel URL, or session Canceled/BuyerCanceled)
    EXPIRED = "expired"
    FAILED = "failed"  # Amazon refused the finalize for a reason the buyer cannot fix by retrying


STATES: tuple[State, ...] = tuple(State)
FINAL_STATES = frozenset(STATES) - {State.CREATED, State.PENDING}


class OutcomeError(StrEnum):
    """Why a finalize attempt ended without a new state."""

    UNKNOWN_SESSION = "unknown_session"  # Amazon has no such session, or it is another order's (unbound again)
    AMAZON_UNAVAILABLE = "amazon_unavailable"  # no answer we can act on; retry later


# --- id rules: what may be stored or sent to Amazon -------------------------------------------------

# The names under which a return URL carries the checkout session id: Amazon appends
# `amazonCheckoutSessionId`; its docs and some SDK samples say `CheckoutSessionId`.
SESSION_ID_PARAMS = ("amazonCheckoutSessionId", "CheckoutSessionId", "checkoutSessionId")
SESSION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,99}", re.ASCII)
REF_RE = re.compile(r"[A-Za-z0-9_-]{22,64}", re.ASCII)
PAYMENT_INTENTS = ("Confirm", "Authorize", "AuthorizeWithCapture")


def is_session_id(value: str) -> bool:
    """The whole string is a plausible Amazon checkout session id (ASCII; no trailing newline)."""
    return SESSION_ID_RE.fullmatch(value) is not None


def is_ref(value: str) -> bool:
    """The whole string is a ref as `register` makes them."""
    return REF_RE.fullmatch(value) is not None


# --- records -------------------------------------------------------------------------------------


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
    state: State = State.CREATED
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


@dataclass(frozen=True)
class NewCheckout:
    """What the merchant registers: the order the buyer is about to pay."""

    merchant_reference: str
    amount: str
    currency: str
    payment_intent: str
    can_handle_pending: bool
    total_order_amount: str | None = None
    supplementary_data: str | None = None

    def opened(self, ref: str, *, now: float, ttl_seconds: float) -> Checkout:
        """The checkout this order becomes under `ref`: created now, open for `ttl_seconds`."""
        return Checkout(
            ref=ref, merchant_reference=self.merchant_reference, amount=self.amount, currency=self.currency,
            payment_intent=self.payment_intent, can_handle_pending=self.can_handle_pending,
            total_order_amount=self.total_order_amount, supplementary_data=self.supplementary_data,
            created_at=now, updated_at=now, expires_at=now + ttl_seconds,
        )


@dataclass(frozen=True)
class Outcome:
    """The checkout after a finalize attempt; `error` is set when Amazon could not be reached."""

    checkout: Checkout
    error: OutcomeError | None = None


# --- errors --------------------------------------------------------------------------------------


class CheckoutError(Exception):
    """Base class of the domain's errors (raised by the service and by every store)."""


class UnknownRef(CheckoutError):
    pass


class NotFound(CheckoutError):
    pass


class DuplicateRef(CheckoutError):
    pass


class SessionConflict(CheckoutError):
    """The ref is bound to another checkout session, or the session to another ref."""


class SessionOfAnotherOrder(SessionConflict):
    """The session is bound to another ref; this ref is not bound (it can still be paid with its own)."""


class LeaseLost(CheckoutError):
    """The caller no longer holds the finalize lease (it expired and someone else took it)."""


class Busy(CheckoutError):
    """Another holder is still finalizing after the wait budget; the caller asks to refresh."""


class InvalidSessionId(CheckoutError):
    """The checkout session id is malformed; nothing was stored and Amazon was not called."""
