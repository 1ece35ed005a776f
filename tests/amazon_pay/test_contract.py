"""Contract: the client against the emulator over real sockets (scenarios, idempotency, faults, auth)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from router.amazon_pay import (
    AmazonPayClient,
    AmazonPayError,
    AmazonPayProtocolError,
    AmazonPayTransportError,
    RetryPolicy,
    create_emulator_app,
)
from router.amazon_pay.signing import canonical_request, string_to_sign
from tests.amazon_pay.helpers import (
    FAST_RETRY,
    LEGACY_KEY_ID,
    LIVE_KEY_ID,
    ORDER,
    SANDBOX_KEY_ID,
    KeyPair,
    create_session,
    make_config,
    received,
)
from tests.support import free_port, serve_app


def order(**changes: Any) -> dict[str, Any]:
    return {**ORDER, **changes}


async def test_completed_with_capture(client: AmazonPayClient, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    result = await client.finalize_checkout_session(session_id, ORDER, "order-1001")
    assert result.http_status == 200 and not result.pending
    session = result.session
    assert session.checkout_session_id == session_id and session.state == "Completed"
    assert (
        session.charge_id
        and session.charge_permission_id
        and session.charge_id.startswith(session.charge_permission_id)
    )
    assert session.buyer_name == "Test Buyer" and session.buyer_email and session.buyer_id
    assert (
        session.payment_descriptor
        and session.billing_address
        and session.billing_address["countryCode"] == "US"
    )
    assert session.raw["releaseEnvironment"] == "Sandbox"
    charge = await client.get_charge(session.charge_id)
    assert (
        charge.state == "Captured"
        and charge.charge_amount is not None
        and charge.charge_amount.amount == "14.00"
    )
    again = await client.get_checkout_session(session_id)
    assert again.state == "Completed" and again.charge_id == session.charge_id
    finalizes = [e for e in received(emulator_url, session_id) if e["operation"] == "finalizeCheckoutSession"]
    assert len(finalizes) == 1 and finalizes[0]["idempotencyKey"] == "order-1001"


async def test_authorize_and_confirm_intents(client: AmazonPayClient, emulator_url: str) -> None:
    session_id = create_session(emulator_url, paymentIntent="Authorize")
    result = await client.finalize_checkout_session(session_id, order(paymentIntent="Authorize"), "auth-1")
    assert result.session.charge_id is not None
    assert (await client.get_charge(result.session.charge_id)).state == "Authorized"
    confirm_id = create_session(emulator_url, paymentIntent="Confirm")
    confirmed = await client.finalize_checkout_session(
        confirm_id, order(paymentIntent="Confirm"), "confirm-1"
    )
    assert confirmed.http_status == 200 and confirmed.session.state == "Completed"
    assert confirmed.session.charge_id is None and confirmed.session.charge_permission_id


@pytest.mark.parametrize(
    ("scenario", "intent", "final"),
    [
        ("pending-then-authorized", "Authorize", "Authorized"),
        ("pending-then-authorized", "AuthorizeWithCapture", "Captured"),
        ("pending-then-declined", "Authorize", "Declined"),
    ],
)
async def test_pending_then_settles_after_polls(
    client: AmazonPayClient, emulator_url: str, scenario: str, intent: str, final: str
) -> None:
    session_id = create_session(emulator_url, scenario=scenario, paymentIntent=intent, pending_polls=2)
    body = order(paymentIntent=intent, canHandlePendingAuthorization=True)
    result = await client.finalize_checkout_session(session_id, body, uuid.uuid4().hex)
    assert result.http_status == 202 and result.pending
    assert result.session.state == "Completed" and result.session.charge_id
    states = [(await client.get_charge(result.session.charge_id)).state for _ in range(4)]
    assert states == ["AuthorizationInitiated", "AuthorizationInitiated", final, final]


async def test_pending_default_is_one_poll(client: AmazonPayClient, emulator_url: str) -> None:
    session_id = create_session(emulator_url, scenario="pending-then-declined", paymentIntent="Authorize")
    body = order(paymentIntent="Authorize", canHandlePendingAuthorization=True)
    result = await client.finalize_checkout_session(session_id, body, "pending-2")
    assert result.session.charge_id
    first, second = [await client.get_charge(result.session.charge_id) for _ in range(2)]
    assert (first.state, second.state, second.reason_code) == (
        "AuthorizationInitiated",
        "Declined",
        "HardDeclined",
    )


async def test_pending_scenarios_resolve_synchronously_without_pending_support(
    client: AmazonPayClient, emulator_url: str
) -> None:
    ok_id = create_session(emulator_url, scenario="pending-then-authorized")
    result = await client.finalize_checkout_session(ok_id, ORDER, "sync-1")
    assert result.http_status == 200
    declined_id = create_session(emulator_url, scenario="pending-then-declined")
    with pytest.raises(AmazonPayError) as info:
        await client.finalize_checkout_session(
            declined_id, order(canHandlePendingAuthorization=False), "sync-2"
        )
    assert (info.value.status, info.value.reason_code) == (422, "CheckoutSessionCanceled")


@pytest.mark.parametrize(
    ("scenario", "reason", "open_before"),
    [
        ("declined", "Declined", True),
        ("expired", "Expired", False),
        ("buyer-canceled", "BuyerCanceled", False),
    ],
)
async def test_canceled_scenarios(
    client: AmazonPayClient, emulator_url: str, scenario: str, reason: str, open_before: bool
) -> None:
    session_id = create_session(emulator_url, scenario=scenario)
    before = await client.get_checkout_session(session_id)
    assert before.state == ("Open" if open_before else "Canceled")
    with pytest.raises(AmazonPayError) as info:
        await client.finalize_checkout_session(session_id, ORDER, f"cancel-{scenario}")
    error = info.value
    assert (error.status, error.reason_code, error.attempts) == (422, "CheckoutSessionCanceled", 1)
    assert error.request_id
    after = await client.get_checkout_session(session_id)
    assert (after.state, after.reason_code, after.charge_id) == ("Canceled", reason, None)
    assert after.reason_description


async def test_idempotent_replay_duplicate_key_and_second_finalize(
    client: AmazonPayClient, emulator_url: str
) -> None:
    session_id = create_session(emulator_url)
    first = await client.finalize_checkout_session(session_id, ORDER, "idem-1")
    replay = await client.finalize_checkout_session(session_id, ORDER, "idem-1")
    assert replay.http_status == 200 and replay.session.raw == first.session.raw
    with pytest.raises(AmazonPayError) as duplicate:
        await client.finalize_checkout_session(
            session_id, order(canHandlePendingAuthorization=True), "idem-1"
        )
    assert (duplicate.value.status, duplicate.value.reason_code) == (400, "DuplicateIdempotencyKey")
    with pytest.raises(AmazonPayError) as again:
        await client.finalize_checkout_session(session_id, ORDER, "idem-2")
    assert (again.value.status, again.value.reason_code) == (422, "InvalidCheckoutSessionStatus")


async def test_idempotency_keys_belong_to_one_merchant(keys: KeyPair, emulator_url: str) -> None:
    first_id, second_id = create_session(emulator_url), create_session(emulator_url)
    async with AmazonPayClient(make_config(keys, emulator_url, public_key_id=LIVE_KEY_ID)) as live:
        await live.finalize_checkout_session(first_id, ORDER, "shared-key")
    async with AmazonPayClient(make_config(keys, emulator_url)) as sandbox:
        result = await sandbox.finalize_checkout_session(second_id, ORDER, "shared-key")
    assert result.http_status == 200 and result.session.checkout_session_id == second_id


@pytest.mark.parametrize(
    ("spec", "body", "status", "reason"),
    [
        ({}, order(chargeAmount={"amount": "15.00", "currencyCode": "USD"}), 400, "InvalidParameterValue"),
        ({}, order(chargeAmount={"amount": "14.00", "currencyCode": "EUR"}), 400, "CurrencyMismatch"),
        ({}, order(paymentIntent="Authorize"), 400, "InvalidParameterValue"),
        ({}, {"paymentIntent": "AuthorizeWithCapture"}, 400, "MissingParameterValue"),
        ({}, order(canHandlePendingAuthorization="false"), 400, "InvalidParameterValue"),
        ({}, order(giftWrap=True), 400, "UnrecognizedField"),
        (
            {"totalOrderAmount": {"amount": "20.00", "currencyCode": "USD"}},
            ORDER,
            400,
            "MissingParameterValue",
        ),
        (
            {"totalOrderAmount": {"amount": "20.00", "currencyCode": "USD"}},
            order(totalOrderAmount={"amount": "19.00", "currencyCode": "USD"}),
            400,
            "InvalidParameterValue",
        ),
        ({"supplementaryData": "abc"}, ORDER, 400, "InvalidParameterValue"),
        ({"supplementaryData": "abc"}, order(supplementaryData="abd"), 400, "InvalidParameterValue"),
    ],
    ids=["amount", "currency", "intent", "no-amount", "string-bool", "unknown-field", "no-total", "total",
         "no-supplementary", "supplementary"],
)
async def test_finalize_validates_against_the_session(
    client: AmazonPayClient,
    emulator_url: str,
    spec: dict[str, Any],
    body: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    session_id = create_session(emulator_url, **spec)
    with pytest.raises(AmazonPayError) as info:
        await client.finalize_checkout_session(session_id, body, uuid.uuid4().hex)
    assert (info.value.status, info.value.reason_code, info.value.attempts) == (status, reason, 1)
    assert (await client.get_checkout_session(session_id)).state == "Open"


async def test_amounts_compare_as_decimals_and_total_order_amount(
    client: AmazonPayClient, emulator_url: str
) -> None:
    total = {"amount": "20.00", "currencyCode": "USD"}
    session_id = create_session(emulator_url, totalOrderAmount=total)
    body = order(
        chargeAmount={"amount": 14, "currencyCode": "USD"},
        totalOrderAmount={"amount": "20", "currencyCode": "USD"},
    )
    assert (await client.finalize_checkout_session(session_id, body, "decimal-1")).http_status == 200


async def test_unknown_ids_are_not_found(client: AmazonPayClient) -> None:
    for call in (
        client.get_checkout_session("no-such-session-id"),
        client.get_charge("S01-0000000-0000000-C000000"),
    ):
        with pytest.raises(AmazonPayError) as info:
            await call
        assert (info.value.status, info.value.reason_code) == (404, "ResourceNotFound")


# -- faults -------------------------------------------------------------------------------------


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


async def test_5xx_burst_then_success_resends_identical_bytes(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url, fail_first_n=2, fail_status=503)
    sleep = RecordingSleep()
    async with AmazonPayClient(make_config(keys, emulator_url), sleep=sleep) as client:
        result = await client.finalize_checkout_session(session_id, ORDER, "burst-1")
    assert result.http_status == 200
    assert sleep.delays == [0.01, 0.02]  # base 0.01 doubling, jitter off
    attempts = received(emulator_url, session_id)
    assert [e["status"] for e in attempts] == [503, 503, 200]
    assert {e["idempotencyKey"] for e in attempts} == {"burst-1"}
    assert len({e["bodySha256"] for e in attempts}) == 1


async def test_429_retry_after_is_honoured(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url, fail_first_n=1, fail_status=429, retry_after=0.3)
    sleep = RecordingSleep()
    async with AmazonPayClient(make_config(keys, emulator_url), sleep=sleep) as client:
        result = await client.finalize_checkout_session(session_id, ORDER, "throttle-1")
    assert result.http_status == 200 and sleep.delays == [0.3]
    assert [e["status"] for e in received(emulator_url, session_id)] == [429, 200]


async def test_retries_exhausted_raise_the_last_answer(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url, fail_first_n=10, fail_status=500)
    async with AmazonPayClient(make_config(keys, emulator_url)) as client:
        with pytest.raises(AmazonPayError) as info:
            await client.finalize_checkout_session(session_id, ORDER, "exhaust-1")
    error = info.value
    assert not isinstance(error, AmazonPayTransportError)
    assert (error.status, error.reason_code, error.attempts) == (500, "InternalServerError", 4)
    assert len(received(emulator_url, session_id)) == 4


async def test_non_retryable_fault_is_not_retried(client: AmazonPayClient, emulator_url: str) -> None:
    session_id = create_session(emulator_url, fail_first_n=1, fail_status=400)
    with pytest.raises(AmazonPayError) as info:
        await client.finalize_checkout_session(session_id, ORDER, "noretry-1")
    assert (info.value.status, info.value.attempts) == (400, 1)


async def test_read_timeout_then_retry_is_exactly_once(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url, latency_ms=800, latency_first_n=1)
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, jitter=False, read_timeout=0.2, deadline=10)
    async with AmazonPayClient(make_config(keys, emulator_url, retry=policy)) as client:
        result = await client.finalize_checkout_session(session_id, ORDER, "slow-1")
        assert result.http_status == 200
        await asyncio.sleep(0.9)  # let the timed-out first attempt finish on the server
        assert (await client.get_checkout_session(session_id)).charge_id == result.session.charge_id
    finalizes = [e for e in received(emulator_url, session_id) if e["operation"] == "finalizeCheckoutSession"]
    assert sorted(e["status"] for e in finalizes) == [200, 200]  # the late first attempt got the saved answer


async def test_read_timeouts_exhausted_raise_transport_error(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url, latency_ms=1000)
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, jitter=False, read_timeout=0.2, deadline=10)
    async with AmazonPayClient(make_config(keys, emulator_url, retry=policy)) as client:
        with pytest.raises(AmazonPayTransportError) as info:
            await client.finalize_checkout_session(session_id, ORDER, "slow-2")
    assert (info.value.status, info.value.attempts) == (None, 2)
    assert "ReadTimeout" in info.value.message


async def test_deadline_caps_retry_after_and_slow_answers(keys: KeyPair, emulator_url: str) -> None:
    throttled = create_session(emulator_url, fail_first_n=5, fail_status=503, retry_after=30)
    policy = RetryPolicy(max_attempts=4, base_delay=0.01, jitter=False, read_timeout=5, deadline=1)
    sleep = RecordingSleep()
    async with AmazonPayClient(make_config(keys, emulator_url, retry=policy), sleep=sleep) as client:
        with pytest.raises(AmazonPayError) as info:
            await client.finalize_checkout_session(throttled, ORDER, "deadline-1")
        assert (info.value.status, info.value.attempts, sleep.delays) == (503, 1, [])
        assert "deadline" in info.value.message
        slow = create_session(emulator_url, latency_ms=3000)
        with pytest.raises(AmazonPayTransportError, match="deadline reached"):
            await client.finalize_checkout_session(slow, ORDER, "deadline-2")


async def test_connection_refused_is_a_transport_error(keys: KeyPair) -> None:
    async with AmazonPayClient(make_config(keys, f"http://127.0.0.1:{free_port()}")) as client:
        with pytest.raises(AmazonPayTransportError) as info:
            await client.get_checkout_session("any-session")
    assert (info.value.status, info.value.attempts) == (None, FAST_RETRY.max_attempts)


# -- authentication -----------------------------------------------------------------------------


class Capture(httpx.AsyncBaseTransport):
    """Passes requests to a real transport; can rewrite the body after signing (tampering)."""

    def __init__(self, tamper: bytes | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.tamper = tamper
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.tamper is not None:
            headers = {k: v for k, v in request.headers.items() if k != "content-length"}
            request = httpx.Request(request.method, request.url, headers=headers, content=self.tamper)
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_wrong_private_key_is_403_with_the_echoed_string_to_sign(
    keys: KeyPair, other_keys: KeyPair, emulator_url: str
) -> None:
    session_id = create_session(emulator_url)
    capture = Capture()
    config = make_config(other_keys, emulator_url)
    async with AmazonPayClient(config, transport=capture) as client:
        with pytest.raises(AmazonPayError) as info:
            await client.finalize_checkout_session(session_id, ORDER, "wrongkey-1")
    assert (info.value.status, info.value.reason_code, info.value.attempts) == (
        403,
        "InvalidRequestSignature",
        1,
    )
    sent = capture.sent[0]
    signed = ["accept", "content-type", "x-amz-pay-date", "x-amz-pay-host", "x-amz-pay-idempotency-key"]
    signed.append("x-amz-pay-region")
    ours = string_to_sign(
        "AMZN-PAY-RSASSA-PSS-V2",
        canonical_request("POST", sent.url.path, None, sent.headers, signed, sent.content),
    )
    assert f"signing String [{ours}]" in info.value.message  # same string: the key is what differs
    assert [e["status"] for e in received(emulator_url, session_id)] == [403]


async def test_tampered_body_is_403(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    tampered = (
        b'{"chargeAmount":{"amount":"1.00","currencyCode":"USD"},"paymentIntent":"AuthorizeWithCapture"}'
    )
    async with AmazonPayClient(make_config(keys, emulator_url), transport=Capture(tamper=tampered)) as client:
        with pytest.raises(AmazonPayError) as info:
            await client.finalize_checkout_session(session_id, ORDER, "tamper-1")
        assert (info.value.status, info.value.reason_code) == (403, "InvalidRequestSignature")
    async with AmazonPayClient(make_config(keys, emulator_url)) as honest:
        assert (await honest.get_checkout_session(session_id)).state == "Open"


async def test_unknown_key_id_is_401(keys: KeyPair, emulator_url: str) -> None:
    async with AmazonPayClient(make_config(keys, emulator_url, public_key_id="SANDBOX-UNKNOWN")) as client:
        with pytest.raises(AmazonPayError) as info:
            await client.get_checkout_session(create_session(emulator_url))
    assert (info.value.status, info.value.reason_code) == (401, "UnauthorizedAccess")


@pytest.mark.parametrize("ahead_seconds", [600, 30])
async def test_future_date_is_400(keys: KeyPair, emulator_url: str, ahead_seconds: int) -> None:
    ahead = lambda: datetime.now(UTC) + timedelta(seconds=ahead_seconds)  # noqa: E731
    async with AmazonPayClient(make_config(keys, emulator_url), clock=ahead) as client:
        with pytest.raises(AmazonPayError) as info:
            await client.get_checkout_session(create_session(emulator_url))
    assert (info.value.status, info.value.reason_code) == (400, "InvalidHeaderValue")
    assert "should not be in future" in info.value.message


@pytest.mark.parametrize(
    ("key_id", "environment", "prefix", "release"),
    [
        (LEGACY_KEY_ID, "sandbox", "/sandbox/v2/", "Sandbox"),
        (LEGACY_KEY_ID, "live", "/live/v2/", "Live"),
        (LIVE_KEY_ID, None, "/v2/", "Live"),
    ],
)
async def test_key_types_select_the_path(
    keys: KeyPair, emulator_url: str, key_id: str, environment: str | None, prefix: str, release: str
) -> None:
    session_id = create_session(emulator_url)
    config = make_config(
        keys, emulator_url, public_key_id=key_id, environment=environment, algorithm="AMZN-PAY-RSASSA-PSS"
    )
    async with AmazonPayClient(config) as client:
        result = await client.finalize_checkout_session(session_id, ORDER, uuid.uuid4().hex)
    assert result.session.raw["releaseEnvironment"] == release
    assert received(emulator_url, session_id)[0]["path"] == f"{prefix}checkoutSessions/{session_id}/finalize"


async def test_session_id_is_one_percent_encoded_segment(client: AmazonPayClient, emulator_url: str) -> None:
    with pytest.raises(AmazonPayError) as info:
        await client.get_checkout_session("../charges/x?y=1")
    assert (info.value.status, info.value.reason_code) == (404, "ResourceNotFound")
    assert client.url("checkoutSessions", "a/b c").endswith("/v2/checkoutSessions/a%2Fb%20c")


@pytest.fixture(scope="module")
def mounted_url(keys: KeyPair) -> Iterator[str]:
    emulator = create_emulator_app({SANDBOX_KEY_ID: keys.private_key.public_key()})
    with serve_app(Starlette(routes=[Mount("/amazon-pay", app=emulator)])) as url:
        yield url + "/amazon-pay"


async def test_endpoint_with_a_path_prefix(keys: KeyPair, mounted_url: str) -> None:
    session_id = create_session(mounted_url)
    async with AmazonPayClient(make_config(keys, mounted_url)) as client:
        assert (await client.finalize_checkout_session(session_id, ORDER, "mounted-1")).http_status == 200


@pytest.fixture(scope="module")
def text_server() -> Iterator[str]:
    app = Starlette(
        routes=[Route("/{p:path}", lambda r: PlainTextResponse("<html>ok</html>"), methods=["GET", "POST"])]
    )
    with serve_app(app) as url:
        yield url


async def test_2xx_without_json_is_a_protocol_error(keys: KeyPair, text_server: str) -> None:
    async with AmazonPayClient(make_config(keys, text_server)) as client:
        with pytest.raises(AmazonPayProtocolError) as info:
            await client.get_checkout_session("abc")
    assert info.value.status == 200 and info.value.attempts == 1


async def test_bad_input_fails_before_sending(client: AmazonPayClient) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        await client.finalize_checkout_session("abc", ORDER, "bd504926-f659-4ad7-a1a9-9a747aaf5275")
    with pytest.raises(ValueError, match="checkout_session_id"):
        await client.finalize_checkout_session("", ORDER, "k")
    with pytest.raises(ValueError, match="charge_id"):
        await client.get_charge("x\n")
    for dots in (".", ".."):  # the URL's dot segments would be removed: /v2/finalize, /v2/checkoutSessions
        with pytest.raises(ValueError, match="checkout_session_id must not be"):
            await client.get_checkout_session(dots)
        with pytest.raises(ValueError, match="checkout_session_id must not be"):
            await client.finalize_checkout_session(dots, ORDER, "k")
        with pytest.raises(ValueError, match="charge_id must not be"):
            await client.get_charge(dots)


async def test_logs_mask_ids_and_hold_no_secrets(
    client: AmazonPayClient, emulator_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = create_session(emulator_url, fail_first_n=1)
    with caplog.at_level(logging.DEBUG, logger="router.amazon_pay"):
        await client.finalize_checkout_session(session_id, ORDER, "logged-1")
    ours = [r for r in caplog.records if r.name == "router.amazon_pay"]
    text = "\n".join(r.getMessage() for r in ours)
    assert len(ours) == 2 and "attempt=1 status=503" in text and "attempt=2 status=200" in text
    assert f"{session_id[:4]}…{session_id[-4:]}" in text and session_id not in text
    assert "request_id=" in text and "Signature" not in text and "logged-1" not in text
    assert "PRIVATE" not in repr(client)
