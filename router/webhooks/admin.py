"""Outbox management for operators (CLI: `return-router events list|redeliver`)."""

from __future__ import annotations

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
    }


async def list_events(store: Store, failed_only: bool, *, limit: int = 100) -> list[dict[str, Any]]:
    """Outbox events for `return-router events list [--failed]`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return [event_summary(e) for e in await store.list_events(failed_only=failed_only, limit=limit)]


async def redeliver(store: Store, event_ids: Sequence[str] | None, now: float) -> int:
    """Queue parked events again (`events redeliver ID...`; None: `--all-failed`); returns how many."""
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
    return await store.redeliver(unique, now)

