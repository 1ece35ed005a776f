"""Shared test helpers: real servers on real sockets."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers started as separate processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15, step: float = 0.05) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


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
    server = uvicorn.Server(uvicorn.Config(app, **config))
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
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
