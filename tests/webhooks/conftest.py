"""Webhook fixtures: a real receiver on a real socket, a clock the test moves, and the real stores."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.checkout.events import event_for
from router.checkout.model import Checkout, State
from router.store import open_store
from router.store.base import NewEvent, Store
from router.webhooks.signature import verify_signature
from tests.store.conftest import postgres_backend
from tests.support import free_port, serve_app, webhook_schema_errors

SECRET = "whsec_test_k3y_that_must_never_be_logged"
START = 1_800_000_000.0


class Clock:
    """A clock the test advances; shared with the receiver thread, which checks signatures by it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Received:
    event_id: str
    event_type: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    status: int


@dataclass
class Receiver:
    """A merchant backend: records every request; can be told to fail or to be slow.

    `fail_times[event_id] = n` fails that event's first n receptions with `fail_status`;
    `status` answers every request; `delay` holds every answer that long (seconds, or at random up
    to it with `random_delay`). A body that does not match the published schema is answered 400 and
    recorded in `schema_errors` (the fixture fails the test on any).
    """

    clock: Clock
    secret: str = SECRET
    status: int = 200
    fail_status: int = 500
    delay: float = 0.0
    random_delay: bool = False  # hold each answer a random time up to `delay` (desynchronises workers)
    fail_times: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    inflight: dict[str, int] = field(default_factory=dict)
    max_inflight_per_event: int = 0
    max_inflight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks", self.endpoint, methods=["POST"])])

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        event_id = request.headers.get("return-router-event-id", "")
        with self.lock:
            self.inflight[event_id] = self.inflight.get(event_id, 0) + 1
            self.max_inflight_per_event = max(self.max_inflight_per_event, self.inflight[event_id])
            self.max_inflight = max(self.max_inflight, sum(self.inflight.values()))
        try:
            if self.delay:
                await asyncio.sleep(random.uniform(0, self.delay) if self.random_delay else self.delay)
            invalid = webhook_schema_errors(body, request.headers.get("return-router-event-type", ""))
            with self.lock:
                status = self.status
                self.schema_errors += invalid
                if invalid:
                    status = 400
                elif self.fail_times.get(event_id, 0) > 0:
                    self.fail_times[event_id] -= 1
                    status = self.fail_status
                signature = request.headers.get("return-router-signature", "")
                self.received.append(Received(
                    event_id=event_id,
                    event_type=request.headers.get("return-router-event-type", ""),
                    headers=dict(request.headers),
                    body=body,
                    signature_ok=verify_signature(self.secret, body, signature, now=self.clock()),
                    status=status,
                ))
            return JSONResponse({"received": True}, status_code=status)
        finally:
            with self.lock:
                self.inflight[event_id] -= 1

    def ids(self, *, ok_only: bool = False) -> list[str]:
        with self.lock:
            return [r.event_id for r in self.received if not ok_only or 200 <= r.status < 300]


def serve_on_port(app: Any, port: int) -> contextlib.AbstractContextManager[str]:
    """A receiver that was down comes back at the same address."""
    return serve_app(app, port=port, lifespan="off")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver(clock: Clock) -> Iterator[Receiver]:
    rec = Receiver(clock)
    with serve_app(rec.app(), lifespan="off") as base:
        rec.url = base + "/hooks"
        yield rec
    assert not rec.schema_errors, rec.schema_errors


@pytest.fixture
def down_url() -> str:
    """A URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/hooks"


# --- the stores ----------------------------------------------------------------------------------

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Unopened stores on one fresh database, as separate processes would have (two workers, one outbox).

    SQLite: a real file under tmp_path. PostgreSQL: a fresh schema on the test server, dropped after
    (skipped with the reason when the server does not answer), the store tests' way.
    """
    opened: list[Store] = []
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'outbox.db'}"
        else:
            url = (await stack.enter_async_context(postgres_backend())).url

        def make() -> Store:
            store = open_store(url)
            opened.append(store)
            return store

        try:
            yield make
        finally:
            for store in opened:
                await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    store = store_factory()
    await store.open()
    return store  # closed by store_factory


# --- writing events the way the orchestrator does -------------------------------------------------

_counter = iter(range(1, 1_000_000))


def new_ref() -> str:
    return f"ref_{next(_counter):06d}_abcdefghijklmnop"


async def add_checkout(store: Store, now: float, ref: str | None = None) -> Checkout:
    checkout = Checkout(ref=ref or new_ref(), merchant_reference="order-1", amount="14.00", currency="USD",
                        payment_intent="AuthorizeWithCapture", can_handle_pending=True, created_at=now,
                        expires_at=now + 3600, state=State.CREATED, updated_at=now)
    await store.create_checkout(checkout)
    return checkout


async def add_event(store: Store, now: float, state: str = "completed", ref: str | None = None) -> NewEvent:
    """Move a checkout (new unless `ref` is given) to `state`, writing its event in the same transaction."""
    checkout = await store.get_checkout(ref) if ref else None
    if checkout is None:
        checkout = await add_checkout(store, now, ref)
    after = replace(checkout, state=state)
    event = event_for(after, now)
    assert event is not None
    await store.transition(checkout.ref, owner=None, now=now, state=state, events=[event])
    return event
