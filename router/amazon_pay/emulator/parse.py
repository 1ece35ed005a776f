"""Parsing what tests and the client send the emulator: session specs and finalize bodies (ApiError 400s)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from router.amazon_pay.emulator.auth import ApiError
from router.amazon_pay.emulator.model import JSON, Price, SessionSpec

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
_CURRENCY = re.compile(r"[A-Z]{3}")


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


def _result_url_field(data: Mapping[str, Any]) -> str | None:
    """webCheckoutDetails.checkoutResultReturnUrl, as the merchant's signed button payload gives it."""
    details = data.get("webCheckoutDetails") or {}
    url = details.get("checkoutResultReturnUrl") if isinstance(details, Mapping) else None
    if not isinstance(details, Mapping) or not isinstance(url, str | None):
        raise _bad("webCheckoutDetails.checkoutResultReturnUrl must be a string.")
    return url


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
    supplementary = data.get("supplementaryData")
    if supplementary is not None and not isinstance(supplementary, str):
        raise _bad("supplementaryData must be a string.")
    latency_first_n = data.get("latency_first_n")
    return SessionSpec(
        charge_amount=parse_price(data.get("chargeAmount"), "chargeAmount"),
        payment_intent=intent,
        scenario=scenario,
        total_order_amount=None if total is None else parse_price(total, "totalOrderAmount"),
        supplementary_data=supplementary,
        buyer=_buyer_field(data),
        result_return_url=_result_url_field(data),
        fail_first_n=_int_field(data, "fail_first_n", 0, 0, 1000),
        fail_status=_int_field(data, "fail_status", 503, 400, 599),
        retry_after=_optional_number(data, "retry_after"),
        latency_ms=_int_field(data, "latency_ms", 0, 0, 120_000),
        latency_first_n=None if latency_first_n is None else _int_field(data, "latency_first_n", 0, 0, 1000),
        pending_polls=_int_field(data, "pending_polls", 1, 0, 1000),
    )


def parse_finalize_body(body: bytes) -> JSON:
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


def match_session(spec: SessionSpec, request: JSON) -> None:
    """The finalize body must mirror the button parameters the session was created with."""
    if request["paymentIntent"] != spec.payment_intent:
        raise _bad("The value provided for paymentIntent does not match the Checkout Session.")
    _match_price(spec.charge_amount, parse_price(request.get("chargeAmount"), "chargeAmount"), "chargeAmount")
    if spec.total_order_amount is not None:
        given = parse_price(request.get("totalOrderAmount"), "totalOrderAmount")
        _match_price(spec.total_order_amount, given, "totalOrderAmount")
    # "You must also specify totalOrderAmount and supplementaryData if one was provided for the session."
    if spec.supplementary_data is not None and request.get("supplementaryData") != spec.supplementary_data:
        raise _bad("The value provided for supplementaryData does not match the Checkout Session.")
