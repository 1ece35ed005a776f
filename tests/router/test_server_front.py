"""Which requests `serve`'s protocol answers itself (router/web/server.py) and which take uvicorn's path.

uvicorn runs in this process on a real socket with the protocol; a front door that counts the answers it
gives the protocol (before they are written, so the count is in when the client reads them), and the app
behind it counts what reached the layers. The bytes are
compared with uvicorn's own path in tests/e2e/test_answered_in_front.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from router.config import Settings, load
from router.web.front import FrontDoor
from router.web.server import BoundedHeadProtocol
from tests.support import free_port
from tests.support.config import BASE_CONFIG

AASA = b"GET /.well-known/apple-app-site-association HTTP/1.1\r\nHost: pay.example.com\r\n\r\n"


class Counted(FrontDoor):
    in_front = 0

    def answer_now(self, scope: Any) -> tuple[int, bytes, bytes, bytes] | None:
        found = super().answer_now(scope)
        Counted.in_front += found is not None
        return found


class Behind:
    """Stands for the layers: a 200 with a fixed body for whatever reaches it."""

    calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        Behind.calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": b"layers"})


@contextlib.contextmanager
def running(settings: Settings, *, proxy_headers: bool) -> Iterator[int]:
    """The port of uvicorn serving the front door with the protocol (as `serve` does: no proxy headers)."""
    number = free_port()
    config = uvicorn.Config(Counted(Behind(), lambda: settings), host="127.0.0.1", port=number,
                            http=BoundedHeadProtocol, lifespan="off", log_config=None, access_log=False,
                            proxy_headers=proxy_headers)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.02)
    Counted.in_front = Behind.calls = 0
    try:
        yield number
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def settings(write_config: Callable[[str], Path], tmp_path: Path) -> Settings:
    return load(write_config(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n'), env={})


@pytest.fixture
def port(settings: Settings) -> Iterator[int]:
    with running(settings, proxy_headers=False) as number:
        yield number


def answers(port: int, raw: bytes, count: int) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        reader = sock.makefile("rb")
        found = []
        for _ in range(count):
            head = b""
            while (line := reader.readline()) not in (b"\r\n", b""):
                head += line
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            found.append(head + b"\r\n" + reader.read(length))
        return found


def test_association_files_are_answered_in_front(port: int) -> None:
    got = answers(port, AASA * 3, 3)
    assert all(answer.startswith(b"HTTP/1.1 200 ") and b"applinks" in answer for answer in got)
    assert (Counted.in_front, Behind.calls) == (3, 0)


@pytest.mark.parametrize("raw", [
    b"GET /.well-known/apple-app-site-association?x=1 HTTP/1.1\r\nHost: pay.example.com\r\n\r\n",  # a query
    b"GET /.well-known/apple-app-site-association HTTP/1.1\r\nHost: pay.example.com\r\nConnection: close\r\n\r\n",
    b"GET /.well-known/apple-app-site-association HTTP/1.0\r\nHost: pay.example.com\r\nConnection: keep-alive\r\n\r\n",
    b"GET /.well-known/apple-app-site-association HTTP/1.1\r\nHost: pay.example.com\r\nExpect: 100-continue\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"GET /.well-known/apple-app-site-association HTTP/1.1\r\nHost: pay.example.com\r\nHost: b.example\r\n\r\n",
    b"POST /.well-known/apple-app-site-association HTTP/1.1\r\nHost: pay.example.com\r\nContent-Length: 0\r\n\r\n",
    b"GET /amazon-pay/cancel HTTP/1.1\r\nHost: pay.example.com\r\n\r\n",
])
def test_what_takes_uvicorns_path(port: int, raw: bytes) -> None:
    answers(port, raw, 1)
    assert Counted.in_front == 0


def test_a_request_behind_an_unfinished_answer_waits_its_turn(port: int) -> None:
    other = b"GET /amazon-pay/cancel HTTP/1.1\r\nHost: pay.example.com\r\n\r\n"
    first, second, third = answers(port, other + AASA + AASA, 3)
    assert first.endswith(b"layers") and b"applinks" in second and b"applinks" in third
    assert Behind.calls == 1  # the layers' answer first, then the two files in order (uvicorn's queue for them)


def test_nothing_is_answered_in_front_behind_uvicorns_wrappers(settings: Settings) -> None:
    with running(settings, proxy_headers=True) as number:  # uvicorn wraps the app in its proxy-headers middleware
        got = answers(number, AASA * 2, 2)
    assert all(b"applinks" in answer for answer in got) and Counted.in_front == 0
