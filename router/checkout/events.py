"""Webhook events: which state change reports which event, and the exact JSON body. Pure."""

from __future__ import annotations

import json
import secrets

from router.checkout.model import Checkout, State
from router.store.base import NewEvent

EVENT_TYPES = {
    State.COMPLETED: "checkout.completed",
    State.PENDING: "checkout.pending",
    State.AUTHORIZED: "checkout.authorized",
    State.DECLINED: "checkout.declined",
    State.CANCELED: "checkout.canceled",
    State.EXPIRED: "checkout.expired",
    State.FAILED: "checkout.failed",
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
