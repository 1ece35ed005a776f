"""Async Amazon Pay API v2 client: finalizeCheckoutSession, getCheckoutSession, getCharge.

Signing is done by `AmazonPayAuth` on every attempt (fresh date); bodies are serialized once and the
same bytes go out on every retry with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

import router.metrics as metrics
from router.amazon_pay.breaker import CircuitBreaker
from router.amazon_pay.deadline import deadline_for
from router.amazon_pay.errors import (
    AmazonPayCircuitOpen,
    AmazonPayDeadlineSpent,
    AmazonPayError,
    AmazonPayProtocolError,
    AmazonPayThrottled,
    AmazonPayTransportError,
)
from router.amazon_pay.models import Charge, CheckoutSession, ClientConfig, FinalizeResult, mask_id
from router.amazon_pay.pacing import OnePerTurn
from router.amazon_pay.quota import Quota, in_background
from router.amazon_pay.retry import next_delay, parse_retry_after
from router.amazon_pay.signing import IDEMPOTENCY_HEADER, REGION_HOSTS, AmazonPayAuth
from router.logs import current_request_id
from router.outbound import async_client

LOGGER = logging.getLogger("router.amazon_pay")
USER_AGENT = "return-router-amazon-pay/0.1 (Python)"
REQUEST_ID_HEADER = "x-amz-pay-request-id"
OUR_REQUEST_ID_HEADER = "x-request-id"  # the request of ours that caused the call (not in the signed headers)
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")
_MAX_ID_LENGTH = 128
T = TypeVar("T")


def validate_idempotency_key(key: str) -> str:
    """Amazon's rule: 1-32 characters of A-Z a-z 0-9 - _ (a dashed UUID is too long; uuid4().hex fits)."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValueError("idempotency_key must be 1-32 characters of A-Z, a-z, 0-9, '-' or '_'")
    return key


def _validate_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_ID_LENGTH or not value.isprintable():
        raise ValueError(
            f"{what} must be a non-empty printable string of at most {_MAX_ID_LENGTH} characters"
        )
    if value in (".", ".."):  # a dot segment, which the URL's path normalization removes: another resource
        raise ValueError(f"{what} must not be '.' or '..'")
    return value


def serialize_payload(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON, serialized once: these exact bytes are hashed, signed and sent."""
    if not isinstance(payload, Mapping):
        raise ValueError("payload must be a mapping (JSON object)")
    try:
        text = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not JSON-serializable: {exc}") from None
    return text.encode("utf-8")


def base_url(config: ClientConfig) -> str:
    """Scheme, host and optional path prefix: the endpoint override or the region's API host."""
    return config.endpoint or f"https://{REGION_HOSTS[config.region]}"


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]
    request_id: str | None
    attempts: int


def _request_id(response: httpx.Response) -> str | None:
    value: str | None = response.headers.get(REQUEST_ID_HEADER)
    return value


def _error_from_response(response: httpx.Response, operation: str, attempts: int) -> AmazonPayError:
    reason_code: str | None = None
    message = f"{operation} failed with HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        reason_code = body.get("reasonCode") if isinstance(body.get("reasonCode"), str) else None
        if isinstance(body.get("message"), str):
            message = f"{operation}: {body['message']}"
    return AmazonPayError(
        message,
        status=response.status_code,
        reason_code=reason_code,
        request_id=_request_id(response),
        attempts=attempts,
    )


class AmazonPayClient:
    """Async client owning an httpx.AsyncClient; use `async with` or call `aclose()`."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        max_connections: int = 10,
        quota: Quota | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._config = config
        self.quota = quota  # None: no client-side limit (the emulator, benchmarks)
        self.breaker = breaker  # None: never pauses
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._rand = rand
        self._auth = AmazonPayAuth(
            config.public_key_id,
            config.private_key,
            config.region,
            config.algorithm,
            clock=self._clock,
            path_prefix=urlsplit(base_url(config)).path,
        )
        self._base = base_url(config) + config.api_path_prefix
        self._signing = OnePerTurn()  # each call's POST leaves before the next call is signed
        policy = config.retry
        # 10 connections by default: the token buckets (quota.py) keep each operation within Amazon's own
        # quotas (live bursts of 20 / 40); returns above the pool wait for a connection in arrival order
        # (aiohttp's pool is FIFO). The environment's egress proxy applies, as to the webhook worker's client
        # (router.env_proxy): a merchant whose servers reach the internet only through it must still finalize.
        self._http = async_client(
            max_connections=max_connections,
            transport=transport,
            trust_env=True,
            timeout=httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout),
            headers={
                "user-agent": USER_AGENT,
                "accept": "application/json",
                "content-type": "application/json",
            },
        )

    def __repr__(self) -> str:
        return f"AmazonPayClient(base={self._base!r}, auth={self._auth!r})"

    async def __aenter__(self) -> AmazonPayClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def url(self, *segments: str) -> str:
        """Absolute URL of an API path; each segment is percent-encoded as one path segment."""
        return self._base + "".join("/" + quote(segment, safe="") for segment in segments)

    async def finalize_checkout_session(
        self, checkout_session_id: str, payload: Mapping[str, Any], idempotency_key: str
    ) -> FinalizeResult:
        """POST …/checkoutSessions/{id}/finalize. 200 = finalized, 202 = authorization pending."""
        _validate_id(checkout_session_id, "checkout_session_id")
        validate_idempotency_key(idempotency_key)
        body = serialize_payload(payload)
        answer = await self._call(
            "finalizeCheckoutSession",
            "POST",
            self.url("checkoutSessions", checkout_session_id, "finalize"),
            body,
            {IDEMPOTENCY_HEADER: idempotency_key},
            checkout_session_id,
        )
        if answer.status not in (200, 202):
            raise self._protocol_error("finalizeCheckoutSession", f"unexpected HTTP {answer.status}", answer)
        session = self._parse(CheckoutSession.from_json, answer, "finalizeCheckoutSession")
        return FinalizeResult(200 if answer.status == 200 else 202, session)

    async def get_checkout_session(self, checkout_session_id: str) -> CheckoutSession:
        _validate_id(checkout_session_id, "checkout_session_id")
        url = self.url("checkoutSessions", checkout_session_id)
        answer = await self._call("getCheckoutSession", "GET", url, b"", {}, checkout_session_id)
        return self._parse(CheckoutSession.from_json, answer, "getCheckoutSession")

    async def get_charge(self, charge_id: str) -> Charge:
        _validate_id(charge_id, "charge_id")
        answer = await self._call("getCharge", "GET", self.url("charges", charge_id), b"", {}, charge_id)
        return self._parse(Charge.from_json, answer, "getCharge")

    @staticmethod
    def _protocol_error(operation: str, problem: str, answer: _Answer) -> AmazonPayProtocolError:
        return AmazonPayProtocolError(
            f"{operation}: {problem}",
            status=answer.status,
            request_id=answer.request_id,
            attempts=answer.attempts,
        )

    def _parse(self, build: Callable[[Mapping[str, Any]], T], answer: _Answer, operation: str) -> T:
        try:
            return build(answer.body)
        except ValueError as exc:
            raise self._protocol_error(operation, str(exc), answer) from None

    async def _call(
        self, operation: str, method: str, url: str, body: bytes, headers: Mapping[str, str], object_id: str
    ) -> _Answer:
        """Send with retries; return the 2xx answer or raise a typed error. Never beyond the deadline."""
        policy = self._config.retry
        deadline = deadline_for(policy.deadline)
        if deadline <= time.monotonic():  # an earlier call of the same return spent it
            raise AmazonPayDeadlineSpent(f"{operation}: the deadline of {policy.deadline:g}s was reached "
                                         "by earlier calls", attempts=0)
        background = in_background()
        max_attempts = self._max_attempts(background)
        attempt = 0
        while True:
            attempt += 1
            await self._admit(operation, background, deadline - time.monotonic(), attempt - 1)
            error, retry_after = await self._attempt(
                operation, method, url, body, headers, object_id, attempt, deadline
            )
            self._observe(operation, error, retry_after)
            if isinstance(error, _Answer):
                return error
            if not error.retryable or attempt >= max_attempts:
                raise error
            delay = next_delay(policy, attempt, retry_after, self._rand)
            if time.monotonic() + delay >= deadline:
                error.message = f"{error.message} (deadline of {policy.deadline:g}s reached)"
                raise error
            await self._sleep(delay)

    def _max_attempts(self, background: bool) -> int:
        """While Amazon looks down, a buyer's call is sent once: an honest answer now beats retries."""
        if not background and self.breaker is not None and self.breaker.state != "closed":
            return 1
        return self._config.retry.max_attempts

    async def _admit(self, operation: str, background: bool, remaining: float, sent: int) -> None:
        """Before each attempt: background work waits out an open breaker; everyone takes a quota token."""
        if background and self.breaker is not None and not self.breaker.allow_background():
            raise AmazonPayCircuitOpen(f"{operation}: Amazon Pay is failing; background calls are paused",
                                       attempts=sent)
        if self.quota is not None:
            try:
                await self.quota.acquire(operation, remaining)
            except AmazonPayThrottled as exc:
                exc.attempts = sent
                if background and self.breaker is not None:
                    self.breaker.probe_not_sent()  # a refused half-open probe must not hold the slot
                raise

    def _observe(self, operation: str, result: _Answer | AmazonPayError, retry_after: float | None) -> None:
        """Tell the breaker how Amazon is doing, and the quota when Amazon says we sent too much."""
        status = result.status
        if self.breaker is not None:
            self.breaker.record(status)
        if status == 429 and self.quota is not None:
            self.quota.throttled(operation, retry_after)

    async def _attempt(
        self,
        operation: str,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        object_id: str,
        attempt: int,
        deadline: float,
    ) -> tuple[_Answer | AmazonPayError, float | None]:
        remaining = deadline - time.monotonic()
        masked = mask_id(object_id)
        started = time.monotonic()
        try:
            async with asyncio.timeout(remaining):
                request = self._http.build_request(method, url, content=body, headers=headers)
                if (request_id := current_request_id()) is not None:  # ours, for support; never signed
                    request.headers[OUR_REQUEST_ID_HEADER] = request_id
                await self._signing.turn()
                response = await self._http.send(request, auth=self._auth)
        except (httpx.HTTPError, TimeoutError) as exc:
            kind = "deadline reached" if isinstance(exc, TimeoutError) else type(exc).__name__
            metrics.amazon_request(operation, None, time.monotonic() - started)
            LOGGER.warning("amazon_pay %s id=%s attempt=%d no answer: %s", operation, masked, attempt, kind)
            return AmazonPayTransportError(
                f"{operation}: no answer from Amazon Pay ({kind})", attempts=attempt
            ), None
        request_id = _request_id(response)
        metrics.amazon_request(operation, response.status_code, time.monotonic() - started)
        LOGGER.info(
            "amazon_pay %s id=%s attempt=%d status=%d request_id=%s",
            operation,
            masked,
            attempt,
            response.status_code,
            request_id,
        )
        if not response.is_success:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            return _error_from_response(response, operation, attempt), retry_after
        try:
            data = response.json()
        except ValueError:
            data = None
        answer = _Answer(response.status_code, data if isinstance(data, dict) else {}, request_id, attempt)
        if not isinstance(data, dict):
            return self._protocol_error(operation, "response body is not a JSON object", answer), None
        return answer, None
