"""The checkout service on a real store, against the real emulator in-process, with injected faults.

`Faults` wraps the ASGI transport the app itself uses for its built-in emulator (router/app.py): each
queued fault applies to the next Amazon request. `Clock` is the service's time, moved by the test.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette

from router.amazon_pay import AmazonPayClient, ClientConfig, RetryPolicy, create_emulator_app, generate_key_pair
from router.amazon_pay.emulator.app import Emulator
from router.amazon_pay.emulator.state import Price, Session, SessionSpec
from router.amazon_pay.keys import load_private_key, load_public_key
from tests.support.stores import backend, pg_backend, store  # noqa: F401  (fixtures: both backends, PostgreSQL)

KEY_ID = "SANDBOX-CHECKOUT-MODEL"
BASE = "http://amazon-pay-emulator.invalid"
FAULTS = ("5xx", "429", "timeout", "lost", "error")


class InjectedError(RuntimeError):
    """The `error` fault: something that is not an httpx error escapes the transport."""


@functools.cache
def key_pair() -> tuple[bytes, bytes]:
    return generate_key_pair()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Faults(httpx.AsyncBaseTransport):
    """5xx / 429: Amazon refuses; timeout: no answer, nothing done; lost: Amazon acts, the answer is lost;
    error: the transport raises something that is not an httpx error; delayed: the answer arrives after
    `delay` seconds of the service's clock (longer than a lease), and `on_delay(delay)` is awaited (leases
    on the PostgreSQL server's clock, which the test cannot move, are aged by it)."""

    inner: httpx.AsyncBaseTransport
    clock: Clock
    delay: float = 0.0
    queue: deque[str] = field(default_factory=deque)
    sent: int = 0
    on_delay: Callable[[float], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.queue.popleft() if self.queue else None
        if fault == "5xx":
            return _amazon_error(503, "ServiceUnavailable", retry_after="0")
        if fault == "429":
            return _amazon_error(429, "TooManyRequests", retry_after="0")
        if fault == "timeout":
            raise httpx.ReadTimeout("injected: no answer", request=request)
        if fault == "error":
            raise InjectedError("injected: not an httpx error")
        self.sent += 1
        response = await self.inner.handle_async_request(request)
        if fault == "lost":
            await response.aread()
            raise httpx.ReadTimeout("injected: answer lost after Amazon acted", request=request)
        if fault == "delayed":
            self.clock.now += self.delay
            if self.on_delay is not None:
                await self.on_delay(self.delay)
        return response


def _amazon_error(status: int, reason: str, retry_after: str) -> httpx.Response:
    return httpx.Response(status, json={"reasonCode": reason, "message": "injected"},
                          headers={"retry-after": retry_after, "content-type": "application/json"})


async def _no_sleep(delay: float) -> None:
    return None


@dataclass
class Amazon:
    """The emulator app, its state, and a client wired to it through `faults`."""

    app: Starlette
    core: Emulator
    faults: Faults
    client: AmazonPayClient

    def session(self, amount: str, scenario: str = "completed", **spec: Any) -> Session:
        price = Price(Decimal(amount), amount, "USD")
        return self.core.state.create_session(
            SessionSpec(charge_amount=price, payment_intent="AuthorizeWithCapture", scenario=scenario, **spec))


def make_amazon(clock: Clock, *, max_attempts: int = 2, delay: float = 0.0) -> Amazon:
    private_pem, public_pem = key_pair()
    app = create_emulator_app({KEY_ID: load_public_key(public_pem)})
    faults = Faults(httpx.ASGITransport(app=app), clock, delay)
    config = ClientConfig(public_key_id=KEY_ID, private_key=load_private_key(private_pem), region="us",
                          endpoint=BASE, retry=RetryPolicy(max_attempts=max_attempts, jitter=False, deadline=30))
    client = AmazonPayClient(config, transport=faults, sleep=_no_sleep)
    return Amazon(app, app.state.emulator, faults, client)
