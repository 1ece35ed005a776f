"""The Store protocol's methods, once for both backends: check the arguments, run a flow.

A backend supplies `_flow(make, mode)`, which runs the flow `make()` gives on one connection (SQLite may
make and run it twice, the first run rolled back: see router/store/sqlite_thread.py):
- "read": a single read statement, a consistent snapshot of its own;
- "write": a single write statement, atomic by itself;
- "transaction": several statements in one transaction (PostgreSQL locks rows with FOR UPDATE;
  SQLite holds the database's write lock from BEGIN IMMEDIATE on).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, Literal, TypeVar

from router.checkout.model import Checkout, State
from router.store import flows
from router.store import statements as sql
from router.store.base import PURGE_BATCH, Binding, DueResume, NewEvent, OutboxEvent, OutboxStats
from router.store.flows import Flow
from router.store.records import check_state, checkout_values, clip_error, event_values, transition_values
from router.store.statements import Statement

T = TypeVar("T")
Mode = Literal["read", "write", "transaction"]


def _transition_params(
    ref: str, owner: str | None, now: float, state: str, changes: Mapping[str, Any] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"ref": ref, "owner": owner, "now": now, "state": state}
    for name, (present, value) in transition_values(state, changes).items():
        params[f"set_{name}"] = present
        params[name] = value
    return params


def _event_params(ref: str, now: float, events: Sequence[NewEvent]) -> list[dict[str, Any]]:
    return [dict(zip(sql.EVENT_FIELDS, event_values(ref, now, event), strict=True)) for event in events]


class SqlStore:
    """The shared half of SQLiteStore and PostgresStore."""

    def _flow(self, make: Callable[[], Flow[T]], mode: Mode) -> Awaitable[T]:
        raise NotImplementedError

    async def ping(self) -> None:
        await self._flow(partial(flows.rows, sql.PING), "read")

    async def schema_versions(self) -> list[int]:
        """The migration versions recorded in this database, in order."""
        return [int(row[0]) for row in await self._flow(partial(flows.rows, sql.SCHEMA_VERSIONS), "read")]

    # --- checkouts -------------------------------------------------------------------------------

    async def create_checkout(self, checkout: Checkout) -> None:
        await self._flow(partial(flows.count, sql.INSERT_CHECKOUT, **checkout_values(checkout)), "write")

    async def get_checkout(self, ref: str) -> Checkout | None:
        return await self._flow(partial(flows.get_checkout, ref), "read")

    async def bind_session(self, ref: str, checkout_session_id: str, now: float) -> Checkout:
        if not checkout_session_id:
            raise ValueError("checkout_session_id must be a non-empty string")
        return await self._flow(partial(flows.bind_session, ref, checkout_session_id, now), "transaction")

    async def bind_and_lease(self, ref: str, checkout_session_id: str, owner: str | None, now: float,
                             ttl: float, *, reclaim: bool = False) -> Binding:
        if not checkout_session_id:
            raise ValueError("checkout_session_id must be a non-empty string")
        flow = partial(flows.bind_and_lease, ref, checkout_session_id, owner, now, ttl, reclaim)
        return await self._flow(flow, "transaction")

    async def try_lease(self, ref: str, owner: str, now: float, ttl: float, *, reclaim: bool = False
                        ) -> Checkout | None:
        flow = partial(flows.checkouts, sql.TRY_LEASE, ref=ref, **flows.lease_params(owner, now, ttl, reclaim))
        found = await self._flow(flow, "write")
        return found[0] if found else None

    async def release_lease(self, ref: str, owner: str) -> None:
        await self._flow(partial(flows.count, sql.RELEASE_LEASE, ref=ref, owner=owner), "write")

    async def transition(
        self,
        ref: str,
        *,
        owner: str | None,
        now: float,
        state: State,
        changes: Mapping[str, Any] | None = None,
        events: Sequence[NewEvent] = (),
        instead_after: tuple[str, Callable[[], Sequence[NewEvent]]] | None = None,
    ) -> Checkout:
        params = _transition_params(ref, owner, now, state, changes)
        instead = None
        if instead_after is not None:
            kind, make = instead_after
            instead = (kind, lambda: _event_params(ref, now, make()))
        flow = partial(flows.transition, params, _event_params(ref, now, events), instead)
        return await self._flow(flow, "transaction")

    async def list_checkouts(
        self, states: Sequence[State], *, now: float, bound_only: bool = True, limit: int = 100,
        after: Checkout | None = None,
    ) -> list[Checkout]:
        for state in states:
            check_state(state)
        if not states or limit <= 0:
            return []
        after_at, after_ref = (after.updated_at, after.ref) if after else (None, None)
        flow = partial(flows.checkouts, sql.LIST_CHECKOUTS, states=list(states), now=now, bound_only=bound_only,
                       limit=limit, after_at=after_at, after_ref=after_ref)
        return await self._flow(flow, "read")

    async def list_expired_unbound(self, *, now: float, limit: int = 100) -> list[Checkout]:
        if limit <= 0:
            return []
        return await self._flow(partial(flows.checkouts, sql.LIST_EXPIRED_UNBOUND, now=now, limit=limit), "read")

    # --- outbox ----------------------------------------------------------------------------------

    async def claim_events(self, owner: str, now: float, lease_ttl: float, limit: int) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        flow = partial(flows.events, sql.CLAIM_EVENTS, owner=owner, now=now, until=now + lease_ttl, limit=limit)
        return sorted(await self._flow(flow, "write"), key=lambda event: event.seq)

    async def event_delivered(self, event_id: str, owner: str, now: float) -> None:
        # Recorded even if the lease was taken over meanwhile: the merchant has it, so stop sending it.
        await self._flow(partial(flows.update_event, sql.EVENT_DELIVERED, id=event_id, now=now), "transaction")

    async def event_failed(
        self, event_id: str, owner: str, now: float, error: str, next_attempt_at: float | None
    ) -> None:
        # Only the current lease holder schedules the next attempt; a stale worker's report is dropped.
        params = {"id": event_id, "owner": owner, "error": clip_error(error), "next": next_attempt_at}
        flow = partial(flows.update_event, sql.EVENT_FAILED, **params)
        await self._flow(flow, "transaction")

    async def list_events(self, *, failed_only: bool = False, limit: int = 100) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        return await self._flow(partial(flows.events, sql.LIST_EVENTS, failed_only=failed_only, limit=limit), "read")

    async def get_event(self, event_id: str) -> OutboxEvent | None:
        found = await self._flow(partial(flows.events, sql.GET_EVENT, id=event_id), "read")
        return found[0] if found else None

    async def redeliver(self, event_ids: Sequence[str] | None, now: float) -> int:
        if event_ids is not None and not event_ids:
            return 0
        flow = partial(flows.count, sql.REDELIVER, now=now, all=event_ids is None, ids=list(event_ids or ()))
        return await self._flow(flow, "write")

    # --- ops: metrics gauges, graceful stop ------------------------------------------------------

    async def outbox_stats(self) -> OutboxStats:
        row = (await self._flow(partial(flows.rows, sql.OUTBOX_STATS), "read"))[0]
        return OutboxStats(int(row[0]), row[1], int(row[2]))

    async def release_leases(self, owner: str) -> int:
        return await self._flow(partial(flows.counts, sql.RELEASE_LEASES, owner=owner), "transaction")

    # --- resume schedule -------------------------------------------------------------------------

    async def list_due_resumes(self, *, now: float, resume_after: float, limit: int = 100) -> list[DueResume]:
        if limit <= 0:
            return []
        return await self._flow(partial(flows.due_resumes, now, resume_after, limit), "read")

    async def claim_resume(self, ref: str, attempts: int, next_resume_at: float) -> bool:
        flow = partial(flows.count, sql.CLAIM_RESUME, ref=ref, attempts=attempts, next=next_resume_at)
        return await self._flow(flow, "write") == 1

    # --- safety: probes, cancel ------------------------------------------------------------------

    async def session_rejected(self, ref: str, checkout_session_id: str, now: float) -> bool:
        flow = partial(flows.rows, sql.SESSION_REJECTED, ref=ref, session=checkout_session_id, now=now)
        return bool(await self._flow(flow, "read"))

    async def reject_session(self, ref: str, checkout_session_id: str, until: float, now: float) -> None:
        await self._flow(partial(flows.reject_session, ref, checkout_session_id, until, now), "transaction")

    async def cancel_unbound(
        self, ref: str, now: float, changes: Mapping[str, Any], events: Sequence[NewEvent]
    ) -> Checkout | None:
        return await self._settle_unbound(sql.CANCEL_UNBOUND, State.CANCELED, ref, now, changes, events)

    async def expire_unbound(
        self, ref: str, now: float, changes: Mapping[str, Any], events: Sequence[NewEvent]
    ) -> Checkout | None:
        return await self._settle_unbound(sql.EXPIRE_UNBOUND, State.EXPIRED, ref, now, changes, events)

    async def _settle_unbound(self, statement: Statement, state: State, ref: str, now: float,
                              changes: Mapping[str, Any], events: Sequence[NewEvent]) -> Checkout | None:
        params = _transition_params(ref, None, now, state, changes)
        flow = partial(flows.settle_unbound, statement, params, _event_params(ref, now, events))
        return await self._flow(flow, "transaction")

    async def cancel_or_get(
        self, ref: str, now: float, changes: Mapping[str, Any], events_for: Callable[[Checkout], Sequence[NewEvent]]
    ) -> tuple[Checkout | None, bool]:
        params = _transition_params(ref, None, now, State.CANCELED, changes)
        flow = partial(flows.cancel_or_get, params, lambda canceled: _event_params(ref, now, events_for(canceled)))
        return await self._flow(flow, "transaction")

    async def has_event(self, ref: str, event_type: str) -> bool:
        return bool(await self._flow(partial(flows.rows, sql.HAS_EVENT, ref=ref, type=event_type), "read"))

    # --- operator: retention (buyer details, delivered events), the demo's bound -------------------

    async def purge_buyer_details(self, before: float, limit: int = PURGE_BATCH) -> int:
        return await self._flow(partial(flows.count, sql.PURGE_BUYER_DETAILS, before=before, limit=limit), "write")

    async def purge_delivered_events(self, before: float, limit: int = PURGE_BATCH) -> int:
        return await self._flow(partial(flows.count, sql.PURGE_DELIVERED_EVENTS, before=before, limit=limit),
                                "write")

    async def drop_oldest_checkouts(self, keep: int) -> int:
        return await self._flow(partial(flows.drop_oldest_checkouts, keep), "transaction")
