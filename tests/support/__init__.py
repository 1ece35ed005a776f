"""Shared test helpers: real servers on real sockets, ports, polling, and the webhook schema check.

The rest of tests/support: `config` (the one config builder), `emulator` (the Amazon Pay emulator and
its client), `receiver` (the merchant's webhook endpoint), `processes` (`serve` processes), `routers`
(a router in this process and its client), `stores` (the test databases), `concurrency`, `fixtures`
(shared by several conftests) and `fake_amazon` (an in-memory AmazonPay).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import httpx
import uvicorn

_local = threading.local()


def http_client() -> httpx.Client:
    """This thread's client for the test servers: as `httpx.get(...)` behaves (a new connection per request,
    redirects not followed, 5 s timeout) without building an SSL context on every call (~25 ms of CPU each,
    which polling loops would spend many times a second)."""
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = _local.client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
        client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keeps none
    return client


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers started as separate processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30, step: float = 0.05) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds.

    The deadline bounds only a failure, so it is generous: a loaded machine (parallel workers, other jobs)
    must not fail a test that is merely slow."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


class _Server(uvicorn.Server):
    """uvicorn that stops as soon as it is told.

    Stock uvicorn looks at `should_exit` every 0.1 s and sleeps another 0.1 s (and 0.1 s steps while
    connections close) on shutdown: about 0.2 s per server, for every test that starts one. Here the
    main loop is woken by `stop()` and shutdown polls in short steps; what happens on shutdown is the same.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def stop(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        # Responses in flight finish (as in uvicorn, without a limit); idle connections close at once.
        while (self.server_state.connections or self.server_state.tasks) and not self.force_exit:
            await asyncio.sleep(0.005)
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


@contextlib.contextmanager
def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a background thread; yield its base URL (http://host:port).

    The socket is bound before the thread starts, so the URL is valid the moment it is yielded. A
    given `port` lets a server that was stopped come back at the same address.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config.setdefault("log_level", "warning")
    config.setdefault("lifespan", "on")
    server = _Server(uvicorn.Config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        thread.join(timeout=10)
        sock.close()


def metric_samples(url: str) -> dict[str, float]:
    """A /metrics page's samples: the series with its labels as written (`name{a="b"}`) → value."""
    text = httpx.get(url, timeout=10).text
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in text.splitlines()
                                                   if line and not line.startswith("#"))}


# --- webhook bodies against the published schema --------------------------------------------------


@functools.cache
def _webhook_validator(event_type: str) -> Any:
    import jsonschema

    from router.web.openapi import OPENAPI

    entry = OPENAPI["webhooks"].get(event_type)
    if entry is None:
        return None
    schema = entry["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": OPENAPI["components"]})


def webhook_schema_errors(body: bytes, event_type: str) -> list[str]:
    """Why a delivered webhook does not match /v1/openapi.json's `webhooks` entry for its type ([] if it does).

    Every receiver in the suite calls this on every body it gets, so no event the code sends can
    drift from the schema merchants generate their parsers from.
    """
    try:
        event = json.loads(body)
    except ValueError:
        return ["the body is not JSON"]
    validator = _webhook_validator(event_type)
    if validator is None:
        return [f"no webhooks entry for the event type header {event_type!r}"]
    if not isinstance(event, dict) or event.get("type") != event_type:
        return [f"the body's type differs from the header's {event_type!r}"]
    return [f"{event_type} {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(event)]
