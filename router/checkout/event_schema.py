"""The published schema of the webhook bodies: the `webhooks` section of /v1/openapi.json (OpenAPI 3.1).

One entry per event type of events.py, each with the JSON Schema of its body written out (so a test
that validates every delivered body against it checks events.py, not itself) and an example that is a
real body from event_for(). Component references ("#/components/schemas/…") resolve in that document.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from router.checkout.events import EVENT_TYPES, event_for
from router.checkout.model import PAYMENT_INTENTS, Checkout, State
from router.webhooks.signature import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER

# Events that may follow a `checkout.canceled` for the same ref (the buyer came back from Amazon after the
# cancel URL was loaded): every one of them says so (events.superseded_type), paid or not.
SUPERSEDING = ("checkout.completed", "checkout.pending", "checkout.authorized", "checkout.declined",
               "checkout.expired", "checkout.failed")
_EVENT_DATA = {
    "type": "object",
    "required": ["ref", "merchantReference", "checkoutSessionId", "chargeId", "chargePermissionId", "state",
                 "reasonCode", "amount", "paymentIntent"],
    "additionalProperties": False,
    "properties": {
        "ref": {"type": "string", "description": "return-router's id of the checkout (from POST /v1/checkouts)"},
        "merchantReference": {"type": "string", "maxLength": 128},
        "checkoutSessionId": {"type": ["string", "null"]},
        "chargeId": {"type": ["string", "null"]},
        "chargePermissionId": {"type": ["string", "null"]},
        "state": {"type": "string", "enum": [s.value for s in EVENT_TYPES]},
        "reasonCode": {"type": ["string", "null"], "description": "Amazon Pay's reason, e.g. HardDeclined"},
        "amount": {"$ref": "#/components/schemas/Money"},
        "paymentIntent": {"type": "string", "enum": list(PAYMENT_INTENTS), "description":
                          "As registered. On checkout.completed: Confirm authorized nothing (create a charge); "
                          "Authorize left a charge to capture; AuthorizeWithCapture captured it"},
    },
}
_SAMPLE = Checkout(ref="Xq3v9bT0mQpLw4sN1aZk7Hc2dE5fG8hJ", merchant_reference="order-1042", amount="14.00",
                   currency="USD", payment_intent="AuthorizeWithCapture", can_handle_pending=True,
                   created_at=1_767_225_600.0, expires_at=1_767_312_000.0,
                   checkout_session_id="bd504926-f659-4ad7-a1a9-6a747aaf5275", charge_id="S01-0000000-0000000-C000001",
                   charge_permission_id="S01-0000000-0000000")
_REASONS = {State.DECLINED: "HardDeclined", State.CANCELED: "BuyerCanceled", State.EXPIRED: "Expired",
            State.FAILED: "InvalidPaymentMethod"}


def _schema_name(event_type: str) -> str:
    """"checkout.completed" → "CheckoutCompletedEvent"."""
    return "".join(part.capitalize() for part in event_type.split(".")) + "Event"


def _event_schema(event_type: str, state: State) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "string", "pattern": "^evt_[0-9a-f]{32}$",
               "description": "Stable across retries: de-duplicate on it"},
        "type": {"const": event_type},
        "created": {"type": "integer", "minimum": 0, "description": "Unix seconds when the state changed"},
        "data": {"allOf": [{"$ref": "#/components/schemas/EventData"},
                           {"properties": {"state": {"const": state.value}}}]},
    }
    if event_type in SUPERSEDING:
        properties["supersedes"] = {"const": "checkout.canceled", "description":
                                    "Present when this event follows a checkout.canceled for the same ref: the "
                                    "cancel no longer holds; only a completed or authorized one is paid"}
    return {"type": "object", "required": ["id", "type", "created", "data"], "additionalProperties": False,
            "properties": properties}


def _example(state: State) -> Any:
    """A body exactly as event_for() builds it, with a fixed id and time so the document is stable."""
    paid = state not in _REASONS
    unbound = state in (State.CANCELED, State.EXPIRED)  # the buyer left before paying: no session
    checkout = replace(_SAMPLE, state=state, reason_code=_REASONS.get(state),
                       charge_id=_SAMPLE.charge_id if paid else None,
                       checkout_session_id=None if unbound else _SAMPLE.checkout_session_id,
                       charge_permission_id=None if unbound else _SAMPLE.charge_permission_id)
    event = event_for(checkout, 1_767_225_660.0)
    assert event is not None
    return json.loads(event.body) | {"id": "evt_" + "0f" * 16}


def _webhook(event_type: str, state: State) -> dict[str, Any]:
    header = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
              for name, text in ((SIGNATURE_HEADER, "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>"),
                                 (EVENT_ID_HEADER, "The body's id"), (EVENT_TYPE_HEADER, "The body's type"))]
    return {"post": {
        "summary": f"{event_type}: the checkout reached state {state.value}",
        "parameters": header,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{_schema_name(event_type)}"},
            "example": _example(state)}}},
        "responses": {"2XX": {"description": "Received; any other answer (or none in 10 s) is retried"}},
    }}


EVENT_SCHEMAS = {"EventData": _EVENT_DATA} | {_schema_name(t): _event_schema(t, s) for s, t in EVENT_TYPES.items()}
WEBHOOKS = {t: _webhook(t, s) for s, t in EVENT_TYPES.items()}
