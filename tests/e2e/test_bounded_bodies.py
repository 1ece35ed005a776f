"""Request bodies read at most as far as their reader takes, over real sockets: a declared length beyond it
is a 413 before anything is read (no `100 Continue`), a streamed body is cut off just past it."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from router.app import create_app
from router.web import server
from router.web.api import MAX_BODY
from router.web.demo import demo_settings
from router.web.demo_page import MAX_DEMO_FORM_BYTES
from tests.support import serve_app
from tests.support.config import HOST, TOKEN
from tests.support.routers import Router

FORM_HEAD = b"POST /demo/start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
SESSION = "bd504926-f659-4ad7-a1a9-9a747aaf5275"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[int]:
    with serve_app(create_app(demo_settings(str(tmp_path / "demo.db")), background=False),
                   http=server.BoundedHeadProtocol) as url:
        yield int(url.rsplit(":", 1)[1])


def first_answer(port: int, request: bytes, wait: float = 5) -> bytes:
    """What the server sends first after `request` (at most `wait` seconds), up to the end of its head."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        data = b""
        with contextlib.suppress(TimeoutError):
            while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
                data += chunk
        return data


def stored_checkouts(tmp_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(tmp_path / "demo.db")) as db:
        return int(db.execute("SELECT count(*) FROM checkouts").fetchone()[0])


def test_the_demo_form_refuses_a_huge_declared_body_at_once(demo: int, tmp_path: Path) -> None:
    started = time.monotonic()
    answer = first_answer(demo, FORM_HEAD + b"Content-Length: %d\r\n\r\nscenario=completed" % (400 << 20))
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower(), answer
    assert time.monotonic() - started < 3  # not the body deadline's 408
    assert stored_checkouts(tmp_path) == 0


def test_the_demo_form_stops_reading_a_streamed_body_past_its_size(demo: int, tmp_path: Path) -> None:
    """Chunked, so no length says it in advance: the 413 comes while the body is still open (request.body()
    waited for all of it, 400 MiB in the review)."""
    chunk = b"x" * (MAX_DEMO_FORM_BYTES + 1)
    answer = first_answer(demo, FORM_HEAD + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(chunk), chunk))
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert stored_checkouts(tmp_path) == 0


def test_the_demo_form_at_its_size_is_still_read(demo: int) -> None:
    form = b"scenario=completed&currency=USD&lang=en"
    body = form + b"&pad=" + b"x" * (MAX_DEMO_FORM_BYTES - len(form) - 5)
    assert len(body) == MAX_DEMO_FORM_BYTES
    answer = first_answer(demo, FORM_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert answer.startswith(b"HTTP/1.1 303 ") and b"location: /amazon-pay/result?ref=" in answer, answer


@pytest.mark.parametrize("path, auth", [("/v1/checkouts", f"Authorization: Bearer {TOKEN}\r\n"),
                                        (f"/v1/checkout-sessions/{SESSION}/finalize", "")])
def test_expect_100_continue_with_a_huge_length_is_a_413_not_a_100(router: Router, path: str, auth: str) -> None:
    port = int(router.url.rsplit(":", 1)[1])
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n{auth}"
            "Expect: 100-continue\r\nContent-Length: 10000000000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):  # the answer, then the server closes: the body never comes
            data += chunk
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert b"connection: close" in data.lower() and b"100 Continue" not in data
    error = json.loads(data.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "body_too_large" and str(MAX_BODY) in error["message"]


def test_expect_100_continue_within_the_limit_still_continues(router: Router) -> None:
    port = int(router.url.rsplit(":", 1)[1])
    body = json.dumps({"ref": "r" * 32}).encode()
    head = (f"POST /v1/checkout-sessions/{SESSION}/finalize HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 404 ") and b'"unknown_ref"' in data, data[:300]
