"""Outbox management for operators (CLI: `return-router events list|redeliver`)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from router.redact import mask
from router.store.base import OutboxEvent, Store

EVENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,100}", re.ASCII)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def event_summary(event: OutboxEvent) -> dict[str, Any]:
    """What an operator needs to see of one event: no body, the ref masked."""
    return {
        "id": event.id,
        "type": event.type,
        "ref": mask(event.ref),
        "status": event.status,
        "attempts": event.attempts,
        "next_attempt_at": _iso(event.next_attempt_at) if event.status == "pending" else None,
        "last_error": event.last_error,
        "created": _iso(event.created),
        "delivered_at": _iso(event.delivered_at),
        "request_id": event.request_id,  # the request that caused it (search the logs by it)
    }


# Filters look through this many of the newest events (the store has no index on them); the CLI says so.
SEARCH_WINDOW = 10_000


class UnknownEvents(LookupError):
    """`events redeliver` named ids that are not in the outbox; nothing was queued."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = list(ids)


async def list_events(
    store: Store, failed_only: bool, *, limit: int = 100, ref: str | None = None,
    merchant_reference: str | None = None,
) -> list[dict[str, Any]]:
    """Outbox events for `return-router events list [--failed] [--ref R] [--merchant-reference M]`, newest first.

    With a filter, the newest SEARCH_WINDOW events are searched and the first `limit` matches returned.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if ref is None and merchant_reference is None:
        return [event_summary(e) for e in await store.list_events(failed_only=failed_only, limit=limit)]
    events = await store.list_events(failed_only=failed_only, limit=max(limit, SEARCH_WINDOW))
    found = [e for e in events if (ref is None or e.ref == ref)
             and (merchant_reference is None or _merchant_reference(e) == merchant_reference)]
    return [event_summary(e) for e in found[:limit]]


def _merchant_reference(event: OutboxEvent) -> str | None:
    """The order number in an event body (events.event_for writes it as data.merchantReference)."""
    try:
        data = json.loads(event.body).get("data")
    except (ValueError, AttributeError):
        return None
    value = data.get("merchantReference") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


async def redeliver(store: Store, event_ids: Sequence[str] | None, now: float) -> int:
    """Queue parked events again (`events redeliver ID...`; None: `--all-failed`); returns how many.

    UnknownEvents (and nothing queued) when an id is not in the outbox.
    """
    if event_ids is None:
        return await store.redeliver(None, now)
    if isinstance(event_ids, str):
        raise TypeError("event_ids must be a sequence of ids, not one string")
    bad = [i for i in event_ids if not isinstance(i, str) or not EVENT_ID_RE.fullmatch(i)]
    if bad:
        raise ValueError(f"not an event id: {str(bad[0])[:40]!r}")
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return 0
    unknown = [i for i in unique if await store.get_event(i) is None]
    if unknown:
        raise UnknownEvents(unknown)
    return await store.redeliver(unique, now)
