"""The emulator's in-memory Amazon Pay: checkout sessions, charges, idempotency and injected faults.

No HTTP here: operations take parsed input and return (status, JSON body) or raise ApiError.
Choices where Amazon's docs are silent (documented for tests and integrators):
- amount or paymentIntent differing from the session -> 400 InvalidParameterValue; a different
  currency -> 400 CurrencyMismatch; amounts compare as decimals ("14" == "14.00").
- finalize of a Canceled session (declined, expired, buyer-canceled) -> 422 CheckoutSessionCanceled;
  the session's statusDetails.reasonCode says why. A Completed session -> 422 InvalidCheckoutSessionStatus.
- 202 leaves the session Completed and its charge AuthorizationInitiated for `pending_polls` getCharge
  answers; the next answer shows the final state (Authorized / Captured, or Declined).
- idempotency: responses below 500 are saved per (PublicKeyId, key); injected faults are never saved.
- time, as Amazon documents it (reference 7): a session still Open 24 h after its creation is Canceled
  (Expired) when next read or finalized; 30 days after its creation it is gone (404 ResourceNotFound).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from router.amazon_pay.emulator.auth import ApiError
from router.amazon_pay.emulator.documents import SESSION_LIFETIME, charge_json, fixture, session_json
from router.amazon_pay.emulator.model import JSON, Charge, Price, Session, SessionSpec
from router.amazon_pay.emulator.parse import (
    SCENARIOS,
    match_session,
    parse_finalize_body,
    parse_price,
    parse_session_spec,
)

__all__ = [
    "JSON", "SCENARIOS", "Charge", "EmulatorState", "Fault", "Price", "Session", "SessionSpec", "parse_price",
    "parse_session_spec",
]

FAULT_REASONS = {408: "RequestTimeout", 425: "TooEarly", 429: "TooManyRequests", 500: "InternalServerError"}
# Bounds for an emulator that runs for days (the public demo): the oldest sessions, with their
# charges, and the oldest saved idempotent answers are dropped first.
MAX_SESSIONS = 10_000
MAX_SAVED = 2 * MAX_SESSIONS
SESSION_RETENTION = timedelta(days=30)  # "permanently deletes Checkout Session objects … after 30 days"
EXPIRED = "The Checkout Session expired after 24 hours without being confirmed."


@dataclass(frozen=True)
class Saved:
    fingerprint: str
    status: int
    body: JSON


@dataclass(frozen=True)
class Fault:
    status: int
    reason_code: str
    retry_after: float | None


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


class EmulatorState:
    """All sessions, charges and saved idempotent responses of one emulator instance."""

    def __init__(self, clock: Callable[[], datetime], *, max_sessions: int = MAX_SESSIONS,
                 max_saved: int = MAX_SAVED) -> None:
        self._clock = clock
        self.max_sessions = max_sessions
        self.max_saved = max_saved
        self.sessions: dict[str, Session] = {}
        self.charges: dict[str, Charge] = {}
        self.saved: dict[tuple[str, str], Saved] = {}

    def reset(self) -> None:
        self.sessions.clear()
        self.charges.clear()
        self.saved.clear()

    # -- test API -------------------------------------------------------------------------------

    def create_session(self, spec: SessionSpec) -> Session:
        now = self._clock()
        buyer: JSON = {"buyerId": "amzn1.account.AH" + secrets.token_hex(12).upper(), **fixture("buyer")}
        buyer.update(spec.buyer)
        created = now - SESSION_LIFETIME if spec.scenario == "expired" else now
        session = Session(str(uuid.uuid4()), spec, buyer, "Open", created, now)
        if spec.scenario == "expired":
            self._cancel(session, "Expired", EXPIRED)
        elif spec.scenario == "buyer-canceled":
            self._cancel(session, "BuyerCanceled", "The buyer canceled the checkout.")
        self.sessions[session.session_id] = session
        self._drop_oldest()
        return session

    def _drop_oldest(self) -> None:
        """Keep at most max_sessions sessions and max_saved answers (dicts keep insertion order)."""
        while len(self.sessions) > self.max_sessions:
            old = self.sessions.pop(next(iter(self.sessions)))
            if old.charge_id is not None:
                self.charges.pop(old.charge_id, None)
        while len(self.saved) > self.max_saved:
            del self.saved[next(iter(self.saved))]

    # -- faults ---------------------------------------------------------------------------------

    def session_of(self, operation: str, object_id: str) -> Session | None:
        if operation == "getCharge":
            charge = self.charges.get(object_id)
            return self.sessions.get(charge.session_id) if charge else None
        return self.sessions.get(object_id)

    def next_call(self, session: Session) -> tuple[float, Fault | None]:
        """Count one Amazon-surface call on the session; return (latency seconds, fault or None)."""
        session.calls += 1
        spec = session.spec
        delayed = spec.latency_first_n is None or session.calls <= spec.latency_first_n
        latency = spec.latency_ms / 1000 if delayed else 0.0
        if session.calls > spec.fail_first_n:
            return latency, None
        reason = FAULT_REASONS.get(
            spec.fail_status, "ServiceUnavailable" if spec.fail_status >= 500 else "InvalidRequest"
        )
        return latency, Fault(spec.fail_status, reason, spec.retry_after)

    # -- idempotency ----------------------------------------------------------------------------

    def idempotent(
        self, merchant: str, key: str | None, fingerprint: str, run: Callable[[], tuple[int, JSON]]
    ) -> tuple[int, JSON]:
        """Replay the saved answer for (merchant, key) if the request is identical; else run and save."""
        if key is None:
            return run()
        saved = self.saved.get((merchant, key))
        if saved is not None:
            if saved.fingerprint != fingerprint:
                raise ApiError(
                    400,
                    "DuplicateIdempotencyKey",
                    "The idempotency key was already used for a request with different parameters.",
                )
            return saved.status, saved.body
        try:
            status, body = run()
        except ApiError as exc:
            status, body = exc.status, {"reasonCode": exc.reason_code, "message": exc.message}
        if status < 500:
            self.saved[(merchant, key)] = Saved(fingerprint, status, body)
            self._drop_oldest()
        return status, body

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> str:
        return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()

    # -- Amazon operations ----------------------------------------------------------------------

    def get_session(self, session_id: str, environment: str) -> tuple[int, JSON]:
        return 200, session_json(self._session(session_id), environment)

    def get_charge(self, charge_id: str, environment: str) -> tuple[int, JSON]:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise ApiError(404, "ResourceNotFound", f"Charge {charge_id} was not found.")
        if charge.state == "AuthorizationInitiated":
            if charge.polls_left > 0:
                charge.polls_left -= 1
            else:
                self._settle(charge)
        return 200, charge_json(charge, environment)

    def finalize(self, session_id: str, body: bytes, environment: str) -> tuple[int, JSON]:
        session = self._session(session_id)
        request = parse_finalize_body(body)
        if session.state == "Completed":
            raise ApiError(
                422,
                "InvalidCheckoutSessionStatus",
                "You tried to call an operation on a Checkout Session that is in a state where that "
                "operation is not allowed.",
            )
        if session.state == "Canceled":
            raise ApiError(
                422,
                "CheckoutSessionCanceled",
                f"Checkout was unsuccessful ({session.reason_code}). Check statusDetails.reasonCode.",
            )
        match_session(session.spec, request)
        return self._complete(session, request, environment)

    # -- internals ------------------------------------------------------------------------------

    def _session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is not None and not self._age(session):
            del self.sessions[session_id]
            session = None
        if session is None:
            raise ApiError(404, "ResourceNotFound", f"Checkout Session {session_id} was not found.")
        return session

    def _age(self, session: Session) -> bool:
        """Apply Amazon's clocks to `session`; False once it is past retention (deleted)."""
        age = self._clock() - session.created
        if age >= SESSION_RETENTION:
            return False
        if session.state == "Open" and age >= SESSION_LIFETIME:
            self._cancel(session, "Expired", EXPIRED)
        return True

    def _cancel(self, session: Session, reason: str, description: str) -> None:
        session.state, session.reason_code, session.reason_description = "Canceled", reason, description
        session.updated = self._clock()

    def _complete(self, session: Session, request: JSON, environment: str) -> tuple[int, JSON]:
        scenario, intent = session.spec.scenario, session.spec.payment_intent
        pending_ok = request.get("canHandlePendingAuthorization") is True
        session.can_handle_pending = pending_ok
        sync_decline = scenario == "pending-then-declined" and not pending_ok and intent != "Confirm"
        if scenario == "declined" or sync_decline:
            self._cancel(session, "Declined", "The buyer's payment was declined.")
            raise ApiError(
                422, "CheckoutSessionCanceled", "Checkout was unsuccessful because the payment was declined."
            )
        now = self._clock()
        session.state, session.updated = "Completed", now
        session.charge_permission_id = f"S01-{_digits(7)}-{_digits(7)}"
        if intent == "Confirm":
            return 200, session_json(session, environment)
        pending = scenario.startswith("pending-") and pending_ok
        settled = "Captured" if intent == "AuthorizeWithCapture" else "Authorized"
        final = "Declined" if scenario == "pending-then-declined" else settled
        charge = Charge(
            charge_id=f"{session.charge_permission_id}-C{_digits(6)}",
            charge_permission_id=session.charge_permission_id,
            session_id=session.session_id,
            amount=session.spec.charge_amount,
            state="AuthorizationInitiated" if pending else final,
            final_state=final,
            polls_left=session.spec.pending_polls,
            created=now,
            updated=now,
        )
        self.charges[charge.charge_id] = charge
        session.charge_id = charge.charge_id
        return (202 if pending else 200), session_json(session, environment)

    def _settle(self, charge: Charge) -> None:
        charge.state, charge.updated = charge.final_state, self._clock()
        if charge.state == "Declined":
            charge.reason_code = "HardDeclined"
