"""The finalize orchestrator: registering checkouts, finalizing each exactly once, reconciling.

Exactly once rests on three things: the session id is bound to the ref once (store), one caller at a
time holds the finalize lease (store), and the idempotency key is derived from ref + session id, so
a retry after a crash, a lost lease or a timeout gets Amazon's saved response instead of a second
charge. Callers that lose the race wait for the holder's result instead of calling Amazon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import router.metrics as metrics
from router import logs
from router.amazon_pay import deadline as amazon_deadline
from router.amazon_pay import quota
from router.amazon_pay.errors import AmazonPayError
from router.amazon_pay.models import CheckoutSession
from router.backoff import Backoff, poll
from router.checkout.amazon import (
    AmazonPay,
    another_orders,
    finalize_payload,
    idempotency_key,
    session_fields,
    state_of_charge,
    state_of_session,
)
from router.checkout.events import CANCELED_EVENT, event_for, superseded_type
from router.checkout.model import (
    Busy,
    Checkout,
    InvalidSessionId,
    LeaseLost,
    NewCheckout,
    NotFound,
    Outcome,
    OutcomeError,
    SessionConflict,
    SessionOfAnotherOrder,
    State,
    UnknownRef,
    is_ref,
    is_session_id,
)
from router.checkout.probes import PendingLooks, SessionTries
from router.checkout.unsure import UnsureLeases
from router.redact import mask
from router.store.base import Binding, NewEvent, Store, StoreUnavailable

log = logging.getLogger("router.checkout.service")

STORE_POLL = Backoff(0.02, 0.5)  # while another holder calls Amazon: poll the store, 20 ms doubling to 0.5 s


class NotBound(StoreUnavailable):
    """The store failed as a return was binding its session, and nothing shows the order bound (a read after
    shows none, or cannot be made): nothing may have been stored or sent to Amazon with it, so nothing would
    resume it; only the buyer's retry (the page's own refresh) finalizes it once the store writes again."""


class CheckoutService:
    def __init__(
        self,
        store: Store,
        amazon: AmazonPay,
        *,
        ttl_seconds: float = 24 * 3600,
        lease_seconds: float = 90.0,
        wait_seconds: float = 45.0,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.amazon = amazon
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self.on_event = on_event  # called after an event is stored, e.g. to wake the webhook worker at once
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        self.tries = SessionTries()  # new session ids per order: each costs Amazon a call
        self.looks = PendingLooks()  # a pending order's buyer-caused reads of Amazon
        self.unsure = UnsureLeases(lease_seconds)  # our own leases a lost COMMIT may have left in the store

    # --- merchant ---------------------------------------------------------------------------------

    async def register(self, new: NewCheckout) -> Checkout:
        ref = secrets.token_urlsafe(24)  # 192 bits: unguessable, URL-safe
        checkout = new.opened(ref, now=self.clock(), ttl_seconds=self.ttl_seconds)
        await self.store.create_checkout(checkout)
        return logs.noted(checkout)

    async def get(self, ref: str) -> Checkout | None:
        if not is_ref(ref):
            return None
        return logs.noted(await self.store.get_checkout(ref))  # this request's log lines name the order

    # --- the buyer's return ----------------------------------------------------------------------

    async def finalize(self, ref: str, checkout_session_id: str) -> Outcome:
        """Finalize once; every concurrent or later caller gets the same stored result.

        Raises InvalidSessionId (before anything is stored), UnknownRef, SessionConflict (settled with
        another session; SessionOfAnotherOrder: the session is another order's, this one is not bound), or
        Busy (someone else holds the lease, another session's finalize is unsettled, or this order tried too
        many new session ids just now).
        """
        if not is_session_id(checkout_session_id):
            raise InvalidSessionId("malformed checkout session id")
        if not self.tries.open(ref, self.clock()):
            await self._wait_unless_bound(ref, checkout_session_id)
        bound = await self._bind(ref, checkout_session_id)
        if isinstance(bound, Outcome):
            return bound
        first, leased, fresh = bound
        probe = fresh and self.tries.tried(ref) > 0  # not the order's first new id: lower quota priority
        if fresh and leased and not self.tries.take(ref, self.clock()):
            # Past the tries at once, in a race with another new id of this order's (the check above saw
            # room for one): this one waits. Nothing was sent with it (this call bound it): unbound again.
            with self.unsure.holding(ref):  # our lease, held outside a leader
                await self._unbind(first)
            raise Busy(ref)

        async def join_or_lead(attempt: int) -> Outcome | None:
            if attempt == 1 and leased:
                return await self._lead(first, fresh=fresh, probe=probe)
            checkout = first if attempt == 1 else await self._stored(ref)
            if checkout.state != State.CREATED:
                return Outcome(checkout)
            inflight = self._inflight.get(ref)
            if inflight is not None:
                return await asyncio.shield(inflight)
            taken = await self._lease_in(ref, State.CREATED)
            return None if taken is None else await self._lead(taken)  # None: held, or settled: poll again

        return await self._poll(ref, join_or_lead)

    async def _bind(self, ref: str, checkout_session_id: str) -> tuple[Checkout, bool, bool] | Outcome:
        """Bind the session to the ref and, unless a local caller already leads, take the lease, in one
        transaction: (checkout, leased, fresh). Fresh: this call bound the session, so no finalize with it
        can have been sent before. An Outcome instead when Amazon already rejected this pair."""
        if not is_ref(ref):
            raise UnknownRef(ref)
        owner = None if ref in self._inflight else self.owner  # a local leader is at work: join it below
        for again in (True, False):
            try:
                binding = await self._bind_and_lease(ref, checkout_session_id, owner)
                break
            except StoreUnavailable as exc:
                await self._unless_bound(ref, exc)
                raise
            except NotFound:
                raise UnknownRef(ref) from None
            except SessionConflict:
                found = await self.store.get_checkout(ref)
                if found is None:
                    raise
                if found.checkout_session_id is None:
                    if found.state != State.CREATED or not again:
                        # Unbound, yet the bind conflicts: this session id is bound to another order.
                        raise SessionOfAnotherOrder("the checkout session is bound to another checkout") from None
                    continue  # unbound meanwhile (the other session proved unknown): bind again
                if found.state != State.CREATED:
                    raise  # settled with another session: a conflict
                # Another session is bound and unsettled: its finalize is under way or waits for the
                # reconciler, and it may yet prove unknown (a made-up id) and be unbound. Not yet a conflict.
                raise Busy(ref) from None
        logs.noted(binding.checkout)  # this request's log lines name the order
        if binding.rejected:
            return Outcome(binding.checkout, error=OutcomeError.UNKNOWN_SESSION)  # a repeated probe: no Amazon call
        return binding.checkout, binding.leased, binding.newly_bound  # a cancel-URL cancel was reopened there

    async def _unless_bound(self, ref: str, failure: StoreUnavailable) -> None:
        """Raise NotBound unless a read shows the order bound after the failed bind (then the reconciler
        resumes it, and the failure stands). When the reads fail too (the whole store is down), whether a
        COMMIT got through is unknown: NotBound, since only "keep this page open" is true either way."""
        try:
            found = await self.store.get_checkout(ref)
        except StoreUnavailable:
            raise NotBound(str(failure)) from failure
        if found is not None and found.checkout_session_id is None:
            raise NotBound(str(failure)) from failure

    async def _bind_and_lease(self, ref: str, checkout_session_id: str, owner: str | None) -> Binding:
        """The store's bind_and_lease; with an owner, taking back our own lease a lost COMMIT left (unsure)."""
        if owner is None:
            return await self.store.bind_and_lease(ref, checkout_session_id, None, self.clock(), self.lease_seconds)
        with self.unsure.taking(ref, leading=ref in self._inflight) as reclaim:
            binding = await self.store.bind_and_lease(ref, checkout_session_id, owner, self.clock(),
                                                      self.lease_seconds, reclaim=reclaim)
        if binding.leased or reclaim:
            self.unsure.settled(ref)
        return binding

    async def _wait_unless_bound(self, ref: str, checkout_session_id: str) -> None:
        """This order tried new session ids too often just now (router/checkout/probes.py): a new one waits
        (Busy) before it is bound, since a bound made-up id would hold the buyer's own return off meanwhile.
        The session already bound, or an order already settled, goes on as usual."""
        if not is_ref(ref):
            raise UnknownRef(ref)
        found = await self._stored(ref)
        if found.state == State.CREATED and found.checkout_session_id != checkout_session_id:
            log.debug("ref %s tries new session ids too often: %s waits", mask(ref), mask(checkout_session_id))
            raise Busy(ref)

    async def _lead(self, checkout: Checkout, *, fresh: bool = False, probe: bool = False) -> Outcome:
        """Holder of the lease: call Amazon, store the result, and share it with local waiters. `fresh`:
        the session was bound by this very call (see _bind), never by an earlier holder that may have sent
        a finalize. `probe`: a fresh session that is not the first new id this order tried: its Amazon
        calls take only tokens no buyer reserved (router/amazon_pay/quota.py)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[checkout.ref] = future
        try:
            try:
                # the finalize and the reads after it: one deadline, one priority
                with amazon_deadline.shared(), quota.probing() if probe else contextlib.nullcontext():
                    outcome = await self._call_amazon(checkout, fresh=fresh, probe=probe)
                if outcome.error == OutcomeError.AMAZON_UNAVAILABLE:
                    outcome = await self._settled_meanwhile(outcome)
            except LeaseLost:
                log.warning("finalize lease on %s ran out mid-call; taking the new holder's result",
                            mask(checkout.ref))
                outcome = await self._after_lost_lease(checkout.ref)
            future.set_result(outcome)
            metrics.finalized(outcome.error.value if outcome.error else outcome.checkout.state)
            return outcome
        except Exception as exc:
            # Whatever failed, the lease must not outlive this call: a bound checkout is then resumed by
            # the reconciler with the same key (or the next return), never left locked.
            await self._release_after_failure(checkout.ref)
            future.set_exception(exc)
            future.exception()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(checkout.ref) is future:
                del self._inflight[checkout.ref]

    async def _release_after_failure(self, ref: str) -> None:
        """Release our lease, come what may (the failure being handled is the one to raise); if the store
        cannot say it did, the next attempt takes it back."""
        with contextlib.suppress(Exception):
            try:
                await self.store.release_lease(ref, self.owner)
            except StoreUnavailable:
                self.unsure.unsure(ref)

    async def _settled_meanwhile(self, failed: Outcome) -> Outcome:
        """No answer from Amazon in time; but if our lease ran out meanwhile (this process paused past it),
        another holder may have stored the result: the buyer sees that, not "can't confirm yet"."""
        found = await self._stored(failed.checkout.ref)
        return Outcome(found) if found.state != State.CREATED else failed

    async def _after_lost_lease(self, ref: str) -> Outcome:
        """Amazon outlasted our lease (or this process was paused) and another caller took over with the
        same key: its stored result is ours too (the buyer paid once; never show them an error). If it gave
        up without one (Amazon unreachable from it), take the lease again and send the same finalize: the
        same key gets Amazon's answer to the first, rather than waiting for a result nobody is making."""

        async def result_or_lease(_: int) -> Outcome | None:
            found = await self._stored(ref)
            if found.state != State.CREATED:
                return Outcome(found)
            taken = await self._lease_in(ref, State.CREATED)
            if taken is None:
                return None  # still held: poll again
            with contextlib.suppress(LeaseLost):  # outlasted again: poll again
                return await self._call_amazon(taken)
            return None

        return await self._poll(ref, result_or_lease)

    async def _poll(self, ref: str, step: Callable[[int], Awaitable[Outcome | None]]) -> Outcome:
        """`step` until it has an outcome, polling the store in between; Busy after wait_seconds."""
        outcome = await poll(step, STORE_POLL, self.wait_seconds)
        if outcome is None:
            raise Busy(ref)
        return outcome

    async def _stored(self, ref: str) -> Checkout:
        found = await self.store.get_checkout(ref)
        if found is None:
            raise UnknownRef(ref)
        return found

    async def _call_amazon(self, checkout: Checkout, *, fresh: bool = False, probe: bool = False) -> Outcome:
        session_id = checkout.checkout_session_id
        assert session_id is not None
        if checkout.expires_at <= self.clock():
            return await self._past_window(checkout, session_id)
        key = idempotency_key(checkout.ref, session_id)
        try:
            result = await self.amazon.finalize_checkout_session(session_id, finalize_payload(checkout), key)
        except AmazonPayError as exc:
            # A decline or a buyer's cancel (4xx but auth and throttling) is an ordinary outcome: INFO.
            level = logging.INFO if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (
                401, 403, 429) else logging.WARNING
            log.log(level, "finalize %s for ref %s failed: %s", mask(session_id), mask(checkout.ref), _failure(exc))
            if fresh and exc.attempts == 0:
                # Refused here before anything was sent (quota, breaker, deadline) for a session this very
                # call bound: Amazon has seen no finalize of it, so reading it back would only spend a
                # getCheckoutSession token, when tokens are what is short.
                if probe:
                    # Another new id of an order that tried one already, sent nothing: unbound, so that
                    # neither the reconciler spends a token on it later nor it holds the order's own
                    # session off; it is tried again when it comes back (the page refreshes).
                    await self._unbind(checkout)
                    raise Busy(checkout.ref) from None
                # The buyer's first: it stays bound (the reconciler resumes it); the lease goes.
                await self.store.release_lease(checkout.ref, self.owner)
                return Outcome(checkout, error=OutcomeError.AMAZON_UNAVAILABLE)
            if exc.status == 404:  # no such session: reading it back would say so again, for another token
                return await self._not_this_orders(checkout)
            return await self._reconcile(checkout, exc)
        except Exception as exc:
            # Raised before Amazon answered: the client refused the input, or something failed that is
            # not an Amazon answer. The lease is released (_lead); the session stays bound unless nothing
            # with it can have reached Amazon: the client refuses an input (ValueError) before its first
            # attempt, and a session this very call bound was never sent by an earlier holder. Any other
            # error may follow an attempt that Amazon acted on (an answer lost, then a retry that failed
            # otherwise), and only Amazon can say: unbound, a cancel-URL visit or the expiry would lose a
            # payment Amazon completed. The next return, a cancel visit or the reconciler asks it.
            log.warning("finalize %s for ref %s failed before Amazon answered: %s", mask(session_id),
                        mask(checkout.ref), type(exc).__name__)
            if isinstance(exc, ValueError):
                if fresh:
                    await self._unbind(checkout)
                raise InvalidSessionId("the Amazon Pay client refused the checkout session id") from exc
            raise
        session = result.session
        state = None if result.http_status == 202 else state_of_session(session)
        if _failing(state) and (foreign := another_orders(session, checkout, failing=True)) is not None:
            return await self._not_this_orders(checkout, foreign)  # no money taken: not this order's to end
        foreign = another_orders(session, checkout)
        if foreign is not None:
            # Amazon took this order's amount with it: the money is this order's now, and it is settled
            # here (never dropped). Whoever reconciles must know the session was made for another order.
            taken = "accepted it for this order (pending)" if result.http_status == 202 else "finalized it for this "\
                "order"
            log.error("session %s is not ref %s's (%s) but Amazon %s: settled here; the order it was made for is "
                      "not paid by it", mask(session_id), mask(checkout.ref), foreign, taken)
        fields = session_fields(session)
        if result.http_status == 202:
            return Outcome(await self._settle(checkout, self.owner, State.PENDING, fields))
        if state is None:
            # Only a 200 whose session is Completed is paid (still Open: not finalized). The lease goes;
            # the reconciler asks again with the same key, and past the window reads the session.
            log.warning("finalize %s for ref %s answered %s with the session %s", mask(session_id),
                        mask(checkout.ref), result.http_status, session.state)
            await self.store.release_lease(checkout.ref, self.owner)
            return Outcome(checkout, error=OutcomeError.AMAZON_UNAVAILABLE)
        return Outcome(await self._settle(checkout, self.owner, state, fields))

    async def _past_window(self, checkout: Checkout, session_id: str) -> Outcome:
        """Too late to finalize; but an earlier holder may have finalized before dying: ask Amazon."""
        try:
            session = await self.amazon.get_checkout_session(session_id)
        except AmazonPayError as exc:
            if exc.status == 404:
                return Outcome(await self._settle(checkout, self.owner, State.EXPIRED, {"reason_code": "Expired"}))
            await self.store.release_lease(checkout.ref, self.owner)
            return Outcome(checkout, error=OutcomeError.AMAZON_UNAVAILABLE)
        # No finalize was sent now, so a Completed session for this amount may be an earlier holder's, with
        # its answer lost: the money is this order's, whatever its URL names.
        state = state_of_session(session)
        foreign = another_orders(session, checkout, by_url=session.state != "Completed", failing=_failing(state))
        if foreign is not None:
            return await self._not_this_orders(checkout, foreign)
        fields = session_fields(session)
        if state == State.COMPLETED and session.charge_id:
            return await self._after_completed_session(checkout, session, fields)
        if state is None:  # still Open at Amazon: never finalized, and now it will not be
            state, fields = State.EXPIRED, {"reason_code": "Expired"}
        return Outcome(await self._settle(checkout, self.owner, state, fields))

    async def _reconcile(self, checkout: Checkout, error: AmazonPayError) -> Outcome:
        """Amazon refused or could not be reached: read the session back before deciding."""
        session_id = checkout.checkout_session_id
        assert session_id is not None
        try:
            session = await self.amazon.get_checkout_session(session_id)
        except AmazonPayError as exc:
            if exc.status == 404:
                return await self._not_this_orders(checkout)
            await self.store.release_lease(checkout.ref, self.owner)
            return Outcome(checkout, error=OutcomeError.AMAZON_UNAVAILABLE)
        # A Completed session for this amount may be our own finalize whose answer was lost, whatever its
        # URL names, unless Amazon refused our idempotency key (a 4xx is not what a finalize of ours saved).
        refused = error.status is not None and 400 <= error.status < 500 and error.status not in (408, 425, 429)
        state = state_of_session(session)
        foreign = another_orders(session, checkout, by_url=refused or session.state != "Completed",
                                 failing=_failing(state) or (state is None and refused))
        if foreign is not None:
            # Some other order's session sent with this ref (a stranger's own, or one paid elsewhere): it
            # must neither pay this order nor fail it, which would lock out the buyer's own session.
            return await self._not_this_orders(checkout, f"{foreign}; Amazon said {error.reason_code}")
        fields = session_fields(session)
        if state == State.COMPLETED and session.charge_id:
            return await self._after_completed_session(checkout, session, fields)
        if state is not None:
            return Outcome(await self._settle(checkout, self.owner, state, fields))
        if refused:
            fields["reason_code"] = error.reason_code
            return Outcome(await self._settle(checkout, self.owner, State.FAILED, fields))
        await self.store.release_lease(checkout.ref, self.owner)
        return Outcome(checkout, error=OutcomeError.AMAZON_UNAVAILABLE)

    async def _after_completed_session(
        self, checkout: Checkout, session: CheckoutSession, fields: dict[str, Any]
    ) -> Outcome:
        """Already finalized at Amazon (e.g. we crashed after its answer): pending or completed."""
        assert session.charge_id is not None
        try:
            charge = await self.amazon.get_charge(session.charge_id)
        except AmazonPayError:
            # The charge is unknown. Without pending authorization Amazon completes a session only once
            # it is authorized: paid. With it, the charge may still be AuthorizationInitiated: pending
            # (nothing ships), and the reconciler polls it like a 202's.
            state = State.PENDING if checkout.can_handle_pending else State.COMPLETED
            return Outcome(await self._settle(checkout, self.owner, state, fields))
        charge_state = state_of_charge(charge)
        if charge_state is None:
            state = State.PENDING
        else:
            state = State.COMPLETED if charge_state == State.AUTHORIZED else charge_state
        return Outcome(await self._settle(checkout, self.owner, state, fields))

    async def _not_this_orders(self, checkout: Checkout, why: str | None = None) -> Outcome:
        """Amazon has no such session, or (`why`, logged) it is another order's: unbind, so the buyer's own
        return can still bind, and remember the pair, so a repeated probe costs Amazon nothing. Nothing of
        Amazon's answer is written on the order: whoever holds the ref may make these up."""
        assert checkout.checkout_session_id is not None
        if why is not None:
            log.warning("session %s is not ref %s's (%s): left unbound", mask(checkout.checkout_session_id),
                        mask(checkout.ref), why)
        await self.store.reject_session(checkout.ref, checkout.checkout_session_id, checkout.expires_at, self.clock())
        await self._unbind(checkout)
        return Outcome(checkout, error=OutcomeError.UNKNOWN_SESSION)

    async def _unbind(self, checkout: Checkout) -> None:
        """Back to unbound, releasing our lease, with no event (nothing happened): `created`, or `canceled`
        again if the buyer's cancel is on record (binding reopened it, and the session proved unknown:
        an id made up by whoever holds the ref must not undo the buyer's cancel)."""
        canceled = await self.store.has_event(checkout.ref, CANCELED_EVENT)  # our lease keeps the row as read
        await self.store.transition(checkout.ref, owner=self.owner, now=self.clock(),
                                    state=State.CANCELED if canceled else State.CREATED,
                                    changes={"checkout_session_id": None,
                                             "reason_code": "BuyerCanceled" if canceled else None,
                                             # a pending one's (its 202 stored them): not this order's
                                             "charge_id": None, "charge_permission_id": None, "result": None})

    async def _settle(
        self, checkout: Checkout, owner: str | None, state: State, changes: Mapping[str, Any]
    ) -> Checkout:
        """Store the new state and its event in one transaction; the event says it supersedes an earlier
        cancel when the store holds one (checked in that same transaction)."""
        now = self.clock()
        settled = replace(checkout, state=state, **dict(changes))
        event = event_for(settled, now)
        superseded = superseded_type(state)
        def superseding() -> list[NewEvent]:  # made in the transaction, only if the earlier event is there
            made = event_for(settled, now, supersedes=superseded)
            return [made] if made else []

        after = await self.store.transition(
            checkout.ref, owner=owner, now=now, state=state, changes=changes, events=[event] if event else [],
            instead_after=(superseded, superseding) if superseded and event else None)
        log.info("checkout %s: %s → %s", mask(checkout.ref), checkout.state, state)  # committed: true now
        if event is not None and self.on_event is not None:
            self.on_event()
        return after

    # --- cancel, pending, reconciliation ---------------------------------------------------------

    async def cancel(self, ref: str) -> Outcome | None:
        """The buyer came back through the cancel URL: record it unless the buyer returned from Amazon.

        A checkout with a bound session is never canceled here (a link preview or anyone with the ref may
        load this URL after the buyer paid): its return is finished instead, on the same exactly-once path,
        and the outcome says what is true. Raises Busy like finalize.
        """
        if not is_ref(ref):
            return None
        checkout, canceled = await self._cancel_or_get(ref)  # the common case: one transaction
        for _ in range(3):  # bound → finalize (may unbind an unknown session) → cancel; each at most once
            if checkout is None:
                return None
            if canceled or checkout.state != State.CREATED:
                return Outcome(checkout)
            if checkout.checkout_session_id is not None:
                outcome = await self.finalize(ref, checkout.checkout_session_id)
                if outcome.error != OutcomeError.UNKNOWN_SESSION:
                    return outcome
            checkout, canceled = await self._cancel_or_get(ref)
        return Outcome(checkout) if checkout is not None else None

    async def _cancel_or_get(self, ref: str) -> tuple[Checkout | None, bool]:
        """Cancel atomically if still unbound, created and not leased, else read it: (checkout, canceled?)."""
        now = self.clock()

        def events(canceled: Checkout) -> list[NewEvent]:
            event = event_for(canceled, now)
            return [event] if event else []

        checkout, canceled = await self.store.cancel_or_get(ref, now, {"reason_code": "BuyerCanceled"}, events)
        logs.noted(checkout)
        if canceled:
            log.info("checkout %s: %s → %s", mask(ref), State.CREATED, State.CANCELED)
            if self.on_event is not None:
                self.on_event()
        return checkout, canceled

    async def look_pending(self, checkout: Checkout) -> Checkout:
        """A buyer's page or app asks about a checkout: if pending, refresh_pending, at most once an interval
        per order (router/checkout/probes.py); between, the checkout as stored."""
        if checkout.state != State.PENDING or not self.looks.due(checkout.ref, self.clock()):
            return checkout
        return await self.refresh_pending(checkout)

    async def refresh_pending(self, checkout: Checkout) -> Checkout:
        """Ask Amazon whether a pending authorization has settled; store and report if so."""
        if checkout.state != State.PENDING:
            return checkout
        leased = await self._lease_in(checkout.ref, State.PENDING)
        if leased is None:
            return checkout
        if leased.charge_id is None:  # a 202 whose session named no charge: ask the session for it
            return await self._find_pending_charge(leased)
        try:
            charge = await self.amazon.get_charge(leased.charge_id)
        except AmazonPayError:
            await self.store.release_lease(checkout.ref, self.owner)
            return checkout
        except Exception:  # not an answer either: the lease must not outlive this call
            await self.store.release_lease(checkout.ref, self.owner)
            raise
        state = state_of_charge(charge)
        if state is None:
            await self.store.release_lease(checkout.ref, self.owner)
            return leased
        try:
            if _failing(state):
                foreign = await self._foreign_pending(leased)
                if foreign is not None:
                    return foreign
            return await self._settle(leased, self.owner, state, {"reason_code": charge.reason_code})
        except LeaseLost:  # Amazon outlasted our lease and another refresher went ahead: report the store
            return await self.store.get_checkout(checkout.ref) or leased

    async def _foreign_pending(self, leased: Checkout) -> Checkout | None:
        """A pending authorization that ended unpaid may only end the order if its session is the order's own
        (router/checkout/amazon.py another_orders): one a stranger sent with this ref went pending as Amazon
        took the finalize, and must not decline the order. Read (one getCheckoutSession, only on this rare
        step); not the order's: unbound, the order open again for the buyer's own session. None: it is."""
        assert leased.checkout_session_id is not None
        try:
            session = await self.amazon.get_checkout_session(leased.checkout_session_id)
        except AmazonPayError:
            return None  # unknown: settled as Amazon said, as before
        foreign = another_orders(session, leased, failing=True)
        if foreign is None:
            return None
        await self._not_this_orders(leased, f"{foreign}; declined after pending")
        return await self._stored(leased.ref)

    async def _find_pending_charge(self, leased: Checkout) -> Checkout:
        """Holding the lease of a pending checkout without a charge id: store the one its session names
        (no event: the state is unchanged), or its final state if Amazon has closed it."""
        assert leased.checkout_session_id is not None  # pending only after a finalize of a bound session
        try:
            session = await self.amazon.get_checkout_session(leased.checkout_session_id)
            state = state_of_session(session)
            if session.charge_id is not None:
                changes = {"charge_id": session.charge_id, "charge_permission_id": session.charge_permission_id}
                return await self.store.transition(leased.ref, owner=self.owner, now=self.clock(),
                                                   state=State.PENDING, changes=changes)
            if state is not None and state != State.COMPLETED:  # canceled, declined or expired at Amazon
                foreign = another_orders(session, leased, failing=True)
                if foreign is not None:
                    await self._not_this_orders(leased, f"{foreign}; declined after pending")
                    return await self._stored(leased.ref)
                return await self._settle(leased, self.owner, state, session_fields(session))
        except AmazonPayError:
            pass
        except LeaseLost:
            return await self.store.get_checkout(leased.ref) or leased
        except Exception:  # not an answer either: the lease must not outlive this call
            await self.store.release_lease(leased.ref, self.owner)
            raise
        await self.store.release_lease(leased.ref, self.owner)
        return leased

    async def _lease_in(self, ref: str, state: State) -> Checkout | None:
        """The lease, if free, of a checkout that is (still) in `state` as the lease is taken: a row
        listed earlier may have moved on since (another instance finalized or settled it)."""
        with self.unsure.taking(ref, leading=ref in self._inflight) as reclaim:
            leased = await self.store.try_lease(ref, self.owner, self.clock(), self.lease_seconds, reclaim=reclaim)
            if leased is not None or reclaim:
                self.unsure.settled(ref)
            if leased is not None and leased.state != state:
                await self.store.release_lease(ref, self.owner)
                return None
        return leased

    async def resume(self, checkout: Checkout) -> Checkout:
        """Finish a bound checkout whose holder died (reconciler): same key, Amazon's saved answer."""
        if checkout.state != State.CREATED or checkout.checkout_session_id is None:
            return checkout
        if checkout.ref in self._inflight:  # not abandoned: this process is still waiting on Amazon
            return checkout
        leased = await self._lease_in(checkout.ref, State.CREATED)
        if leased is None:
            return checkout
        return (await self._lead(leased)).checkout

    async def expire(self, checkout: Checkout) -> Checkout:
        """A checkout past its window: unbound, Amazon has canceled any session by now; bound, Amazon
        decides (a holder that died may have finalized it), as in resume."""
        if checkout.state != State.CREATED or checkout.expires_at > self.clock():
            return checkout
        if checkout.checkout_session_id is not None:
            return await self.resume(checkout)
        now = self.clock()
        expired = replace(checkout, state=State.EXPIRED, reason_code="Expired")
        event = event_for(expired, now)
        events = [event] if event is not None else []
        # Only if still created and unbound as the row is written: a return may have bound (and paid) it,
        # or the buyer canceled it, since it was listed.
        after = await self.store.expire_unbound(checkout.ref, now, {"reason_code": "Expired"}, events)
        if after is None:
            return await self.store.get_checkout(checkout.ref) or checkout
        log.info("checkout %s: %s → %s", mask(checkout.ref), checkout.state, State.EXPIRED)
        if events and self.on_event is not None:
            self.on_event()
        return after


def _failure(exc: AmazonPayError) -> str:
    """What a failed finalize log line says: Amazon's answer, no answer, or a refusal of this process's
    own (quota, breaker, spent deadline), which must not read as Amazon's 429."""
    if exc.local:
        sent = f" after {exc.attempts} attempt(s) sent" if exc.attempts else ""
        return f"refused in this process, not by Amazon Pay{sent}: {exc.message}"
    if exc.status is None:  # our own words (no answer, the deadline): no Amazon text in them
        return f"{exc.message} (attempts={exc.attempts})"
    return f"status={exc.status} reason={exc.reason_code} request={exc.request_id}"


def _failing(state: State | None) -> bool:
    """Whether settling in `state` ends the order unpaid (declined, canceled, expired, failed)."""
    return state in (State.DECLINED, State.CANCELED, State.EXPIRED, State.FAILED)
