"""The retry schedule and the other pure parts of delivery."""

from __future__ import annotations

import itertools
import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.store.base import OutboxEvent
from router.webhooks.admin import event_summary
from router.webhooks.schedule import DEFAULT_DELAYS, RetrySchedule
from router.webhooks.worker import describe_exception, describe_status


def test_default_schedule_grows_to_hours_and_spans_days() -> None:
    schedule = RetrySchedule(jitter=0)
    rng = random.Random(1)
    delays = [schedule.next_delay(a, rng) for a in range(1, 16)]
    assert delays[:9] == [10, 30, 120, 600, 1800, 3600, 7200, 14400, 28800]
    assert delays[9:] == [28800] * 6  # the last delay repeats
    assert schedule.next_delay(16, rng) is None  # 16th attempt failed: park
    assert schedule.next_delay(40, rng) is None
    assert 2 * 86400 <= schedule.total_span() <= 3 * 86400
    assert schedule.total_span() == sum(d for d in delays if d is not None)


def test_delays_never_shrink_without_jitter() -> None:
    schedule = RetrySchedule(jitter=0)
    rng = random.Random(0)
    delays = [schedule.next_delay(a, rng) for a in range(1, schedule.max_attempts)]
    assert all(b is not None and a is not None and b >= a for a, b in itertools.pairwise(delays))


@given(attempt=st.integers(min_value=1, max_value=15), seed=st.integers())
def test_jitter_stays_within_bounds(attempt: int, seed: int) -> None:
    schedule = RetrySchedule()
    delay = schedule.next_delay(attempt, random.Random(seed))
    base = DEFAULT_DELAYS[min(attempt, len(DEFAULT_DELAYS)) - 1]
    assert delay is not None
    assert base * 0.8 <= delay <= base * 1.2


def test_jitter_spreads_retries() -> None:
    rng = random.Random(7)
    delays = {RetrySchedule().next_delay(1, rng) for _ in range(50)}
    assert len(delays) > 40


def test_custom_schedule() -> None:
    schedule = RetrySchedule(delays=(1.0, 2.0), max_attempts=4, jitter=0)
    rng = random.Random(0)
    assert [schedule.next_delay(a, rng) for a in (1, 2, 3, 4)] == [1.0, 2.0, 2.0, None]
    assert RetrySchedule(max_attempts=1).next_delay(1, rng) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delays": ()}, "delays"),
        ({"delays": (1.0, 0.0)}, "delays"),
        ({"delays": (-1.0,)}, "delays"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_bad_schedule_is_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetrySchedule(**kwargs)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        RetrySchedule().next_delay(0, random.Random())


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (299, True), (199, False),
                                            (301, False), (400, False), (500, False), (503, False)])
def test_only_2xx_is_success(status: int, ok: bool) -> None:
    result = describe_status(status)
    assert result.ok is ok
    assert result.error == (None if ok else f"HTTP {status}")


def test_errors_name_the_class_not_the_message() -> None:
    secret_url = "https://user:hunter2@merchant.example/hook"
    assert describe_exception(httpx.ConnectError(f"failed to reach {secret_url}")) == "ConnectError"
    assert describe_exception(httpx.ReadTimeout("slow")) == "ReadTimeout"
    assert describe_exception(TimeoutError()) == "Timeout"


def test_event_summary_masks_the_ref_and_hides_the_body() -> None:
    event = OutboxEvent(id="evt_1", ref="ref_0123456789abcdefghijkl", type="checkout.failed",
                        created=1_700_000_000, body=b'{"secret":"body"}', seq=3, status="failed",
                        attempts=16, next_attempt_at=1_700_000_500, last_error="HTTP 500", request_id="rq-1",
                        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    summary = event_summary(event)
    assert summary == {
        "id": "evt_1", "type": "checkout.failed", "ref": "ref_…ijkl", "status": "failed",
        "attempts": 16, "next_attempt_at": None, "last_error": "HTTP 500",
        "created": "2023-11-14T22:13:20Z", "delivered_at": None, "request_id": "rq-1",
    }
    pending = event_summary(OutboxEvent(id="e", ref="r", type="t", created=0, body=b"", seq=1,
                                        next_attempt_at=60))
    assert pending["next_attempt_at"] == "1970-01-01T00:01:00Z"
    assert pending["ref"] == "…"
