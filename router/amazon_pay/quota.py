"""Amazon Pay's per-operation quotas as client-side token buckets, one set per process.

Amazon throttles each merchant per operation with a token bucket (a burst, restored at a rate per
second) and answers 429 TooManyRequests beyond it. Spending our own bucket first turns a burst of
buyers into a short wait here instead of 429s. Buyers reserve tokens ahead (the bucket may go into
debt, so waiting buyers are served in arrival order); background work (the reconciler, marked with
`background()`) only takes a token that no buyer has reserved, and at most `background_share` of the
quota, so Amazon calls no buyer caused never crowd out the ones a buyer did. A probe (an order trying a
new session id after its first, marked with `probing()`: a stale link, or whoever holds the ref making
ids up, router/checkout/probes.py) does the same within `probe_share`, in a bucket of its own: a flood of
made-up ids across many orders costs the buyers who bring their first id nothing, and leaves the
reconciler its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from router.amazon_pay.errors import AmazonPayThrottled
from router.amazon_pay.models import Environment
from router.amazon_pay.retry import MAX_RETRY_AFTER

LOGGER = logging.getLogger("router.amazon_pay")

FINALIZE = "finalizeCheckoutSession"
GET_SESSION = "getCheckoutSession"
GET_CHARGE = "getCharge"
OPERATIONS = (FINALIZE, GET_SESSION, GET_CHARGE)


@dataclass(frozen=True)
class Limit:
    burst: float  # Amazon's "max quota": calls that may be made at once
    rate: float  # Amazon's "restore rate": tokens restored per second

    def __post_init__(self) -> None:
        if not (self.burst >= 1 and self.rate > 0):
            raise ValueError(f"a quota needs burst >= 1 and rate > 0, got {self.burst}/{self.rate}")

    def scaled(self, fraction: float) -> Limit:
        """This process's part of a quota shared by several (a bucket always holds one whole call)."""
        return Limit(max(1.0, self.burst * fraction), self.rate * fraction)


# "API throttling limits" of the v2 reference; finalize is not listed: Complete Checkout Session's figures.
DEFAULT_LIMITS: dict[Environment, dict[str, Limit]] = {
    "live": {FINALIZE: Limit(20, 4), GET_SESSION: Limit(40, 8), GET_CHARGE: Limit(20, 4)},
    "sandbox": {FINALIZE: Limit(2, 1), GET_SESSION: Limit(10, 1), GET_CHARGE: Limit(5, 1)},
}


def limits_for(environment: Environment, *, fraction: float = 1.0,
               overrides: Mapping[str, Limit] | None = None) -> dict[str, Limit]:
    """Amazon's documented figures (or `overrides`), times this process's `fraction` of the merchant's quota."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    limits = {**DEFAULT_LIMITS[environment], **(overrides or {})}
    return {op: limit.scaled(fraction) for op, limit in limits.items()}


_BACKGROUND: ContextVar[bool] = ContextVar("amazon_pay_background", default=False)
_PROBING: ContextVar[bool] = ContextVar("amazon_pay_probing", default=False)


@contextlib.contextmanager
def _marked(mark: ContextVar[bool]) -> Iterator[None]:
    token = mark.set(True)
    try:
        yield
    finally:
        mark.reset(token)


def background() -> contextlib.AbstractContextManager[None]:
    """Mark the Amazon calls made inside (in this task) as background work: lower priority."""
    return _marked(_BACKGROUND)


def in_background() -> bool:
    return _BACKGROUND.get()


def probing() -> contextlib.AbstractContextManager[None]:
    """Mark the Amazon calls made inside (in this task) as a probe's: a buyer's call (the breaker treats it
    as one) that takes only tokens no buyer reserved, within the probes' share."""
    return _marked(_PROBING)


def is_probing() -> bool:
    return _PROBING.get()


class TokenBucket:
    """Tokens refill continuously up to `burst`; a negative level is tokens already promised."""

    def __init__(self, limit: Limit, now: float) -> None:
        self.limit = limit
        self.tokens = limit.burst
        self.updated = now
        self.blocked_until = 0.0  # after a 429: nobody sends before this

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.limit.burst, self.tokens + (now - self.updated) * self.limit.rate)
            self.updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until one more token can be taken (0: now)."""
        self.refill(now)
        # A hair below one whole token counts as one, so float rounding never asks for a 1e-16 s sleep.
        shortfall = 0.0 if self.tokens >= 1.0 - 1e-9 else (1.0 - self.tokens) / self.limit.rate
        return max(shortfall, self.blocked_until - now)

    def reserve(self, now: float) -> float:
        """Take a token now or promise the next free one; returns how long to wait before using it."""
        wait = self.wait_time(now)
        self.tokens -= 1.0
        return wait

    def drain(self, now: float, pause: float) -> bool:
        """Amazon said 429: it holds fewer tokens than we thought, so start empty and pause. True when
        this starts a hold (none was in force): a 429 met during one only lengthens it."""
        self.refill(now)
        self.tokens = min(self.tokens, 0.0)
        started = self.blocked_until <= now
        self.blocked_until = max(self.blocked_until, now + pause)
        return started


class Quota:
    """A bucket per operation shared by every request of the process, plus background's and probes' caps."""

    def __init__(
        self,
        limits: Mapping[str, Limit],
        *,
        background_share: float = 0.5,
        probe_share: float = 0.25,
        max_wait: float = 2.0,
        max_hold: float = MAX_RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 0 < background_share <= 1:
            raise ValueError(f"background_share must be in (0, 1], got {background_share}")
        if not 0 < probe_share <= 1:
            raise ValueError(f"probe_share must be in (0, 1], got {probe_share}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        if not max_hold > 0:
            raise ValueError(f"max_hold must be > 0, got {max_hold}")
        self.max_wait = max_wait
        self.max_hold = max_hold
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._buckets = {op: TokenBucket(limit, now) for op, limit in limits.items()}
        self._background = {op: TokenBucket(limit.scaled(background_share), now) for op, limit in limits.items()}
        self._probes = {op: TokenBucket(limit.scaled(probe_share), now) for op, limit in limits.items()}

    def limit(self, operation: str) -> Limit | None:
        bucket = self._buckets.get(operation)
        return bucket.limit if bucket else None

    async def acquire(self, operation: str, within: float | None = None) -> None:
        """Wait for a token (at most max_wait, or `within` seconds if shorter), else AmazonPayThrottled."""
        if operation not in self._buckets:
            return
        now = self._clock()
        until = now + (self.max_wait if within is None else max(0.0, min(self.max_wait, within)))
        if in_background() or is_probing():
            share = self._background if in_background() else self._probes
            await self._acquire_unreserved(operation, share[operation], until)
            return
        bucket = self._buckets[operation]
        if now + bucket.wait_time(now) > until:
            raise self._throttled(operation)
        wait = bucket.reserve(now)  # promised: later buyers queue behind this one
        if wait > 0:
            await self._sleep(wait)

    async def _acquire_unreserved(self, operation: str, share: TokenBucket, until: float) -> None:
        """Only a token no buyer has reserved, within `share`; never queues ahead of buyers."""
        main = self._buckets[operation]
        while True:
            now = self._clock()
            wait = max(main.wait_time(now), share.wait_time(now))
            if wait <= 0:
                main.reserve(now)
                share.reserve(now)
                return
            if now + wait > until:
                raise self._throttled(operation)
            await self._sleep(wait)

    def throttled(self, operation: str, retry_after: float | None) -> None:
        """Amazon answered 429: empty the bucket and hold everyone back for Retry-After (or one token), at
        most max_hold; one WARNING as a hold starts, none for the 429s met while it lasts."""
        bucket = self._buckets.get(operation)
        if bucket is None:
            return
        asked = retry_after if retry_after is not None else 1.0 / bucket.limit.rate
        pause = min(asked, self.max_hold)
        if bucket.drain(self._clock(), pause):
            capped = f" (Retry-After {asked:g} s, capped)" if asked > pause else ""
            LOGGER.warning("amazon_pay %s: Amazon Pay answered 429; this process holds these calls back for "
                           "%.1f s%s", operation, pause, capped)

    def _throttled(self, operation: str) -> AmazonPayThrottled:
        """The local refusal: no reason code of Amazon's, and a message that says it is ours."""
        held = self._buckets[operation].blocked_until - self._clock()
        why = (f"held back in this process for {held:.1f} s more after Amazon Pay's 429" if held > 0
               else "this process's Amazon Pay quota is used up")
        return AmazonPayThrottled(f"{operation}: {why}; not sent, retry shortly", attempts=0)
