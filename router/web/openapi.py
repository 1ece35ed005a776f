"""The OpenAPI 3.1 description of the /v1 endpoints and the webhooks, served at /v1/openapi.json."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from .events import EVENT_TYPES, event_for
from .store.base import CANCELED, DECLINED, EXPIRED, FAILED, Checkout
from .webhooks import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER

_MONEY = {
    "type": "object",
    "required": ["amount", "currencyCode"],
    "properties": {
        "amount": {"type": "string", "example": "14.00"},
        "currencyCode": {"type": "string", "example": "USD"},
    },
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "checkout": {"$ref": "#/components/schemas/Checkout"},
    },
}
_CHECKOUT = {
    "type": "object",
    "properties": {
        "ref": {"type": "string"},
        "merchantReference": {"type": "string"},
        "state": {"type": "string", "enum": ["created", "pending", "completed", "authorized", "declined",
                                             "canceled", "expired", "failed"]},
        "chargeAmount": {"$ref": "#/components/schemas/Money"},
        "checkoutSessionId": {"type": ["string", "null"]},
        "chargeId": {"type": ["string", "null"]},
        "chargePermissionId": {"type": ["string", "null"]},
        "reasonCode": {"type": ["string", "null"]},
        "buyer": {"type": ["object", "null"], "properties": {
            "buyerName": {"type": ["string", "null"]}, "maskedEmail": {"type": ["string", "null"]},
            "paymentDescriptor": {"type": ["string", "null"]}, "billingAddress": {"type": ["object", "null"]}}},
        "expiresAt": {"type": "string", "format": "date-time"},
    },
}


# --- webhooks: one entry per event type, the body's schema written out, the example a real body ---

# Events a payment may send after a `checkout.canceled` for the same ref; they then say so.
SUPERSEDING = ("checkout.completed", "checkout.pending", "checkout.authorized")
_EVENT_DATA = {
    "type": "object",
    "required": ["ref", "merchantReference", "checkoutSessionId", "chargeId", "chargePermissionId", "state",
                 "reasonCode", "amount"],
    "additionalProperties": False,
    "properties": {
        "ref": {"type": "string", "description": "return-router's id of the checkout (from POST /v1/checkouts)"},
        "merchantReference": {"type": "string", "maxLength": 128},
        "checkoutSessionId": {"type": ["string", "null"]},
        "chargeId": {"type": ["string", "null"]},
        "chargePermissionId": {"type": ["string", "null"]},
        "state": {"type": "string", "enum": list(EVENT_TYPES)},
        "reasonCode": {"type": ["string", "null"], "description": "Amazon Pay's reason, e.g. HardDeclined"},
        "amount": {"$ref": "#/components/schemas/Money"},
    },
}
_SAMPLE = Checkout(ref="Xq3v9bT0mQpLw4sN1aZk7Hc2dE5fG8hJ", merchant_reference="order-1042", amount="14.00",
                   currency="USD", payment_intent="AuthorizeWithCapture", can_handle_pending=True,
                   created_at=1_767_225_600.0, expires_at=1_767_312_000.0,
                   checkout_session_id="bd504926-f659-4ad7-a1a9-6a747aaf5275", charge_id="S01-0000000-0000000-C000001",
                   charge_permission_id="S01-0000000-0000000")
_REASONS = {DECLINED: "HardDeclined", CANCELED: "BuyerCanceled", EXPIRED: "Expired", FAILED: "InvalidPaymentMethod"}


def _schema_name(event_type: str) -> str:
    """"checkout.completed" → "CheckoutCompletedEvent"."""
    return "".join(part.capitalize() for part in event_type.split(".")) + "Event"


def _event_schema(event_type: str, state: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "string", "pattern": "^evt_[0-9a-f]{32}$",
               "description": "Stable across retries: de-duplicate on it"},
        "type": {"const": event_type},
        "created": {"type": "integer", "minimum": 0, "description": "Unix seconds when the state changed"},
        "data": {"allOf": [{"$ref": "#/components/schemas/EventData"},
                           {"properties": {"state": {"const": state}}}]},
    }
    if event_type in SUPERSEDING:
        properties["supersedes"] = {"const": "checkout.canceled", "description":
                                    "Present when this payment follows a checkout.canceled for the same ref"}
    return {"type": "object", "required": ["id", "type", "created", "data"], "additionalProperties": False,
            "properties": properties}


def _example(state: str) -> Any:
    """A body exactly as event_for() builds it, with a fixed id and time so the document is stable."""
    paid, unbound = state not in _REASONS, state in (CANCELED, EXPIRED)  # left before paying: no session
    checkout = replace(_SAMPLE, state=state, reason_code=_REASONS.get(state),
                       charge_id=_SAMPLE.charge_id if paid else None,
                       checkout_session_id=None if unbound else _SAMPLE.checkout_session_id,
                       charge_permission_id=None if unbound else _SAMPLE.charge_permission_id)
    event = event_for(checkout, 1_767_225_660.0)
    assert event is not None
    return json.loads(event.body) | {"id": "evt_" + "0f" * 16}


def _webhook(event_type: str, state: str) -> dict[str, Any]:
    header = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
              for name, text in ((SIGNATURE_HEADER, "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>"),
                                 (EVENT_ID_HEADER, "The body's id"), (EVENT_TYPE_HEADER, "The body's type"))]
    return {"post": {
        "summary": f"{event_type}: the checkout reached state {state}",
        "parameters": header,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{_schema_name(event_type)}"},
            "example": _example(state)}}},
        "responses": {"2XX": {"description": "Received; any other answer (or none in 10 s) is retried"}},
    }}


_EVENT_SCHEMAS = {_schema_name(t): _event_schema(t, s) for s, t in EVENT_TYPES.items()}
WEBHOOKS = {t: _webhook(t, s) for s, t in EVENT_TYPES.items()}


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
        "schemas": {"Money": _MONEY, "Error": _ERROR, "Checkout": _CHECKOUT, "EventData": _EVENT_DATA,
                    **_EVENT_SCHEMAS},
    },
    "paths": {
        "/v1/checkouts": {"post": {
            "summary": "Register a checkout; returns the ref and the three return URLs for the button.",
            "security": [{"merchantToken": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["merchantReference", "chargeAmount", "paymentIntent"],
                "additionalProperties": False,
                "properties": {
                    "merchantReference": {"type": "string", "maxLength": 128},
                    "chargeAmount": {"$ref": "#/components/schemas/Money"},
                    "paymentIntent": {"type": "string", "enum": ["Confirm", "Authorize", "AuthorizeWithCapture"]},
                    "canHandlePendingAuthorization": {"type": "boolean", "default": False},
                    "totalOrderAmount": {"$ref": "#/components/schemas/Money"},
                    "supplementaryData": {"type": "string", "maxLength": 2048},
                }}}}},
            "responses": {
                "201": {"description": "Registered", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "ref": {"type": "string"}, "expiresAt": {"type": "string", "format": "date-time"},
                        "returnUrls": {"type": "object", "properties": {
                            "checkoutResultReturnUrl": {"type": "string"}, "checkoutCancelUrl": {"type": "string"},
                            "checkoutErrorUrl": {"type": "string"}}},
                        "button": {"type": "object", "properties": {
                            "payloadJSON": {"type": "string"}, "signature": {"type": "string"},
                            "publicKeyId": {"type": "string"}, "algorithm": {"type": "string"}}},
                        "checkout": {"$ref": "#/components/schemas/Checkout"}}}}}},
                "400": _error("Invalid body"), "401": _error("Missing or wrong token"),
                "413": _error("Body too large"), "415": _error("Not JSON"),
            },
        }},
        "/v1/checkouts/{ref}": {"get": {
            "summary": "Read a checkout and its result.",
            "security": [{"merchantToken": []}],
            "parameters": [{"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The checkout", **_json("Checkout")},
                          "401": _error("Missing or wrong token"), "404": _error("Unknown ref")},
        }},
        "/v1/checkout-sessions/{checkoutSessionId}/finalize": {"post": {
            "summary": "Finalize the checkout session once (the app calls this after the return URL opened it).",
            "parameters": [{"name": "checkoutSessionId", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["ref"], "properties": {"ref": {"type": "string"}}}}}},
            "responses": {
                "200": {"description": "Completed", **_json("Checkout")},
                "202": {"description": "Authorization pending; poll the GET endpoint", **_json("Checkout")},
                "400": _error("Malformed id or body"), "402": _error("Declined"), "404": _error("Unknown ref"),
                "409": _error("Canceled, or the ref belongs to another session"), "410": _error("Expired"),
                "422": _error("Amazon Pay refused the finalize"), "503": _error("Amazon Pay unreachable or busy"),
            },
        }},
        "/v1/checkout-sessions/{checkoutSessionId}": {"get": {
            "summary": "Read the current state (poll while pending).",
            "parameters": [
                {"name": "checkoutSessionId", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "ref", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Final or created", **_json("Checkout")},
                          "202": {"description": "Pending", **_json("Checkout")},
                          "402": _error("Declined"), "404": _error("Unknown"), "409": _error("Canceled"),
                          "410": _error("Expired"), "422": _error("Failed")},
        }},
    },
    "webhooks": WEBHOOKS,
}
