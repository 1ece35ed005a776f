"""When a failed webhook delivery is tried again: exponential delays with jitter, then park."""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_DELAYS = (10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)


@dataclass(frozen=True)
class RetrySchedule:
    """When to try again after a failed attempt.

    `delays[i]` follows the (i+1)-th failed attempt; past the end the last delay repeats. Each delay
    is spread by ±`jitter` (a fraction) so that events failing together do not retry in lockstep.
    With the defaults, 16 attempts span about 2.7 days.
    """

    delays: tuple[float, ...] = DEFAULT_DELAYS
    max_attempts: int = 16
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.delays or any(not d > 0 for d in self.delays):
            raise ValueError("RetrySchedule.delays must be a non-empty sequence of positive seconds")
        if self.max_attempts < 1:
            raise ValueError("RetrySchedule.max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("RetrySchedule.jitter must be a fraction in [0, 1)")

    def next_delay(self, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based); None: park the event."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        if attempt >= self.max_attempts:
            return None
        base = self.delays[min(attempt, len(self.delays)) - 1]
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)

    def total_span(self) -> float:
        """Seconds between the first and the last attempt, without jitter."""
        return sum(self.delays[min(a, len(self.delays)) - 1] for a in range(1, self.max_attempts))


