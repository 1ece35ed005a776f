"""Association files answered by `serve`'s protocol itself (router/web/server.py) over real sockets: the bytes
uvicorn's own path writes, the access line, and uvicorn's path for everything the shortcut must not take.

The reference is the same `serve` with --proxy-headers: uvicorn then wraps the app, so every request takes
uvicorn's request cycle and the ASGI path (router/web/front.py's FrontDoor.__call__).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bench._load import wait_for_port
from tests.support import free_port
from tests.support.config import BASE_CONFIG

AASA = b"/.well-known/apple-app-site-association"
ASSETLINKS = b"/.well-known/assetlinks.json"
HOST = b"Host: pay.example.com\r\n"


@dataclass(frozen=True)
class Served:
    port: int
    log: Path


@contextlib.contextmanager
def serve(directory: Path, *args: str) -> Iterator[Served]:
    directory.mkdir()
    config = directory / "rr.toml"
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{directory}/rr.db"\n'
                      "\n[server]\nkeep_alive_seconds = 1\n")
    port, log = free_port(), directory / "serve.out"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(config), "--port",
                                 str(port), "--log-format", "json", *args], stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc)  # type: ignore[arg-type]
            yield Served(port, log)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Served]]:
    """(the shortcut on, uvicorn's path for every request)"""
    root = tmp_path_factory.mktemp("front-wire")
    with serve(root / "front") as front, serve(root / "uvicorn", "--proxy-headers") as reference:
        yield front, reference


def exchange(port: int, raw: bytes, answers: int, *, methods: tuple[bytes, ...] = ()) -> list[bytes]:
    """Send `raw` at once on one connection; read `answers` complete responses (HEAD answers in `methods`'
    positions carry no body) and return each one's bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        reader = sock.makefile("rb")
        return [read_response(reader, head=i < len(methods) and methods[i] == b"HEAD") for i in range(answers)]


def read_response(reader: object, *, head: bool) -> bytes:
    lines = []
    while (line := reader.readline()) not in (b"\r\n", b""):  # type: ignore[attr-defined]
        lines.append(line)
    assert lines, "the connection closed before an answer"
    length = next((int(v) for k, _, v in (x.partition(b":") for x in lines) if k.lower() == b"content-length"), 0)
    body = b"" if head else reader.read(length)  # type: ignore[attr-defined]
    return b"".join(lines) + b"\r\n" + body


def normalized(response: bytes) -> bytes:
    """Without what differs from one answer to the next: the Date and the new request id."""
    response = re.sub(rb"(?m)^date: [^\r]*\r\n", b"date: -\r\n", response)
    return re.sub(rb"(?m)^x-request-id: [0-9a-f]{16}\r\n", b"x-request-id: -\r\n", response)


REQUESTS = [
    b"GET " + AASA + b" HTTP/1.1\r\n" + HOST + b"\r\n",
    b"HEAD " + AASA + b" HTTP/1.1\r\n" + HOST + b"User-Agent: AASA-Bot/1.0.0\r\n\r\n",
    b"GET " + ASSETLINKS + b" HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /apple-app-site-association HTTP/1.1\r\nHost: PAY.EXAMPLE.COM\r\n\r\n",
    b"GET " + AASA + b" HTTP/1.1\r\nHost: other.example.com\r\n\r\n",  # 404
    b"GET " + ASSETLINKS + b" HTTP/1.1\r\n\r\n",  # no Host: 404
    b"GET " + AASA + b' HTTP/1.1\r\n' + HOST + b'If-None-Match: W/"nope", *\r\n\r\n',  # 304
    b"GET " + AASA + b" HTTP/1.1\r\n" + HOST + b"X-Request-Id: from-the-proxy-123\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", REQUESTS)
def test_the_bytes_uvicorn_writes(servers: tuple[Served, Served], request_bytes: bytes) -> None:
    front, reference = servers
    method = (request_bytes.split(b" ", 1)[0],)
    ours = exchange(front.port, request_bytes, 1, methods=method)[0]
    theirs = exchange(reference.port, request_bytes, 1, methods=method)[0]
    assert normalized(ours) == normalized(theirs)
    assert ours.startswith(b"HTTP/1.1 ")


def test_an_incoming_request_id_is_answered(servers: tuple[Served, Served]) -> None:
    front, _ = servers
    ours = exchange(front.port, REQUESTS[-1], 1)[0]
    assert b"x-request-id: from-the-proxy-123\r\n" in ours


def test_pipelined_requests_are_answered_in_order(servers: tuple[Served, Served]) -> None:
    front, _ = servers
    aasa = REQUESTS[0]
    health = b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n"
    answers = exchange(front.port, aasa + health + aasa + health + ASSETLINKS.join([b"GET ", b" HTTP/1.1\r\n"])
                       + HOST + b"\r\n", 5)
    bodies = [answer.split(b"\r\n\r\n", 1)[1] for answer in answers]
    assert [b"applinks" in bodies[0], bodies[1], b"applinks" in bodies[2], bodies[3]] == [
        True, b'{"status":"ok"}', True, b'{"status":"ok"}']
    assert bodies[4].startswith(b"[") and b"delegate_permission" in bodies[4]


def test_a_head_then_a_get_on_one_connection(servers: tuple[Served, Served]) -> None:
    front, _ = servers
    head, get = REQUESTS[1], REQUESTS[0]
    first, second = exchange(front.port, head + get, 2, methods=(b"HEAD", b"GET"))
    assert first.endswith(b"\r\n\r\n") and b"content-length: 317\r\n" in first
    assert second.endswith(b"}}") and b"content-length: 317\r\n" in second


def test_a_body_sent_with_the_request_is_passed_over(servers: tuple[Served, Served]) -> None:
    front, _ = servers
    with_body = b"GET " + AASA + b" HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello"
    first, second = exchange(front.port, with_body + REQUESTS[2], 2)
    assert first.startswith(b"HTTP/1.1 200 ") and b"applinks" in first
    assert second.startswith(b"HTTP/1.1 200 ") and b"delegate_permission" in second


@pytest.mark.parametrize("request_bytes", [
    b"GET " + AASA + b" HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
    b"GET " + AASA + b" HTTP/1.0\r\n" + HOST + b"\r\n",
])
def test_a_connection_the_client_ends_is_closed_after_the_answer(servers: tuple[Served, Served],
                                                                 request_bytes: bytes) -> None:
    front, _ = servers
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(request_bytes)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")) and received.endswith(b"}}")


def test_an_idle_connection_is_closed_after_keep_alive_seconds(servers: tuple[Served, Served]) -> None:
    front, _ = servers
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(REQUESTS[0])
        reader = sock.makefile("rb")
        assert read_response(reader, head=False).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert reader.read(1) == b""  # keep_alive_seconds = 1: the server closes the connection
        assert time.monotonic() - started < 5


def access_lines(log: Path, target: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "uvicorn.access" and line.get("path") == target]


def new_access_lines(log: Path, target: str, before: int, count: int) -> list[dict[str, object]]:
    """The `count` access lines for `target` after the first `before`, waiting for the writer thread's batch."""
    for _ in range(100):
        found = access_lines(log, target)[before:]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} new access lines for {target}")


def test_the_access_line_is_uvicorns(servers: tuple[Served, Served]) -> None:
    front, reference = servers
    agent = b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
    request = b"GET " + AASA + b" HTTP/1.1\r\n" + HOST + b"User-Agent: " + agent + b"\r\n\r\n"
    lines = []
    for served in (front, reference):
        before = len(access_lines(served.log, AASA.decode()))
        exchange(served.port, request * 3, 3)
        lines.append(new_access_lines(served.log, AASA.decode(), before, 3))
    ours, theirs = ([{k: v for k, v in line.items() if k not in ("time", "request_id", "duration_ms", "message")}
                     for line in found] for found in lines)
    assert ours == theirs and ours[0]["status"] == 200 and str(ours[0]["platform"]).startswith("ios")
    assert [re.sub(r":\d+ ", " ", str(line["message"])) for line in lines[0]] == [
        re.sub(r":\d+ ", " ", str(line["message"])) for line in lines[1]]
