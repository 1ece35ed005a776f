"""Pure conversions shared by both backends: records to column values and rows back to records.

Keeping them here means SQLite and PostgreSQL validate the same way and return identical records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from router.checkout.model import STATES, Checkout, State
from router.store.base import MUTABLE_FIELDS, NewEvent, OutboxEvent

CHECKOUT_COLUMNS = (
    "ref",
    "merchant_reference",
    "amount",
    "currency",
    "payment_intent",
    "can_handle_pending",
    "created_at",
    "expires_at",
    "state",
    "updated_at",
    "total_order_amount",
    "supplementary_data",
    "checkout_session_id",
    "charge_id",
    "charge_permission_id",
    "reason_code",
    "result",
    "lease_owner",
    "lease_until",
    "version",
)

# The order in which transition() sets the mutable columns (both backends use this order).
MUTABLE_ORDER = (
    "checkout_session_id",
    "charge_id",
    "charge_permission_id",
    "reason_code",
    "result",
    "expires_at",
)
assert frozenset(MUTABLE_ORDER) == MUTABLE_FIELDS

# Longest delivery error kept per event: enough to diagnose, bounded so a huge response cannot bloat rows.
MAX_ERROR_CHARS = 2000

EVENT_STATUSES = ("pending", "delivered", "failed")


class Row(Protocol):
    """What both sqlite3.Row and asyncpg.Record offer."""

    def __getitem__(self, key: str | int, /) -> Any: ...


def encode_result(result: Mapping[str, Any] | None) -> str | None:
    """JSON text for the `result` column; strict JSON so PostgreSQL's jsonb accepts what SQLite does."""
    if result is None:
        return None
    if not isinstance(result, Mapping):
        raise ValueError("checkout result must be a mapping (a JSON object) or None")
    try:
        return json.dumps(dict(result), allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkout result is not JSON-serialisable: {exc}") from exc


def decode_result(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored checkout result is not a JSON object")
    return value


def check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown checkout state {state!r}; expected one of {', '.join(STATES)}")


def checkout_values(checkout: Checkout) -> dict[str, Any]:
    """Column values for inserting `checkout` (result as JSON text, can_handle_pending as bool)."""
    if not isinstance(checkout.ref, str) or not checkout.ref:
        raise ValueError("checkout ref must be a non-empty string")
    check_state(checkout.state)
    values = {name: getattr(checkout, name) for name in CHECKOUT_COLUMNS}
    values["can_handle_pending"] = bool(checkout.can_handle_pending)
    values["result"] = encode_result(checkout.result)
    return values


def transition_values(state: str, changes: Mapping[str, Any] | None) -> dict[str, tuple[bool, Any]]:
    """For each mutable column: (whether to set it, new value). Rejects unknown states and fields."""
    check_state(state)
    changes = changes or {}
    unknown = sorted(set(changes) - MUTABLE_FIELDS)
    if unknown:
        raise ValueError(f"transition cannot change {', '.join(unknown)}; allowed: {sorted(MUTABLE_FIELDS)}")
    if "expires_at" in changes and changes["expires_at"] is None:
        raise ValueError("expires_at cannot be None")
    values: dict[str, tuple[bool, Any]] = {}
    for name in MUTABLE_ORDER:
        present = name in changes
        value = changes.get(name)
        if name == "result" and present:
            value = encode_result(value)
        values[name] = (present, value)
    return values


def checkout_from_row(row: Row) -> Checkout:
    values = {name: row[name] for name in CHECKOUT_COLUMNS}
    values["can_handle_pending"] = bool(values["can_handle_pending"])
    values["result"] = decode_result(values["result"])
    values["state"] = State(values["state"])
    for name in ("created_at", "expires_at", "updated_at"):
        values[name] = float(values[name])
    values["lease_until"] = _float_or_none(values["lease_until"])
    return Checkout(**values)


def event_from_row(row: Row) -> OutboxEvent:
    return OutboxEvent(
        id=row["id"],
        ref=row["ref"],
        type=row["type"],
        created=float(row["created"]),
        body=bytes(row["body"]),
        seq=row["seq"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=float(row["next_attempt_at"]),
        last_error=row["last_error"],
        delivered_at=_float_or_none(row["delivered_at"]),
        request_id=row["request_id"],
        traceparent=row["traceparent"],
    )


def _float_or_none(value: Any) -> float | None:
    # SQLite may hand back an integral REAL as int (notably from RETURNING); records always hold floats.
    return None if value is None else float(value)


def clip_error(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


def event_values(
    ref: str, now: float, event: NewEvent
) -> tuple[str, str, str, float, bytes, float, str | None, str | None]:
    """(id, ref, type, created, body, next_attempt_at, request_id, traceparent) for a new outbox row; due at once."""
    if not isinstance(event.body, bytes | bytearray | memoryview):
        raise ValueError("event body must be bytes")
    if not event.id:
        raise ValueError("event id must be a non-empty string")
    return (event.id, ref, event.type, event.created, bytes(event.body), now, event.request_id, event.traceparent)
