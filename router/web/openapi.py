"""The OpenAPI 3.1 description of the /v1 endpoints and the webhooks, served at /v1/openapi.json.

Enums and patterns come from the code's own constants, so the document cannot drift from what the
service accepts. Python's patterns are written for `fullmatch`; JSON Schema's `pattern` is a search
(ECMA-262, where `$` is the end of the input), so each is anchored here as `^(?:…)$`.
"""

from __future__ import annotations

import re
from typing import Any

from router.checkout.event_schema import EVENT_SCHEMAS, WEBHOOKS
from router.checkout.model import PAYMENT_INTENTS, REF_RE, SESSION_ID_RE, STATES
from router.checkout.money import DECIMALS


def anchored(pattern: re.Pattern[str]) -> str:
    """A fullmatch pattern as a JSON Schema pattern that means the same."""
    return f"^(?:{pattern.pattern})$"


_REF = {"type": "string", "pattern": anchored(REF_RE)}
_SESSION_ID = {"type": "string", "pattern": anchored(SESSION_ID_RE)}
_DIGITS = 12  # money.AMOUNT_RE: at most 12 digits before the point and 12 after (test_openapi_money holds it)


def _any_case(code: str) -> str:
    """A currency code in any ASCII letter case, as normalize_amount takes it: "usd", "Usd", "USD"."""
    return "".join(f"[{c}{c.lower()}]" for c in code)


def _sent_amount(places: int) -> str:
    """An amount string normalize_amount takes for a currency of `places` decimals: AMOUNT_RE, with no
    digit other than 0 past the `places`-th decimal ("14.000" and "014.00" pass, "14.001" does not)."""
    fraction = f"0{{1,{_DIGITS}}}" if places == 0 else f"[0-9]{{1,{places}}}0{{0,{_DIGITS - places}}}"
    return f"^(?:[0-9]{{1,{_DIGITS}}}(?:\\.{fraction})?)$"


# Zero in any spelling ("0", "000", "0.00"): normalize_amount refuses it (greater than 0).
_ZERO = {"pattern": f"^(?:0{{1,{_DIGITS}}}(?:\\.0{{1,{_DIGITS}}})?)$"}


def _stored_amount(*places: int) -> str:
    """An amount as the API answers it for a currency of any of `places` decimals: normalized, no leading
    zero, exactly that many decimals."""
    forms = (f"[1-9][0-9]{{0,{_DIGITS - 1}}}" if p == 0 else f"(?:0|[1-9][0-9]{{0,{_DIGITS - 1}}})\\.[0-9]{{{p}}}"
             for p in places)
    return "^(?:" + "|".join(forms) + ")$"


_PLACES = sorted(set(DECIMALS.values()))
_AMOUNT_RULES = (
    "A decimal string of ASCII digits (at most 12 before the point and 12 after it; no sign, exponent, "
    "space or separator) or a JSON number, greater than 0 and at most Amazon Pay's per-charge limit "
    "(JPY 10,000,000; DKK, HKD, NOK, SEK, ZAR 1,500,000; the others 150,000). The value must be exact in "
    "the currency: JPY whole units, the others at most 2 decimal places; zeros past them and leading "
    "zeros are fine (\"14.000\", \"014.00\" and 14.0 are 14.00 USD; \"14.001\" is refused, not rounded). "
    "A JSON number is read as a double and taken as its shortest decimal form (14.1 is \"14.10\"; a "
    "computed 0.30000000000000004 is refused): send strings to be sure of the digits. Answered as a "
    "string with exactly the currency's decimals. Else 400 invalid_amount."
)
_MONEY_INPUT = {  # what POST /v1/checkouts takes (router/checkout/money.py normalize_amount)
    "type": "object",
    "required": ["amount", "currencyCode"],
    "additionalProperties": False,
    "properties": {
        "amount": {"anyOf": [{"type": "string", "pattern": _sent_amount(max(_PLACES)), "not": _ZERO},
                             {"type": "number", "exclusiveMinimum": 0}],
                   "example": "14.00", "description": _AMOUNT_RULES},
        "currencyCode": {"type": "string", "pattern": "^(?:" + "|".join(_any_case(c) for c in sorted(DECIMALS)) + ")$",
                         "example": "USD",
                         "description": "One of " + ", ".join(sorted(DECIMALS)) + ", in any ASCII letter case "
                                        "(answered in capitals); another code (\"XXX\", \"CAD\") is 400 "
                                        "invalid_amount. Of these, one the merchant's Amazon Pay region charges "
                                        "in: na USD, jp JPY, eu/uk any of them (the ledger currency, or another "
                                        "with multi-currency); else 400 currency_not_supported."},
    },
    # The decimals depend on the currency: one rule per number of places (JPY 0, the others 2).
    "allOf": [{
        "if": {"required": ["currencyCode"], "properties": {"currencyCode": {
            "type": "string",
            "pattern": "^(?:" + "|".join(_any_case(c) for c, p in sorted(DECIMALS.items()) if p == places) + ")$"}}},
        "then": {"properties": {"amount": {"anyOf": [
            {"type": "string", "pattern": _sent_amount(places), "not": _ZERO},
            {"type": "integer" if places == 0 else "number"}]}}},
    } for places in _PLACES],
}
_MONEY = {  # what the API answers: normalized by normalize_amount
    "type": "object",
    "required": ["amount", "currencyCode"],
    "additionalProperties": False,
    "properties": {
        "amount": {"type": "string", "pattern": _stored_amount(*_PLACES), "example": "14.00",
                   "description": "The amount with exactly the currency's decimals: JPY none (\"1000\"), "
                                  "the others 2 (\"14.00\")."},
        "currencyCode": {"type": "string", "enum": sorted(DECIMALS), "example": "USD"},
    },
    "allOf": [{
        "if": {"required": ["currencyCode"], "properties": {"currencyCode": {
            "enum": sorted(c for c, p in DECIMALS.items() if p == places)}}},
        "then": {"properties": {"amount": {"pattern": _stored_amount(places)}}},
    } for places in _PLACES],
}
_ERROR = {
    "type": "object",
    "description": "Every error answer: the error only, never the checkout (whoever sends a ref with a made-up "
                   "session id learns nothing about the order). Amazon's reason code for a decline or a refusal "
                   "is in the merchant API's checkout (GET /v1/checkouts/{ref}) and the webhook.",
    "required": ["error"],
    "properties": {
        "error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    },
}
_APP_CHECKOUT_PROPERTIES: dict[str, Any] = {  # api.checkout_json(merchant=False)
    "ref": _REF,
    "merchantReference": {"type": "string"},
    "state": {"type": "string", "enum": [state.value for state in STATES]},
    "chargeAmount": {"$ref": "#/components/schemas/Money"},
    "checkoutSessionId": {"type": ["string", "null"]},
    "chargeId": {"type": ["string", "null"]},
    "chargePermissionId": {"type": ["string", "null"]},
    "reasonCode": {"type": ["string", "null"], "description": "Amazon Pay's reason code, if it gave one"},
    "buyer": {"type": ["object", "null"], "properties": {
        "buyerName": {"type": ["string", "null"]}, "maskedEmail": {"type": ["string", "null"]},
        "paymentDescriptor": {"type": ["string", "null"]}, "billingAddress": {"type": ["object", "null"]}}},
    "expiresAt": {"type": "string", "format": "date-time"},
}
_APP_CHECKOUT = {
    "type": "object",
    "description": "The checkout as the app API (finalize, session read) answers it: no token needed, so "
                   "without the merchant's own fields.",
    "required": sorted(_APP_CHECKOUT_PROPERTIES),
    "properties": _APP_CHECKOUT_PROPERTIES,
}
_CHECKOUT_PROPERTIES: dict[str, Any] = {  # api.checkout_json(merchant=True)
    **_APP_CHECKOUT_PROPERTIES,
    "paymentIntent": {"type": "string", "enum": list(PAYMENT_INTENTS)},
    "canHandlePendingAuthorization": {"type": "boolean"},
    "totalOrderAmount": {"anyOf": [{"$ref": "#/components/schemas/Money"}, {"type": "null"}],
                         "description": "null when the checkout was registered without one"},
    "createdAt": {"type": "string", "format": "date-time"},
    "updatedAt": {"type": "string", "format": "date-time"},
}
_CHECKOUT = {
    "type": "object",
    "description": "The full record, as the merchant API (bearer token) answers it.",
    "required": sorted(_CHECKOUT_PROPERTIES),
    "properties": _CHECKOUT_PROPERTIES,
}


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json("Error")}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "return-router", "version": "1",
             "description": "Register Amazon Pay checkouts (merchant backend) and finalize them (app)."},
    "components": {
        "securitySchemes": {"merchantToken": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Money": _MONEY, "MoneyInput": _MONEY_INPUT, "Error": _ERROR, "Checkout": _CHECKOUT,
                    "AppCheckout": _APP_CHECKOUT, **EVENT_SCHEMAS},
    },
    "paths": {
        "/v1/checkouts": {"post": {
            "summary": "Register a checkout; returns the ref and the three return URLs for the button.",
            "security": [{"merchantToken": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["merchantReference", "chargeAmount", "paymentIntent"],
                "additionalProperties": False,
                "properties": {
                    "merchantReference": {"type": "string", "minLength": 1, "maxLength": 128},
                    "chargeAmount": {"$ref": "#/components/schemas/MoneyInput"},
                    "paymentIntent": {"type": "string", "enum": list(PAYMENT_INTENTS)},
                    "canHandlePendingAuthorization": {"type": "boolean", "default": False},
                    "totalOrderAmount": {"anyOf": [{"$ref": "#/components/schemas/MoneyInput"}, {"type": "null"}],
                                         "description": "In the chargeAmount's currency, else 400 "
                                                        "currency_mismatch; null is the same as leaving it out."},
                    "supplementaryData": {"type": ["string", "null"], "maxLength": 2048},
                }}}}},
            "responses": {
                "201": {"description": "Registered", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "ref": _REF, "expiresAt": {"type": "string", "format": "date-time"},
                        "returnUrls": {"type": "object", "properties": {
                            "checkoutResultReturnUrl": {"type": "string"}, "checkoutCancelUrl": {"type": "string"},
                            "checkoutErrorUrl": {"type": "string"}}},
                        "button": {"type": "object", "properties": {
                            "payloadJSON": {"type": "string"}, "signature": {"type": "string"},
                            "publicKeyId": {"type": "string"}, "algorithm": {"type": "string"}}},
                        "checkout": {"$ref": "#/components/schemas/Checkout"}}}}}},
                "400": _error("Invalid body"), "401": _error("Missing or wrong token"),
                "413": _error("Body too large"), "415": _error("Not JSON"), "503": _error("Briefly unavailable"),
            },
        }},
        "/v1/checkouts/{ref}": {"get": {
            "summary": "Read a checkout and its result.",
            "security": [{"merchantToken": []}],
            "parameters": [{"name": "ref", "in": "path", "required": True, "schema": _REF}],
            "responses": {"200": {"description": "The checkout", **_json("Checkout")},
                          "401": _error("Missing or wrong token"),
                          "404": _error("unknown_ref: no checkout with this ref"),
                          "503": _error("Briefly unavailable")},
        }},
        "/v1/checkout-sessions/{checkoutSessionId}/finalize": {"post": {
            "summary": "Finalize the checkout session once (the app calls this after the return URL opened it).",
            "parameters": [{"name": "checkoutSessionId", "in": "path", "required": True, "schema": _SESSION_ID}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["ref"], "properties": {"ref": {"type": "string"}}}}}},
            "responses": {
                "200": {"description": "Completed", **_json("AppCheckout")},
                "202": {"description": "Authorization pending; poll the GET endpoint", **_json("AppCheckout")},
                "400": _error("Malformed id or body"), "402": _error("Declined"),
                "404": _error("unknown_ref: no checkout with this ref; unknown_session: Amazon Pay does not know "
                              "this checkout session, or it is another order's"),
                "409": _error("checkout_canceled: canceled; session_conflict: the order was settled with another "
                              "session, or the session belongs to another order"), "410": _error("Expired"),
                "413": _error("Body too large"), "415": _error("Not JSON"),
                "422": _error("Amazon Pay refused the finalize"), "503": _error("Amazon Pay unreachable or busy"),
            },
        }},
        "/v1/checkout-sessions/{checkoutSessionId}": {"get": {
            "summary": "Read the current state (poll while pending).",
            "parameters": [
                {"name": "checkoutSessionId", "in": "path", "required": True, "schema": _SESSION_ID},
                {"name": "ref", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Paid: completed or authorized", **_json("AppCheckout")},
                          "202": {"description": "Pending", **_json("AppCheckout")},
                          "400": _error("invalid_session_id: malformed checkout session id; repeated_ref: ref "
                                        "sent more than once"), "402": _error("Declined"),
                          "404": _error("unknown_checkout: no checkout with this ref (missing or wrong) bound "
                                        "to this checkout session"),
                          "409": _error("Canceled"),
                          "410": _error("Expired"), "422": _error("Failed"),
                          "503": _error("in_progress: finalized but Amazon Pay's answer not stored yet (it is "
                                        "being resumed: poll again after Retry-After); or briefly unavailable")},
        }},
    },
    "webhooks": WEBHOOKS,
}
