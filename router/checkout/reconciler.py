"""Background reconciliation: pending authorizations, abandoned finalizes and expired checkouts.

Everything it needs is in the store, so after a restart it picks up where it left off: a pending
checkout is polled again, and a bound checkout whose finalize holder died is finished with the same
idempotency key (Amazon answers with its saved response; nothing is charged twice).

Every Amazon call made here is background work (`quota.background()`): it yields to buyers and stays
within its share of the merchant's quota. While the circuit breaker is open (Amazon failing), the
passes skip Amazon altogether. Resumes back off per checkout (resume_after, doubling, jitter, capped
at MAX_RESUME_DELAY); the schedule is in the store, so a restart or another instance keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import router.metrics as metrics
from router import logs
from router.amazon_pay import quota
from router.amazon_pay.breaker import CircuitBreaker
from router.backoff import Backoff
from router.checkout.model import Checkout, CheckoutError, State
from router.checkout.service import CheckoutService
from router.redact import error_text, mask
from router.store.base import DueResume, StoreError

log = logging.getLogger("router.checkout.reconciler")

MAX_RESUME_DELAY = 15 * 60.0
PAGE = 100  # checkouts read from the store at a time


def resume_delay(resume_after: float, attempts: int, rand: Callable[[], float]) -> float:
    """Wait after the `attempts`-th resume: resume_after * 2**attempts, capped, minus up to 20 % jitter."""
    return Backoff(resume_after, MAX_RESUME_DELAY, (0.8, 1.0)).delay(attempts + 1, rand)


def _about(checkout: Checkout) -> contextlib.AbstractContextManager[None]:
    """The log lines of one checkout's step carry its masked ref and its merchant_reference."""
    return logs.scope(ref=mask(checkout.ref), merchant_reference=checkout.merchant_reference)


class Reconciler:
    def __init__(
        self,
        service: CheckoutService,
        *,
        interval: float = 2.0,
        resume_after: float = 15.0,
        max_poll_delay: float = 300.0,
        retain_seconds: float = 30 * 86400.0,
        events_retain_seconds: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
        breaker: CircuitBreaker | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.service = service
        self.store = service.store
        self.interval = interval
        self.resume_after = resume_after  # a bound, unfinished checkout untouched this long is abandoned
        self.max_poll_delay = max_poll_delay
        self.retain_seconds = retain_seconds  # buyer details are purged this long after the last update
        self.events_retain_seconds = events_retain_seconds  # delivered events: this long after delivery
        self.clock = clock
        self.breaker = breaker  # open: Amazon is failing, leave it alone until the breaker half-opens
        self.rand = rand
        self._polls: dict[str, tuple[int, float]] = {}  # ref → (polls so far, next poll time)
        self._poll_backoff = Backoff(interval, max_poll_delay, (0.8, 1.2))
        self._stop = asyncio.Event()  # set: end the pass after the checkout at hand (a graceful stop)

    async def run_once(self) -> int:
        """One pass; returns how many checkouts changed state."""
        now = self.clock()
        with quota.background():
            changed = await self._refresh_pending(now)
            changed += await self._resume_abandoned(now)
        for checkout in await self.store.list_expired_unbound(now=now):  # settled without asking Amazon
            if self._stop.is_set():
                break
            after = await self._step(checkout, self.service.expire)
            changed += after is not None and after.state != State.CREATED
        await self.store.purge_buyer_details(now - self.retain_seconds)
        await self.store.purge_delivered_events(now - self.events_retain_seconds)
        return changed

    async def _step(self, checkout: Checkout, step: Callable[[Checkout], Awaitable[Checkout]]) -> Checkout | None:
        """One checkout's step of the pass; None if it failed unexpectedly. That failure is logged and the
        pass goes on: one odd checkout must not stop every other one's reconciliation, pass after pass.
        A store failure still ends the pass (every step after it would fail the same way)."""
        with _about(checkout):
            try:
                return await step(checkout)
            except (StoreError, asyncio.CancelledError):
                raise
            except Exception:
                log.exception("reconciling %s failed; the pass goes on", mask(checkout.ref))
                return None

    def _amazon_paused(self) -> bool:
        return self.breaker is not None and self.breaker.state == "open"

    async def _pending(self, now: float) -> AsyncIterator[Checkout]:
        """Every pending checkout, page by page: those waiting out their poll backoff take no one's turn."""
        page = await self.store.list_checkouts([State.PENDING], now=now, limit=PAGE)
        while page:
            for checkout in page:
                yield checkout
            page = [] if len(page) < PAGE else await self.store.list_checkouts(
                [State.PENDING], now=now, limit=PAGE, after=page[-1])

    async def _refresh_pending(self, now: float) -> int:
        changed = 0
        listed: set[str] = set()
        async for checkout in self._pending(now):
            if self._stop.is_set():
                return changed
            listed.add(checkout.ref)
            polls, due = self._polls.get(checkout.ref, (0, 0.0))
            if due > now or self._amazon_paused():
                continue
            after = await self._step(checkout, self.service.refresh_pending)
            if after is not None and after.state != State.PENDING:
                self._polls.pop(checkout.ref, None)
                changed += 1
            else:  # still pending, or the poll failed: the next one backs off either way
                self._polls[checkout.ref] = (polls + 1, now + self._poll_backoff.delay(polls + 1))
        # Forget the backoff of checkouts no longer pending (settled by another instance or a buyer's
        # reload) or leased right now (listed again, and polled at once, when free).
        self._polls = {ref: due for ref, due in self._polls.items() if ref in listed}
        return changed

    async def _resume_abandoned(self, now: float) -> int:
        changed = 0
        for due in await self.store.list_due_resumes(now=now, resume_after=self.resume_after):
            if self._stop.is_set():
                break
            if self._amazon_paused():  # past the window too: only Amazon can say whether it was paid
                continue
            if await self._claim(due, now):
                with _about(due.checkout):
                    log.info("resuming abandoned finalize of %s (resume %d)", mask(due.checkout.ref),
                             due.attempts + 1)
                after = await self._step(due.checkout, self.service.resume)
                changed += after is not None and after.state != State.CREATED
        return changed

    async def _claim(self, due: DueResume, now: float) -> bool:
        """Book this resume and the next one's time before calling Amazon: a crash mid-call or another
        instance reading the same row cannot turn one slot into several calls."""
        next_at = now + resume_delay(self.resume_after, due.attempts + 1, self.rand)
        return await self.store.claim_resume(due.checkout.ref, due.attempts, next_at)

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop  # a pass in progress ends after the checkout at hand
        while not stop.is_set():
            try:
                await self.run_once()
                metrics.reconciler_pass("ok")
            except (StoreError, CheckoutError) as exc:
                log.warning("reconciler pass failed: %s", error_text(exc))
                metrics.reconciler_pass("error")
            except Exception:  # never let one bad pass end reconciliation for the process
                log.exception("reconciler pass failed")
                metrics.reconciler_pass("error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
