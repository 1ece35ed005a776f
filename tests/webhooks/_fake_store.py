"""TEMPORARY in-memory outbox used only until the real stores land on main. Not committed."""
from __future__ import annotations
from dataclasses import replace
from typing import Any
from router.store.base import Checkout, NewEvent, OutboxEvent, NotFound, DuplicateRef


class FakeDb:
    def __init__(self) -> None:
        self.checkouts: dict[str, Checkout] = {}
        self.events: dict[str, OutboxEvent] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.seq = 0


class FakeStore:
    def __init__(self, db: FakeDb) -> None:
        self.db = db
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def create_checkout(self, c: Checkout) -> None:
        if c.ref in self.db.checkouts: raise DuplicateRef(c.ref)
        self.db.checkouts[c.ref] = c
    async def get_checkout(self, ref: str) -> Checkout | None:
        return self.db.checkouts.get(ref)
    async def transition(self, ref: str, *, owner: Any, now: float, state: str, changes: Any = None, events: Any = ()) -> Checkout:
        c = replace(self.db.checkouts[ref], state=state, updated_at=now, **dict(changes or {}))
        self.db.checkouts[ref] = c
        for e in events:
            self.db.seq += 1
            self.db.events[e.id] = OutboxEvent(id=e.id, ref=ref, type=e.type, created=e.created, body=e.body, seq=self.db.seq, next_attempt_at=now)
        return c
    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        out = []
        blocked: set[str] = set()
        for e in sorted(self.db.events.values(), key=lambda e: e.seq):
            if e.status == "delivered": continue
            if e.ref in blocked: continue
            blocked.add(e.ref)
            lease = self.db.leases.get(e.id)
            if e.status != "pending" or e.next_attempt_at > now or (lease and lease[1] > now and lease[0] != owner):
                continue
            self.db.leases[e.id] = (owner, now + lease_ttl)
            out.append(e)
            if len(out) >= limit: break
        return out
    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        e = self.db.events[event_id]
        self.db.events[event_id] = replace(e, status="delivered", attempts=e.attempts + 1, delivered_at=now)
        self.db.leases.pop(event_id, None)
    async def event_failed(self, event_id: str, owner: str, now: float, error: str, next_attempt_at: float | None) -> None:
        e = self.db.events[event_id]
        self.db.events[event_id] = replace(e, status="failed" if next_attempt_at is None else "pending", attempts=e.attempts + 1, last_error=error, next_attempt_at=next_attempt_at or e.next_attempt_at)
        self.db.leases.pop(event_id, None)
    async def list_events(self, *, failed_only: bool = False, limit: int = 100) -> list[OutboxEvent]:
        return [e for e in sorted(self.db.events.values(), key=lambda e: e.seq) if not failed_only or e.status == "failed"][:limit]
    async def get_event(self, event_id: str) -> OutboxEvent | None:
        return self.db.events.get(event_id)
    async def redeliver(self, event_ids: Any, now: float) -> int:
        n = 0
        for e in list(self.db.events.values()):
            if e.status == "failed" and (event_ids is None or e.id in event_ids):
                self.db.events[e.id] = replace(e, status="pending", next_attempt_at=now); n += 1
        return n
