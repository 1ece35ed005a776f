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
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from router.amazon_pay.emulator.auth import ApiError
from router.amazon_pay.signing import format_date

SCENARIOS = (
    "completed",
    "pending-then-authorized",
    "pending-then-declined",
    "declined",
    "expired",
    "buyer-canceled",
)
INTENTS = ("Confirm", "Authorize", "AuthorizeWithCapture")
FINALIZE_FIELDS = frozenset(
    {
        "paymentIntent",
        "chargeAmount",
        "totalOrderAmount",
        "canHandlePendingAuthorization",
        "shippingAddress",
        "billingAddress",
        "supplementaryData",
    }
)
FAULT_REASONS = {408: "RequestTimeout", 425: "TooEarly", 429: "TooManyRequests", 500: "InternalServerError"}
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY_BY_CURRENCY = {"USD": "US", "EUR": "DE", "GBP": "GB", "JPY": "JP"}
SESSION_LIFETIME = timedelta(hours=24)
# Bounds for an emulator that runs for days (the public demo): the oldest sessions, with their
# charges, and the oldest saved idempotent answers are dropped first.
MAX_SESSIONS = 10_000
MAX_SAVED = 2 * MAX_SESSIONS
JSON = dict[str, Any]


@dataclass(frozen=True)
class Price:
    amount: Decimal
    text: str
    currency: str

    def to_json(self) -> JSON:
        return {"amount": self.text, "currencyCode": self.currency}


@dataclass(frozen=True)
class SessionSpec:
    """What a test asks for via POST /_emulator/checkout-sessions."""

    charge_amount: Price
    payment_intent: str
    scenario: str = "completed"
    total_order_amount: Price | None = None
    buyer: Mapping[str, str] = field(default_factory=dict)
    fail_first_n: int = 0
    fail_status: int = 503
    retry_after: float | None = None
    latency_ms: int = 0
    latency_first_n: int | None = None  # None: every call is delayed
    pending_polls: int = 1


@dataclass
class Charge:
    charge_id: str
    charge_permission_id: str
    session_id: str
    amount: Price
    state: str
    final_state: str
    polls_left: int
    created: datetime
    updated: datetime
    reason_code: str | None = None


@dataclass
class Session:
    session_id: str
    spec: SessionSpec
    buyer: JSON
    state: str
    created: datetime
    updated: datetime
    reason_code: str | None = None
    reason_description: str | None = None
    charge_id: str | None = None
    charge_permission_id: str | None = None
    can_handle_pending: bool = False
    calls: int = 0


@dataclass(frozen=True)
class Saved:
    fingerprint: str
    status: int
    body: JSON


def _bad(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterValue", message)


def parse_price(value: Any, name: str, *, missing_code: str = "MissingParameterValue") -> Price:
    """{amount: "14.00" | 14, currencyCode: "USD"} -> Price; ApiError 400 naming the field otherwise."""
    if value is None:
        raise ApiError(400, missing_code, f"The {name} parameter is required.")
    if not isinstance(value, Mapping):
        raise _bad(f"The value provided for {name} is invalid.")
    amount, currency = value.get("amount"), value.get("currencyCode")
    if isinstance(amount, bool) or not isinstance(amount, str | int | float):
        raise _bad(f"The value provided for {name}.amount is invalid.")
    try:
        parsed = Decimal(str(amount))
    except InvalidOperation:
        raise _bad(f"The value provided for {name}.amount is invalid.") from None
    if not parsed.is_finite() or parsed < 0:
        raise _bad(f"The value provided for {name}.amount is invalid.")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise _bad(f"The value provided for {name}.currencyCode is invalid.")
    return Price(parsed, str(amount), currency)


def _int_field(data: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{name} must be an integer between {low} and {high}.")
    return value


def _optional_number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise _bad(f"{name} must be a number of seconds between 0 and 3600.")
    return float(value)


def _buyer_field(data: Mapping[str, Any]) -> dict[str, str]:
    buyer = data.get("buyer") or {}
    allowed = {"buyerId", "name", "email", "phoneNumber"}
    if not isinstance(buyer, Mapping) or not set(buyer) <= allowed:
        raise _bad(f"buyer must be an object with some of {sorted(allowed)}.")
    if not all(isinstance(v, str) for v in buyer.values()):
        raise _bad("buyer fields must be strings.")
    return dict(buyer)


def parse_session_spec(data: Any) -> SessionSpec:
    if not isinstance(data, Mapping):
        raise ApiError(400, "InvalidRequestFormat", "The request body must be a JSON object.")
    intent = data.get("paymentIntent")
    if intent not in INTENTS:
        raise _bad(f"paymentIntent must be one of {', '.join(INTENTS)}.")
    scenario = data.get("scenario", "completed")
    if scenario not in SCENARIOS:
        raise _bad(f"scenario must be one of {', '.join(SCENARIOS)}.")
    total = data.get("totalOrderAmount")
    latency_first_n = data.get("latency_first_n")
    return SessionSpec(
        charge_amount=parse_price(data.get("chargeAmount"), "chargeAmount"),
        payment_intent=intent,
        scenario=scenario,
        total_order_amount=None if total is None else parse_price(total, "totalOrderAmount"),
        buyer=_buyer_field(data),
        fail_first_n=_int_field(data, "fail_first_n", 0, 0, 1000),
        fail_status=_int_field(data, "fail_status", 503, 400, 599),
        retry_after=_optional_number(data, "retry_after"),
        latency_ms=_int_field(data, "latency_ms", 0, 0, 120_000),
        latency_first_n=None if latency_first_n is None else _int_field(data, "latency_first_n", 0, 0, 1000),
        pending_polls=_int_field(data, "pending_polls", 1, 0, 1000),
    )


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def _status(state: str, reason: str | None, description: str | None, when: datetime) -> JSON:
    return {
        "state": state,
        "reasonCode": reason,
        "reasonDescription": description,
        "lastUpdatedTimestamp": format_date(when),
    }


@dataclass(frozen=True)
class Fault:
    status: int
    reason_code: str
    retry_after: float | None


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
        buyer: JSON = {
            "buyerId": "amzn1.account.AH" + secrets.token_hex(12).upper(),
            "name": "Test Buyer",
            "email": "buyer@example.com",
            "phoneNumber": "+1 206 555 0100",
            "primeMembershipTypes": None,
        }
        buyer.update(spec.buyer)
        created = now - SESSION_LIFETIME if spec.scenario == "expired" else now
        session = Session(str(uuid.uuid4()), spec, buyer, "Open", created, now)
        if spec.scenario == "expired":
            self._cancel(
                session, "Expired", "The Checkout Session expired after 24 hours without being confirmed."
            )
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
        return 200, self.session_json(self._session(session_id), environment)

    def get_charge(self, charge_id: str, environment: str) -> tuple[int, JSON]:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise ApiError(404, "ResourceNotFound", f"Charge {charge_id} was not found.")
        if charge.state == "AuthorizationInitiated":
            if charge.polls_left > 0:
                charge.polls_left -= 1
            else:
                self._settle(charge)
        return 200, self.charge_json(charge, environment)

    def finalize(self, session_id: str, body: bytes, environment: str) -> tuple[int, JSON]:
        session = self._session(session_id)
        request = _parse_finalize_body(body)
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
        _match_session(session.spec, request)
        return self._complete(session, request, environment)

    # -- internals ------------------------------------------------------------------------------

    def _session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise ApiError(404, "ResourceNotFound", f"Checkout Session {session_id} was not found.")
        return session

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
            return 200, self.session_json(session, environment)
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
        return (202 if pending else 200), self.session_json(session, environment)

    def _settle(self, charge: Charge) -> None:
        charge.state, charge.updated = charge.final_state, self._clock()
        if charge.state == "Declined":
            charge.reason_code = "HardDeclined"

    def session_json(self, session: Session, environment: str) -> JSON:
        spec = session.spec
        country = _COUNTRY_BY_CURRENCY.get(spec.charge_amount.currency, "US")
        return {
            "checkoutSessionId": session.session_id,
            "webCheckoutDetails": {
                "checkoutReviewReturnUrl": None,
                "checkoutResultReturnUrl": None,
                "checkoutCancelUrl": None,
                "amazonPayRedirectUrl": None,
            },
            "productType": "PayOnly",
            "paymentDetails": {
                "paymentIntent": spec.payment_intent,
                "canHandlePendingAuthorization": session.can_handle_pending,
                "chargeAmount": spec.charge_amount.to_json(),
                "totalOrderAmount": spec.total_order_amount.to_json() if spec.total_order_amount else None,
                "softDescriptor": None,
                "presentmentCurrency": spec.charge_amount.currency,
                "allowOvercharge": None,
                "extendExpiration": None,
            },
            "merchantMetadata": {
                "merchantReferenceId": None,
                "merchantStoreName": None,
                "noteToBuyer": None,
                "customInformation": None,
            },
            "supplementaryData": None,
            "buyer": dict(session.buyer),
            "billingAddress": _address(session.buyer["name"], country),
            "paymentPreferences": [{"paymentDescriptor": "Visa ****1111 (Amazon Pay)"}],
            "statusDetails": _status(
                session.state, session.reason_code, session.reason_description, session.updated
            ),
            "shippingAddress": None,
            "platformId": None,
            "chargePermissionId": session.charge_permission_id,
            "chargeId": session.charge_id,
            "constraints": [],
            "creationTimestamp": format_date(session.created),
            "expirationTimestamp": format_date(session.created + SESSION_LIFETIME),
            "storeId": None,
            "deliverySpecifications": None,
            "providerMetadata": {"merchantReference": None},
            "releaseEnvironment": environment,
            "checkoutButtonText": None,
            "chargePermissionType": "OneTime",
            "recurringMetadata": None,
            "paymentMethodOnFileMetadata": None,
        }

    @staticmethod
    def charge_json(charge: Charge, environment: str) -> JSON:
        captured = charge.state == "Captured"
        return {
            "chargeId": charge.charge_id,
            "chargePermissionId": charge.charge_permission_id,
            "chargeAmount": charge.amount.to_json(),
            "captureAmount": charge.amount.to_json() if captured else None,
            "refundedAmount": {"amount": "0.00", "currencyCode": charge.amount.currency}
            if captured
            else None,
            "softDescriptor": None,
            "providerMetadata": {"providerReferenceId": None},
            "convertedAmount": None,
            "conversionRate": None,
            "channel": None,
            "chargeInitiator": None,
            "statusDetails": _status(charge.state, charge.reason_code, None, charge.updated),
            "creationTimestamp": format_date(charge.created),
            "expirationTimestamp": format_date(charge.created + timedelta(days=30)),
            "releaseEnvironment": environment,
            "merchantMetadata": None,
            "platformId": None,
            "webCheckoutDetails": None,
        }


def _address(name: str, country: str) -> JSON:
    samples = {
        "US": ("410 Terry Ave N", "Seattle", "WA", "98109"),
        "DE": ("Marcel-Breuer-Str. 12", "München", None, "80807"),
        "GB": ("1 Principal Place", "London", None, "EC2A 2FA"),
        "JP": ("目黒区下目黒1-8-1", "東京都", None, "153-0064"),
    }
    line1, city, region, postcode = samples[country]
    return {
        "name": name,
        "addressLine1": line1,
        "addressLine2": None,
        "addressLine3": None,
        "city": city,
        "county": None,
        "district": None,
        "stateOrRegion": region,
        "postalCode": postcode,
        "countryCode": country,
        "phoneNumber": "+1 206 555 0100" if country == "US" else None,
    }


def _parse_finalize_body(body: bytes) -> JSON:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidRequestFormat", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "InvalidRequestFormat", "The request body must be a JSON object.")
    unknown = sorted(set(data) - FINALIZE_FIELDS)
    if unknown:
        raise ApiError(400, "UnrecognizedField", f"The field {unknown[0]} is not recognized.")
    if "paymentIntent" not in data:
        raise ApiError(400, "MissingParameterValue", "The paymentIntent parameter is required.")
    if data["paymentIntent"] not in INTENTS:
        raise _bad(f"The value {data['paymentIntent']} provided for paymentIntent is invalid.")
    pending = data.get("canHandlePendingAuthorization")
    if pending is not None and not isinstance(pending, bool):
        raise _bad("The value provided for canHandlePendingAuthorization is invalid; use true or false.")
    return data


def _match_price(expected: Price, given: Price, name: str) -> None:
    if given.currency != expected.currency:
        raise ApiError(
            400, "CurrencyMismatch", f"The currencyCode of {name} does not match the Checkout Session."
        )
    if given.amount != expected.amount:
        raise _bad(f"The value provided for {name} does not match the Checkout Session.")


def _match_session(spec: SessionSpec, request: JSON) -> None:
    """The finalize body must mirror the button parameters the session was created with."""
    if request["paymentIntent"] != spec.payment_intent:
        raise _bad("The value provided for paymentIntent does not match the Checkout Session.")
    _match_price(spec.charge_amount, parse_price(request.get("chargeAmount"), "chargeAmount"), "chargeAmount")
    if spec.total_order_amount is not None:
        given = parse_price(request.get("totalOrderAmount"), "totalOrderAmount")
        _match_price(spec.total_order_amount, given, "totalOrderAmount")
