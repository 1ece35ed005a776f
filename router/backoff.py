"""Capped exponential backoff with jitter, and a poll loop built on it (pure: no clock or sleep of its own
unless the caller takes the defaults)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

NO_JITTER = (1.0, 1.0)
MAX_EXPONENT = 1000  # 2.0 ** 1024 raises OverflowError; any real cap is reached long before this


@dataclass(frozen=True)
class Backoff:
    """Delay after the n-th failure (1-based): base * 2**(n-1), capped at `cap`, then multiplied by a
    factor drawn uniformly from `jitter` = (low, high); (1, 1) is no jitter."""

    base: float
    cap: float
    jitter: tuple[float, float] = NO_JITTER

    def __post_init__(self) -> None:
        low, high = self.jitter
        if not (self.base >= 0 and self.cap >= 0 and 0 <= low <= high):
            raise ValueError("Backoff needs base >= 0, cap >= 0 and 0 <= jitter low <= high")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), MAX_EXPONENT))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """`rand` returns a float in [0, 1) (random.random by default; inject one in tests)."""
        low, high = self.jitter
        return self.ceiling(attempt) * (low + (high - low) * rand())


async def poll(
    step: Callable[[int], Awaitable[T | None]],
    backoff: Backoff,
    wait_seconds: float,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T | None:
    """Call `step(1)`, `step(2)`, ... until one returns a value, sleeping `backoff.delay(n)` after the n-th;
    None once `wait_seconds` have passed since the call (a step is never cut short)."""
    deadline = clock() + wait_seconds
    for attempt in itertools.count(1):
        result = await step(attempt)
        if result is not None:
            return result
        if clock() > deadline:
            return None
        await sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")  # itertools.count never ends
