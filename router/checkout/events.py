"""Webhook events: which state change reports which event, and the exact JSON body.

Pure but for the cause an event records: the id of the request being served (the log context) and
its trace, so that whichever process delivers the event sends them.

An event that reports a state after a `checkout.canceled` of the same checkout (the buyer canceled,
then returned from Amazon and paid after all) carries `"supersedes": "checkout.canceled"` at the top
level, so the merchant knows the earlier cancel no longer holds. Other events have no such field.
"""

from __future__ import annotations

import json
import secrets

from router import logs, tracing
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


CANCELED_EVENT = EVENT_TYPES[State.CANCELED]


def superseded_type(state: State) -> str | None:
    """The earlier event type a new event for `state` would contradict: a cancel, for every other state."""
    if state in (State.CREATED, State.CANCELED):
        return None
    return CANCELED_EVENT


def event_for(checkout: Checkout, now: float, *, supersedes: str | None = None) -> NewEvent | None:
    """The event announcing that `checkout` reached its current state (None for `created`).

    `supersedes`: the type of an earlier event of this checkout that this one overrides.
    """
    event_type = EVENT_TYPES.get(checkout.state)
    if event_type is None:
        return None
    event_id = "evt_" + secrets.token_hex(16)
    body: dict[str, object] = {
        "id": event_id,
        "type": event_type,
        "created": int(now),
    }
    if supersedes is not None:
        body["supersedes"] = supersedes
    body |= {
        "data": {
            "ref": checkout.ref,
            "merchantReference": checkout.merchant_reference,
            "checkoutSessionId": checkout.checkout_session_id,
            "chargeId": checkout.charge_id,
            "chargePermissionId": checkout.charge_permission_id,
            "state": checkout.state,
            "reasonCode": checkout.reason_code,
            "amount": {"amount": checkout.amount, "currencyCode": checkout.currency},
            # What checkout.completed means depends on it: Confirm charges nothing, Authorize leaves a
            # charge to capture, AuthorizeWithCapture has captured the money.
            "paymentIntent": checkout.payment_intent,
        },
    }
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return NewEvent(id=event_id, type=event_type, created=now, body=raw, request_id=logs.current_request_id(),
                    traceparent=tracing.traceparent())
