"""The one merchant webhook endpoint: records every request, checks signature and schema, fails on demand.

It keeps its port across `down()` and `up()`, so a sender sees the same URL go away and come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.webhooks.signature import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, verify_signature
from tests.support import free_port, serve_app, webhook_schema_errors
from tests.support.config import WEBHOOK_SECRET


@dataclass
class Received:
    event_id: str
    event_type: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A merchant backend on 127.0.0.1:`port`/hooks.

    Signatures are checked by `clock` (a test's clock or the wall clock) with `secret`.
    `fail_times[event_id] = n` fails that event's first n receptions with `fail_status`; `status`
    answers every request; `delay` holds every answer that long (seconds, or at random up to it with
    `random_delay`); an event id in `held` is not answered until `release` takes it out. A body
    that does not match the published schema is answered 400 and recorded in `schema_errors` (the
    fixtures fail the test on any).
    """

    clock: Callable[[], float] = time.time
    secret: str = WEBHOOK_SECRET
    port: int = field(default_factory=free_port)
    status: int = 200
    fail_status: int = 500
    delay: float = 0.0
    random_delay: bool = False  # hold each answer a random time up to `delay` (desynchronises workers)
    fail_times: dict[str, int] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    inflight: dict[str, int] = field(default_factory=dict)
    max_inflight_per_event: int = 0
    max_inflight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: contextlib.ExitStack | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks", self.endpoint, methods=["POST"])])

    def up(self) -> Receiver:
        """Listen on the receiver's port (again); a no-op when it already does."""
        if self._server is None:
            stack = contextlib.ExitStack()
            stack.enter_context(serve_app(self.app(), port=self.port, lifespan="off"))
            self._server = stack
        return self

    def down(self) -> None:
        """Stop listening: senders get connection refused until `up()`."""
        server, self._server = self._server, None
        self.release()  # a held request would keep the server from stopping
        if server is not None:
            server.close()

    def release(self, *event_ids: str) -> None:
        """Answer the held requests for `event_ids` (all of them when none are named)."""
        with self.lock:
            self.held.difference_update(event_ids or set(self.held))

    def deliveries(self) -> list[Received]:
        """The requests answered 2xx, in arrival order (a snapshot)."""
        with self.lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def ids(self, *, ok_only: bool = False) -> list[str]:
        with self.lock:
            return [r.event_id for r in self.received if not ok_only or 200 <= r.status < 300]

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        event_id = request.headers.get(EVENT_ID_HEADER, "")
        with self.lock:
            self.inflight[event_id] = self.inflight.get(event_id, 0) + 1
            self.max_inflight_per_event = max(self.max_inflight_per_event, self.inflight[event_id])
            self.max_inflight = max(self.max_inflight, sum(self.inflight.values()))
        try:
            if self.delay:
                await asyncio.sleep(random.uniform(0, self.delay) if self.random_delay else self.delay)
            while event_id in self.held:  # a test decides when this one is answered
                await asyncio.sleep(0.005)
            return self._record(request, body, event_id)
        finally:
            with self.lock:
                self.inflight[event_id] -= 1

    def _record(self, request: Request, body: bytes, event_id: str) -> Response:
        event_type = request.headers.get(EVENT_TYPE_HEADER, "")
        invalid = webhook_schema_errors(body, event_type)
        signature_ok = verify_signature(self.secret, body, request.headers.get(SIGNATURE_HEADER, ""), now=self.clock())
        with self.lock:
            status = self.status
            self.schema_errors += invalid
            if invalid:  # a merchant that validates refuses it
                status = 400
            elif self.fail_times.get(event_id, 0) > 0:
                self.fail_times[event_id] -= 1
                status = self.fail_status
            self.received.append(Received(event_id, event_type, dict(request.headers), body, signature_ok, status))
        return JSONResponse({"errors": invalid} if invalid else {"received": True}, status_code=status)
