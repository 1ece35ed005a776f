"""AmazonPayClient over httpx.MockTransport: what goes on the wire and how answers are read, in-process."""

from __future__ import annotations

import functools
import json

import httpx
import pytest

from router.amazon_pay import AmazonPayClient, ClientConfig, RetryPolicy, generate_key_pair
from router.amazon_pay.errors import AmazonPayError
from router.amazon_pay.keys import load_private_key

SID = "sess-0123456789abcdef"
SESSION = {"checkoutSessionId": SID, "statusDetails": {"state": "Completed"}, "chargeId": "S01-1-1-C1"}


@functools.cache
def private_key() -> bytes:
    return generate_key_pair()[0]


def client(handler: httpx.MockTransport, slept: list[float]) -> AmazonPayClient:
    config = ClientConfig(public_key_id="SANDBOX-MOCKTRANSPORT", private_key=load_private_key(private_key()),
                          retry=RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=8.0))

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return AmazonPayClient(config, transport=handler, sleep=sleep, rand=lambda: 0.0)


async def test_finalize_retries_a_503_with_the_same_bytes_key_and_a_fresh_signature() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, json={"reasonCode": "ServiceUnavailable", "message": "try later"})
        return httpx.Response(202, json=SESSION)

    slept: list[float] = []
    async with client(httpx.MockTransport(answer), slept) as amazon:
        result = await amazon.finalize_checkout_session(SID, {"paymentIntent": "Authorize"}, "key-1")
    assert result.http_status == 202 and result.session.charge_id == "S01-1-1-C1"
    assert [r.method for r in seen] == ["POST", "POST"]
    assert seen[0].url.path.endswith(f"/checkoutSessions/{SID}/finalize")
    assert seen[0].content == seen[1].content and json.loads(seen[0].content) == {"paymentIntent": "Authorize"}
    assert {r.headers["x-amz-pay-idempotency-key"] for r in seen} == {"key-1"}
    assert all("SignedHeaders=" in r.headers["authorization"] for r in seen)
    assert slept == [0.5]  # base_delay 1 s, jitter at its low end (50 %)


async def test_a_404_is_an_error_with_its_reason_and_no_retry() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(404, json={"reasonCode": "ResourceNotFound", "message": "no such session"})

    slept: list[float] = []
    async with client(httpx.MockTransport(answer), slept) as amazon:
        with pytest.raises(AmazonPayError) as caught:
            await amazon.get_checkout_session(SID)
    assert caught.value.status == 404 and caught.value.reason_code == "ResourceNotFound"
    assert len(calls) == 1 and slept == []
