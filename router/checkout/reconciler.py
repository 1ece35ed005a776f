"""Background reconciliation: pending authorizations, abandoned finalizes and expired checkouts.

Everything it needs is in the store, so after a restart it picks up where it left off: a pending
checkout is polled again, and a bound checkout whose finalize holder died is finished with the same
idempotency key (Amazon answers with its saved response; nothing is charged twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from router.checkout.model import CheckoutError, State
from router.checkout.service import CheckoutService
from router.redact import mask
from router.store.base import StoreError

log = logging.getLogger("router.checkout.reconciler")


class Reconciler:
    def __init__(
        self,
        service: CheckoutService,
        *,
        interval: float = 2.0,
        resume_after: float = 15.0,
        max_poll_delay: float = 300.0,
        retain_seconds: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.store = service.store
        self.interval = interval
        self.resume_after = resume_after  # a bound, unfinished checkout untouched this long is abandoned
        self.max_poll_delay = max_poll_delay
        self.retain_seconds = retain_seconds  # buyer details are purged this long after the last update
        self.clock = clock
        self._polls: dict[str, tuple[int, float]] = {}  # ref → (polls so far, next poll time)

    async def run_once(self) -> int:
        """One pass; returns how many checkouts changed state."""
        changed = 0
        now = self.clock()
        for checkout in await self.store.list_checkouts([State.PENDING], now=now):
            polls, due = self._polls.get(checkout.ref, (0, 0.0))
            if due > now:
                continue
            after = await self.service.refresh_pending(checkout)
            if after.state != State.PENDING:
                self._polls.pop(checkout.ref, None)
                changed += 1
            else:
                delay = min(self.interval * 2**polls, self.max_poll_delay)
                self._polls[checkout.ref] = (polls + 1, now + delay * random.uniform(0.8, 1.2))
        for checkout in await self.store.list_checkouts([State.CREATED], now=now, bound_only=True):
            if checkout.updated_at <= now - self.resume_after or checkout.expires_at <= now:
                log.info("resuming abandoned finalize of %s", mask(checkout.ref))
                changed += (await self.service.resume(checkout)).state != State.CREATED
        for checkout in await self.store.list_checkouts([State.CREATED], now=now, bound_only=False):
            if checkout.expires_at > now:
                continue
            changed += (await self.service.expire(checkout)).state != State.CREATED
        await self.store.purge_buyer_details(now - self.retain_seconds)
        return changed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except (StoreError, CheckoutError) as exc:
                log.warning("reconciler pass failed: %s", type(exc).__name__)
            except Exception:  # never let one bad pass end reconciliation for the process
                log.exception("reconciler pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
