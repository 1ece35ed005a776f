"""The client-side quota: token buckets, buyer priority, background share; an injected clock, no sleeps."""

from __future__ import annotations

import asyncio
import logging

import pytest

from router.amazon_pay import quota
from router.amazon_pay.errors import AmazonPayError, AmazonPayThrottled
from router.amazon_pay.quota import DEFAULT_LIMITS, FINALIZE, GET_SESSION, Limit, Quota, TokenBucket, limits_for
from router.amazon_pay.retry import MAX_RETRY_AFTER


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class StillTime(FakeTime):
    """A clock that stands still while callers sleep (they sleep at the same instant, concurrently)."""

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


def make_quota(clock: FakeTime, burst: float = 4, rate: float = 2, **options: float) -> Quota:
    return Quota({FINALIZE: Limit(burst, rate)}, clock=clock, sleep=clock.sleep, **options)


def test_documented_defaults_by_environment() -> None:
    assert DEFAULT_LIMITS["live"][FINALIZE] == Limit(20, 4)  # as Complete Checkout Session
    assert DEFAULT_LIMITS["live"][GET_SESSION] == Limit(40, 8)
    assert DEFAULT_LIMITS["sandbox"][FINALIZE] == Limit(2, 1)
    assert DEFAULT_LIMITS["sandbox"][GET_SESSION] == Limit(10, 1)


def test_several_instances_split_the_quota_and_overrides_win() -> None:
    limits = limits_for("live", fraction=0.25, overrides={GET_SESSION: Limit(100, 20)})
    assert limits[FINALIZE] == Limit(5, 1)
    assert limits[GET_SESSION] == Limit(25, 5)
    assert limits_for("sandbox", fraction=0.1)[FINALIZE] == Limit(1, 0.1)  # always one whole call
    with pytest.raises(ValueError):
        limits_for("live", fraction=0)


def test_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(Limit(2, 1), now=0.0)
    assert bucket.reserve(0.0) == 0 and bucket.reserve(0.0) == 0
    assert bucket.wait_time(0.0) == pytest.approx(1.0)
    assert bucket.wait_time(0.5) == pytest.approx(0.5)
    assert bucket.wait_time(100.0) == 0
    assert bucket.tokens == 2  # never above the burst


def test_a_429_empties_the_bucket_and_pauses_for_retry_after() -> None:
    bucket = TokenBucket(Limit(20, 4), now=0.0)
    bucket.drain(0.0, pause=3.0)
    assert bucket.wait_time(0.0) == pytest.approx(3.0)
    assert bucket.wait_time(3.0) == 0  # 12 tokens restored meanwhile


async def test_buyers_get_the_burst_then_wait_in_turn_then_are_refused() -> None:
    clock = StillTime()
    q = make_quota(clock, burst=2, rate=1, max_wait=2.0)
    await asyncio.gather(*(q.acquire(FINALIZE) for _ in range(4)))  # 2 at once, then 1 s and 2 s
    assert sorted(clock.slept) == pytest.approx([1.0, 2.0])
    with pytest.raises(AmazonPayThrottled) as caught:
        await q.acquire(FINALIZE)  # the next free token is 3 s away: beyond max_wait
    assert isinstance(caught.value, AmazonPayError) and caught.value.status is None


async def test_a_shorter_deadline_bounds_the_wait() -> None:
    clock = FakeTime()
    q = make_quota(clock, burst=1, rate=1, max_wait=5.0)
    await q.acquire(FINALIZE)
    with pytest.raises(AmazonPayThrottled):
        await q.acquire(FINALIZE, within=0.5)
    await q.acquire(FINALIZE, within=1.0)
    assert clock.slept == [pytest.approx(1.0)]


async def test_background_stays_within_its_share() -> None:
    clock = FakeTime()
    q = make_quota(clock, burst=10, rate=2, background_share=0.5, max_wait=0.0)
    taken = 0
    with quota.background():
        for _ in range(10):
            try:
                await q.acquire(FINALIZE)
                taken += 1
            except AmazonPayThrottled:
                pass
    assert taken == 5  # half the burst
    for _ in range(5):  # the other half is still there for buyers, at once
        await q.acquire(FINALIZE)
    assert clock.slept == []


async def test_background_never_takes_a_token_a_buyer_reserved() -> None:
    clock = StillTime()
    q = make_quota(clock, burst=1, rate=1, background_share=1.0, max_wait=2.0)
    await q.acquire(FINALIZE)  # the bucket is empty now

    async def background() -> None:
        with quota.background():
            await q.acquire(FINALIZE)

    task = asyncio.create_task(background())  # first in line, but background: it waits for a free token
    await asyncio.sleep(0)
    buyers = [asyncio.create_task(q.acquire(FINALIZE)) for _ in range(2)]  # they reserve the next two
    await asyncio.sleep(0)
    clock.now += 1.0  # one token restored: it is the first buyer's
    await asyncio.gather(*buyers)
    with pytest.raises(AmazonPayThrottled):  # the next free one is 2 s away, beyond background's wait
        await task


async def test_background_goes_once_buyers_are_served() -> None:
    clock = FakeTime()
    q = make_quota(clock, burst=1, rate=1, background_share=1.0, max_wait=5.0)
    await q.acquire(FINALIZE)
    await q.acquire(FINALIZE)  # a buyer reserved the next token (1 s)
    with quota.background():
        await q.acquire(FINALIZE)  # waits behind the buyer: 2 s from the start
    assert clock.now == pytest.approx(1002.0)


async def test_the_background_mark_is_per_task() -> None:
    seen: list[bool] = []

    async def look() -> None:
        seen.append(quota.in_background())

    with quota.background():
        inner = asyncio.create_task(look())  # a task started inside inherits the mark
        await inner
    await look()
    assert seen == [True, False]


async def test_throttled_holds_every_caller_back() -> None:
    clock = FakeTime()
    q = make_quota(clock, burst=20, rate=4, max_wait=5.0)
    q.throttled(FINALIZE, retry_after=3.0)
    await q.acquire(FINALIZE)
    assert clock.slept == [pytest.approx(3.0)]
    q.throttled(FINALIZE, retry_after=None)  # no Retry-After: one token's time
    await q.acquire(FINALIZE)
    assert clock.slept[-1] == pytest.approx(0.25)


async def test_unknown_operations_and_bad_settings() -> None:
    clock = FakeTime()
    await make_quota(clock).acquire("getRefund")  # not limited here
    with pytest.raises(ValueError):
        make_quota(clock, background_share=0)
    with pytest.raises(ValueError):
        make_quota(clock, probe_share=1.5)
    with pytest.raises(ValueError):
        Limit(0.5, 1)


async def test_probes_stay_within_their_own_share_and_never_take_a_reserved_token() -> None:
    clock = StillTime()
    q = make_quota(clock, burst=8, rate=1, background_share=0.5, probe_share=0.25, max_wait=0.0)
    taken = 0
    with quota.probing():
        for _ in range(8):
            try:
                await q.acquire(FINALIZE)
                taken += 1
            except AmazonPayThrottled:
                pass
    assert taken == 2  # a quarter of the burst
    with quota.background():  # background's share is its own: the probes took none of it
        for _ in range(4):
            await q.acquire(FINALIZE)
    await q.acquire(FINALIZE)
    await q.acquire(FINALIZE)  # the last two tokens are the buyers'
    with pytest.raises(AmazonPayThrottled):  # and the bucket is empty
        await q.acquire(FINALIZE)
    later = FakeTime()
    q2 = make_quota(later, burst=1, rate=1, probe_share=1.0, max_wait=5.0)
    await q2.acquire(FINALIZE)
    await q2.acquire(FINALIZE)  # a buyer reserved the next token (1 s)
    with quota.probing():
        await q2.acquire(FINALIZE)  # waits behind the buyer: 2 s from the start
    assert later.now == pytest.approx(1002.0)
    assert not quota.is_probing()


def test_a_long_retry_after_holds_the_process_back_at_most_max_hold() -> None:
    """Retry-After 3600 (or a far HTTP date) must not refuse every finalize of the process for an hour."""
    clock = FakeTime()
    q = make_quota(clock, burst=4, rate=2)
    assert q.max_hold == MAX_RETRY_AFTER == 30.0
    q.throttled(FINALIZE, 3600.0)
    assert q._buckets[FINALIZE].wait_time(clock.now) == pytest.approx(MAX_RETRY_AFTER)
    q.throttled(FINALIZE, 0.1)  # a 429 met during the hold neither shortens nor lengthens it past the cap
    assert q._buckets[FINALIZE].blocked_until == pytest.approx(clock.now + MAX_RETRY_AFTER)


async def test_after_the_capped_hold_a_buyer_is_served() -> None:
    clock = FakeTime()
    q = make_quota(clock, burst=4, rate=2, max_wait=2.0, max_hold=5.0)
    q.throttled(FINALIZE, 3600.0)
    with pytest.raises(AmazonPayThrottled):
        await q.acquire(FINALIZE)  # 5 s away: beyond max_wait
    clock.now += 4.0
    await q.acquire(FINALIZE)  # 1 s left of the hold: waits it out instead of an hour
    assert clock.slept == [pytest.approx(1.0)]


def test_a_hold_is_logged_once_as_it_starts(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeTime()
    q = make_quota(clock, burst=4, rate=2)
    with caplog.at_level(logging.WARNING, logger="router.amazon_pay"):
        for _ in range(5):  # five returns met the same 429 burst: one hold
            q.throttled(FINALIZE, 3600.0)
        clock.now += 10.0
        q.throttled(FINALIZE, 3600.0)  # still held: lengthened (to the cap), not a new hold
    holds = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(holds) == 1, [r.getMessage() for r in holds]
    message = holds[0].getMessage()
    assert FINALIZE in message and "30.0 s" in message and "Retry-After 3600 s, capped" in message
    clock.now += 31.0
    with caplog.at_level(logging.WARNING, logger="router.amazon_pay"):
        q.throttled(FINALIZE, 2.0)  # after the hold ended: a new one, logged again, uncapped
    again = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][1:]
    assert len(again) == 1 and "2.0 s" in again[0] and "capped" not in again[0]


async def test_a_local_refusal_says_it_is_local_and_carries_no_amazon_reason() -> None:
    clock = FakeTime()
    q = make_quota(clock, burst=1, rate=1, max_wait=0.5)
    q.throttled(FINALIZE, 10.0)
    with pytest.raises(AmazonPayThrottled) as held:
        await q.acquire(FINALIZE)
    assert held.value.local and held.value.reason_code is None and held.value.status is None
    assert "held back in this process for 10.0 s more after Amazon Pay's 429" in held.value.message
    clock.now += 10.0
    await q.acquire(FINALIZE)
    with pytest.raises(AmazonPayThrottled) as used_up:
        await q.acquire(FINALIZE)
    assert used_up.value.local and "this process's Amazon Pay quota is used up" in used_up.value.message
