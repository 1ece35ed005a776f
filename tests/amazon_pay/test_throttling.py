"""Quotas end to end at the client: the throttling emulator over real sockets, 429s, the breaker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest

from router.amazon_pay import AmazonPayClient, AmazonPayError, RetryPolicy, create_emulator_app, quota
from router.amazon_pay import deadline as amazon_deadline
from router.amazon_pay.breaker import CircuitBreaker
from router.amazon_pay.errors import AmazonPayCircuitOpen, AmazonPayThrottled, AmazonPayTransportError
from router.amazon_pay.quota import FINALIZE, Limit, Quota, limits_for
from tests.amazon_pay.helpers import FAST_RETRY, ORDER, SANDBOX_KEY_ID, KeyPair, create_session, make_config
from tests.support import serve_app

ONCE = RetryPolicy(max_attempts=1, connect_timeout=2, read_timeout=5, deadline=10)


@pytest.fixture
def throttling_url(keys: KeyPair) -> Iterator[str]:
    """An emulator with Amazon's Sandbox quotas on (finalize: burst 2, 1 per second)."""
    app = create_emulator_app({SANDBOX_KEY_ID: keys.private_key.public_key()}, throttle=True)
    with serve_app(app) as url:
        yield url


def log(url: str, operation: str = "finalizeCheckoutSession") -> list[dict[str, object]]:
    entries = httpx.get(f"{url}/_emulator/requests").json()["requests"]
    return [e for e in entries if e["operation"] == operation]


async def finalize(client: AmazonPayClient, session_id: str) -> object:
    try:
        return (await client.finalize_checkout_session(session_id, ORDER, "key-" + session_id[-20:])).http_status
    except AmazonPayError as exc:
        return exc


async def test_the_emulator_throttles_like_amazon(keys: KeyPair, throttling_url: str) -> None:
    sessions = [create_session(throttling_url) for _ in range(3)]
    async with AmazonPayClient(make_config(keys, throttling_url, retry=ONCE)) as client:  # no quota of its own
        results = [await finalize(client, s) for s in sessions]
    assert results[:2] == [200, 200]
    error = results[2]
    assert isinstance(error, AmazonPayError) and (error.status, error.reason_code) == (429, "TooManyRequests")
    assert [e["status"] for e in log(throttling_url)] == [200, 200, 429]


async def test_throttling_is_off_by_default(client: AmazonPayClient, emulator_url: str) -> None:
    sessions = [create_session(emulator_url) for _ in range(4)]
    assert [await finalize(client, s) for s in sessions] == [200] * 4


async def test_the_client_quota_keeps_a_burst_under_amazons_limit(keys: KeyPair) -> None:
    # Amazon's side restores a little faster than the client assumes: the client alone paces the burst.
    app = create_emulator_app({SANDBOX_KEY_ID: keys.private_key.public_key()}, throttle=True,
                              throttle_limits={FINALIZE: Limit(2, 1.25)})
    with serve_app(app) as url:
        sessions = [create_session(url) for _ in range(5)]
        limited = Quota(limits_for("sandbox"), max_wait=2.0)
        async with AmazonPayClient(make_config(keys, url, retry=ONCE), quota=limited) as client:
            results = await asyncio.gather(*(finalize(client, s) for s in sessions))
        assert sorted(r for r in results if isinstance(r, int)) == [200] * 4  # 2 at once, then 1 s, 2 s
        refused = [r for r in results if not isinstance(r, int)]
        assert len(refused) == 1 and isinstance(refused[0], AmazonPayThrottled)  # 3 s away: beyond 2 s
        assert refused[0].attempts == 0
        assert [e["status"] for e in log(url)] == [200] * 4  # never a 429; the refused one was not sent


async def test_a_429_holds_back_the_next_call_for_retry_after(keys: KeyPair, emulator_url: str) -> None:
    throttled = create_session(emulator_url, fail_first_n=1, fail_status=429, retry_after=1)
    other = create_session(emulator_url)
    limited = Quota(limits_for("live"), max_wait=0.5)
    async with AmazonPayClient(make_config(keys, emulator_url, retry=ONCE), quota=limited) as client:
        first = await finalize(client, throttled)
        assert isinstance(first, AmazonPayError) and first.status == 429
        second = await finalize(client, other)  # Amazon asked for 1 s: waiting 0.5 s is not enough
    assert isinstance(second, AmazonPayThrottled)
    assert [e["checkoutSessionId"] for e in log(emulator_url)].count(other) == 0


async def test_an_hour_long_retry_after_holds_the_process_back_only_max_hold(
        keys: KeyPair, emulator_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Over real sockets: Amazon's 429 says Retry-After: 3600; the hold ends after max_hold, the next buyer's
    finalize is sent then, and the hold was logged once, with its length and the operation."""
    throttled = create_session(emulator_url, fail_first_n=1, fail_status=429, retry_after=3600)
    refused, served = create_session(emulator_url), create_session(emulator_url)
    limited = Quota(limits_for("live"), max_wait=0.1, max_hold=0.5)  # the default hold, 30 s, is too long here
    with caplog.at_level(logging.WARNING, logger="router.amazon_pay"):
        async with AmazonPayClient(make_config(keys, emulator_url, retry=ONCE), quota=limited) as client:
            first = await finalize(client, throttled)
            assert isinstance(first, AmazonPayError) and first.status == 429
            held = await finalize(client, refused)
            assert isinstance(held, AmazonPayThrottled) and held.local and held.reason_code is None
            await asyncio.sleep(0.6)
            assert await finalize(client, served) == 200  # not an hour later
    holds = [r.getMessage() for r in caplog.records if "holds these calls back" in r.getMessage()]
    assert holds == ["amazon_pay finalizeCheckoutSession: Amazon Pay answered 429; this process holds these "
                     "calls back for 0.5 s (Retry-After 3600 s, capped)"]
    assert [e["checkoutSessionId"] for e in log(emulator_url)].count(refused) == 0


async def test_a_429_is_retried_after_its_retry_after(keys: KeyPair, emulator_url: str) -> None:
    session = create_session(emulator_url, fail_first_n=1, fail_status=429, retry_after=0.2)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    limited = Quota(limits_for("live"), max_wait=2.0)
    async with AmazonPayClient(make_config(keys, emulator_url), quota=limited, sleep=sleep) as client:
        assert await finalize(client, session) == 200
    assert slept == [0.2]
    assert [e["status"] for e in log(emulator_url) if e["checkoutSessionId"] == session] == [429, 200]


async def test_the_breaker_pauses_background_calls_and_buyers_try_once(keys: KeyPair, emulator_url: str) -> None:
    down = create_session(emulator_url, fail_first_n=1000, fail_status=503)
    breaker = CircuitBreaker(threshold=3, window=60, cooldown=60)
    async with AmazonPayClient(make_config(keys, emulator_url, retry=FAST_RETRY), breaker=breaker) as client:
        first = await finalize(client, down)  # a buyer: 4 attempts, all 503
        assert isinstance(first, AmazonPayError) and first.status == 503
        assert breaker.state == "open"
        with quota.background(), pytest.raises(AmazonPayCircuitOpen):
            await client.get_checkout_session(down)
        second = await finalize(client, down)  # a buyer while open: one honest try, no retries
        assert isinstance(second, AmazonPayError) and second.status == 503 and second.attempts == 1
    statuses = [e["status"] for e in httpx.get(f"{emulator_url}/_emulator/requests").json()["requests"]
                if e["checkoutSessionId"] == down]
    assert statuses == [503] * 5  # 4 + 1 finalize attempts; the background read never left


async def test_answers_close_the_breaker_again(keys: KeyPair, emulator_url: str) -> None:
    flaky = create_session(emulator_url, fail_first_n=3, fail_status=500)
    clock = [0.0]
    breaker = CircuitBreaker(threshold=3, window=60, cooldown=30, clock=lambda: clock[0])
    async with AmazonPayClient(make_config(keys, emulator_url, retry=ONCE), breaker=breaker) as client:
        for _ in range(3):
            await finalize(client, flaky)
        assert breaker.state == "open"
        clock[0] += 30
        with quota.background():  # the half-open probe
            session = await client.get_checkout_session(flaky)
    assert session.state == "Open" and breaker.state == "closed"


async def test_a_half_open_probe_refused_by_the_quota_does_not_pause_background_work(keys: KeyPair) -> None:
    """Four 503s and a 429 with a long Retry-After open the breaker; after its cool-down the probe is refused
    by the quota (Retry-After not over) and never sent. Once Amazon may be asked again, background calls go."""
    now = [1000.0]
    sent: list[int] = []

    def amazon(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if len(sent) <= 4:
            return httpx.Response(503, json={"reasonCode": "ServiceUnavailable", "message": "down"})
        if len(sent) == 5:
            return httpx.Response(429, json={"reasonCode": "TooManyRequests", "message": "slow down"},
                                  headers={"retry-after": "120"})
        return httpx.Response(200, json={"chargeId": "S01-1-1-C1", "statusDetails": {"state": "Authorized"}})

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    # A cool-down shorter than the quota's hold (30 s, capped from the 120 asked): the probe meets the hold.
    breaker = CircuitBreaker(threshold=5, window=30, cooldown=20, clock=lambda: now[0])
    limits = Quota({op: Limit(20, 4) for op in limits_for("sandbox")}, clock=lambda: now[0], sleep=sleep)
    config = make_config(keys, "http://127.0.0.1:9", retry=RetryPolicy(max_attempts=1, deadline=10))
    async with AmazonPayClient(config, transport=httpx.MockTransport(amazon), quota=limits,
                               breaker=breaker) as client:
        for _ in range(5):
            with pytest.raises(AmazonPayError):
                await client.get_charge("S01-1-1-C1")
        assert breaker.state == "open"
        now[0] += 21.0
        with quota.background(), pytest.raises(AmazonPayThrottled):
            await client.get_charge("S01-1-1-C1")  # the probe: refused before it was sent
        assert len(sent) == 5
        now[0] += 200.0  # Retry-After long over
        with quota.background():
            charge = await client.get_charge("S01-1-1-C1")
        assert charge.state == "Authorized" and breaker.state == "closed"


async def test_calls_in_one_shared_deadline_stop_when_it_is_spent(keys: KeyPair) -> None:
    """A return's finalize, session read and charge read wait for Amazon up to one deadline in all."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        return httpx.Response(200, json={"chargeId": "S01-1-1-C1", "statusDetails": {"state": "Authorized"}})

    config = make_config(keys, "http://127.0.0.1:9", retry=RetryPolicy(max_attempts=1, deadline=0.5))
    async with AmazonPayClient(config, transport=httpx.MockTransport(slow)) as client:
        for _ in range(2):  # apart, each call has its own deadline
            assert (await client.get_charge("S01-1-1-C1")).state == "Authorized"
        with amazon_deadline.shared():
            assert (await client.get_charge("S01-1-1-C1")).state == "Authorized"
            with pytest.raises(AmazonPayTransportError, match="deadline"):
                await client.get_charge("S01-1-1-C1")  # 0.2 s were left: cut off, not a second 0.5 s
            with pytest.raises(AmazonPayTransportError, match="earlier calls"):
                await client.get_charge("S01-1-1-C1")  # nothing left: not even sent
