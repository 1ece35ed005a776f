"""A circuit breaker over Amazon Pay's health, so background work pauses during an outage.

Closed: calls flow. `threshold` failures (5xx, 429, no answer) within `window` seconds open it; while
open, background calls are not sent at all and buyers' calls are sent once, without retries. After
`cooldown` seconds it is half-open: one background probe may go; its success (or any answer that
shows Amazon is up) closes the breaker, its failure opens it for another cooldown. A probe that was
admitted but never sent (the quota refused it) frees its slot; one whose outcome never arrives (its
task ended) is given up after another cooldown, so background work cannot stay paused for good.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


def is_outage_status(status: int | None) -> bool:
    """What counts against Amazon's health: no answer, 429 (we are throttled) and every 5xx."""
    return status is None or status == 429 or status >= 500


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int = 5,
        window: float = 30.0,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or window <= 0 or cooldown <= 0:
            raise ValueError("CircuitBreaker needs threshold >= 1, window > 0 and cooldown > 0")
        self.threshold = threshold
        self.window = window
        self.cooldown = cooldown
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probe_since: float | None = None  # when the outstanding half-open probe was admitted

    @property
    def state(self) -> BreakerState:
        """For metrics and for the reconciler: no side effects."""
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.cooldown else "open"

    def allow_background(self) -> bool:
        """Whether a background call may be sent now; in half-open state only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        now = self._clock()
        if state == "half_open" and (self._probe_since is None or now - self._probe_since >= self.cooldown):
            self._probe_since = now
            return True
        return False

    def probe_not_sent(self) -> None:
        """The call allow_background admitted did not go out: another may probe at once."""
        self._probe_since = None

    def record(self, status: int | None) -> None:
        """The outcome of one attempt: an HTTP status, or None when Amazon did not answer."""
        if is_outage_status(status):
            self._failure()
        else:
            self._success()

    def _success(self) -> None:
        self._failures.clear()
        self._opened_at = None
        self._probe_since = None

    def _failure(self) -> None:
        now = self._clock()
        self._probe_since = None
        if self._opened_at is not None:  # a failed probe (or a buyer's try) while open: stay open longer
            self._opened_at = now
            return
        self._failures.append(now)
        while self._failures and self._failures[0] <= now - self.window:
            self._failures.popleft()
        if len(self._failures) >= self.threshold:
            self._opened_at = now
            self._failures.clear()
