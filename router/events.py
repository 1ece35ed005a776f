"""Webhook events: which state change reports which event, and the exact JSON body. Pure."""

from __future__ import annotations

import json
import secrets

from .store.base import (
    AUTHORIZED,
    CANCELED,
    COMPLETED,
    DECLINED,
    EXPIRED,
    FAILED,
    PENDING,
    Checkout,
    NewEvent,
)

EVENT_TYPES = {
    COMPLETED: "checkout.completed",
    PENDING: "checkout.pending",
    AUTHORIZED: "checkout.authorized",
    DECLINED: "checkout.declined",
    CANCELED: "checkout.canceled",
    EXPIRED: "checkout.expired",
    FAILED: "checkout.failed",
}


def event_for(checkout: Checkout, now: float) -> NewEvent | None:
    """The event announcing that `checkout` reached its current state (None for `created`)."""
    event_type = EVENT_TYPES.get(checkout.state)
    if event_type is None:
        return None
    event_id = "evt_" + secrets.token_hex(16)
    body = {
        "id": event_id,
        "type": event_type,
        "created": int(now),
        "data": {
            "ref": checkout.ref,
            "merchantReference": checkout.merchant_reference,
            "checkoutSessionId": checkout.checkout_session_id,
            "chargeId": checkout.charge_id,
            "chargePermissionId": checkout.charge_permission_id,
            "state": checkout.state,
            "reasonCode": checkout.reason_code,
            "amount": {"amount": checkout.amount, "currencyCode": checkout.currency},
        },
    }
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return NewEvent(id=event_id, type=event_type, created=now, body=raw)
