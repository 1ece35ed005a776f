"""Pure retry arithmetic: backoff delays and Retry-After parsing (no clocks or sleeps of its own)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from router.amazon_pay.models import RetryPolicy
from router.backoff import NO_JITTER, Backoff

# The longest Retry-After obeyed, here and in the quota's hold (quota.py). Amazon's buckets restore in
# seconds (the slowest documented one, sandbox getCheckoutSession, is full again 10 s after empty): a
# longer Retry-After is a proxy's or a clock's mistake, and obeying it would refuse every return of the
# process for that long. 30 s is the breaker's cool-down; if Amazon still throttles, its next 429 starts
# another hold, so a throttled Amazon sees one call per operation per 30 s from here.
MAX_RETRY_AFTER = 30.0


def backoff_delay(policy: RetryPolicy, attempt: int, rand: Callable[[], float]) -> float:
    """Delay after failed attempt `attempt` (1-based): base * 2**(attempt-1), capped; jitter: 50-100 %."""
    jitter = (0.5, 1.0) if policy.jitter else NO_JITTER
    return Backoff(policy.base_delay, policy.max_delay, jitter).delay(attempt, rand)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or invalid.
    As Amazon said it: callers cap it at MAX_RETRY_AFTER (and may log what was asked)."""
    if not value:
        return None
    text = value.strip()
    if re.fullmatch(r"\d{1,9}(\.\d{1,6})?", text):  # delta-seconds (fractions tolerated, for fast tests)
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def next_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rand: Callable[[], float]
) -> float:
    """Retry-After (at most MAX_RETRY_AFTER), when the server gave one, replaces the computed backoff."""
    return min(retry_after, MAX_RETRY_AFTER) if retry_after is not None else backoff_delay(policy, attempt, rand)
