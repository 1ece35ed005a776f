"""Clients that hold connections, against a real `return-router serve` process and its [server] limits."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.app import create_app
from router.config import ServerSettings
from router.web import server
from router.web.demo import demo_settings
from tests.bench._load import wait_for_port
from tests.e2e.raw import captured_logs, exchange
from tests.support import free_port, http_client, serve_app
from tests.support.config import TOKEN, router_config
from tests.support.emulator import Emulator
from tests.support.processes import ROOT

HEAD = b"GET /healthz HTTP/1.1\r\nHost: pay.example.com\r\n"
ORDER = json.dumps({"merchantReference": "slow-1", "chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
                    "paymentIntent": "AuthorizeWithCapture"}).encode()


def register_head(length: int, token: str | None = TOKEN) -> bytes:
    """The head of a POST /v1/checkouts whose body (`length` bytes of JSON) is still to come."""
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    return (b"POST /v1/checkouts HTTP/1.1\r\nHost: pay.example.com\r\nContent-Type: application/json\r\n"
            + auth + b"Content-Length: %d\r\n\r\n" % length)


def checkouts(tmp_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(tmp_path / "rr.db")) as db:
        return int(db.execute("SELECT count(*) FROM checkouts").fetchone()[0])


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket's timeout)."""
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


@contextlib.contextmanager
def served(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path], server: str,
           *args: str) -> Iterator[tuple[int, int]]:
    """(port, pid) of `return-router serve --config` with the given [server] section; its output in serve.out."""
    config = tmp_path / "rr.toml"
    config.write_text(router_config(emulator.url, key_files[0], f"sqlite:///{tmp_path}/rr.db",
                                    extra="\n[server]\n" + server + '\n[metrics]\nlisten = ""\n'))  # no port 9100 race
    port = free_port()
    command = [sys.executable, "-m", "router.cli", "serve", "--config", str(config), "--port", str(port), *args]
    out = (tmp_path / "serve.out").open("wb")
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                            env={"RR_TEST_TOKEN": TOKEN, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        out.close()
        printed = (tmp_path / "serve.out").read_text()
        assert "Traceback" not in printed, printed


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def unread_bytes(port: int) -> int:
    """Bytes the kernel holds for the server's sockets on `port` that the server has not read yet."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            total += int(fields[4].split(":")[1], 16)
    return total


def settled_rss_kib(pid: int, port: int) -> int:
    """The server's RSS once it has read everything sent to it (bounded wait)."""
    for _ in range(200):
        if unread_bytes(port) == 0:
            break
        time.sleep(0.1)
    return rss_kib(pid)


def drip(port: int, prefix: bytes, every: float, max_bytes: int) -> tuple[int, bytes]:
    """Send `prefix`, then one header byte every `every` seconds, at most `max_bytes` of them.

    Returns how many were sent before the server answered or closed, and what it answered.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(prefix)
        sock.settimeout(every)
        for sent in range(max_bytes):
            try:
                answer = sock.recv(4096)
                return sent, answer  # the server spoke (or closed: b"") before the head was done
            except TimeoutError:
                pass
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                return sent, b""
    return max_bytes, b""


@pytest.fixture
def strict(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> Iterator[tuple[int, int]]:
    with served(tmp_path, emulator, key_files,
                "header_timeout_seconds = 1\nbody_timeout_seconds = 1\nkeep_alive_seconds = 1\n") as running:
        yield running


def test_a_head_sent_byte_by_byte_is_cut_off(strict: tuple[int, int]) -> None:
    port, _ = strict
    sent, answer = drip(port, HEAD + b"X-Slow: ", every=0.2, max_bytes=100)  # 100 bytes take 20 s at most
    assert sent < 100 and answer.startswith(b"HTTP/1.1 408 "), (sent, answer)


def test_a_request_line_sent_byte_by_byte_is_cut_off(strict: tuple[int, int]) -> None:
    port, _ = strict
    sent, answer = drip(port, b"GET /", every=0.2, max_bytes=100)  # the path, one byte at a time
    assert sent < 100 and answer.startswith(b"HTTP/1.1 408 "), (sent, answer)


def test_a_silent_connection_is_cut_off(strict: tuple[int, int]) -> None:
    port, _ = strict
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 5, answer


def test_a_byte_that_starts_no_method_is_refused_at_once(strict: tuple[int, int]) -> None:
    port, _ = strict
    sent, answer = drip(port, b"", every=0.2, max_bytes=100)  # "xxx…": no HTTP method starts so
    assert sent < 3 and answer.startswith(b"HTTP/1.1 400 "), (sent, answer)


def test_a_body_sent_byte_by_byte_is_cut_off_and_nothing_is_stored(strict: tuple[int, int],
                                                                   tmp_path: Path) -> None:
    port, _ = strict
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(register_head(len(ORDER)))
        started = time.monotonic()
        sent, answer = 0, b""
        sock.settimeout(0.2)
        while sent < len(ORDER) and not (answer := read_answer(sock)):  # a byte every 0.2 s: 20 s for the body
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(ORDER[sent:sent + 1])
            sent += 1
        took = time.monotonic() - started
        sock.settimeout(5)
        answer += read_answer(sock)  # then the server closes: recv gives b"" and read_answer returns
    assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer, answer
    assert answer.count(b"HTTP/1.1") == 1, answer  # the app's own answer to the cut-off request is not written
    assert sent < len(ORDER) and took < 1 + 1.5, (sent, took)  # body_timeout_seconds = 1, plus slack
    assert checkouts(tmp_path) == 0
    printed = (tmp_path / "serve.out").read_text()
    assert "ERROR" not in printed and "failed" not in printed and " 500" not in printed, printed


def test_a_body_the_app_did_not_wait_for_still_has_a_deadline(strict: tuple[int, int]) -> None:
    """Answered without the body (401, no token): the client then sends it byte by byte; the connection
    is closed at the deadline after the answer, which is all it gets."""
    port, _ = strict
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(register_head(1000, token=None))
        started = time.monotonic()
        sock.settimeout(0.2)
        data, closed = b"", False
        while time.monotonic() - started < 6 and not closed:  # keep_alive_seconds = 1 never fires: bytes keep coming
            try:
                chunk = sock.recv(65536)
                data, closed = data + chunk, not chunk
            except TimeoutError:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b" ")
            except ConnectionResetError:
                closed = True
        took = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 401 ") and data.count(b"HTTP/1.1") == 1, data
    assert closed and took < 1 + 1.5, took


def test_a_body_in_pieces_within_the_deadline_is_served(strict: tuple[int, int], tmp_path: Path) -> None:
    """Three requests on one connection, each body in four pieces 0.1 s apart: every body within its own
    deadline (1 s from its head, with room for a loaded machine's late wake-ups), the three together past one."""
    port, _ = strict
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for i in range(3):
            order = ORDER.replace(b"slow-1", b"slow-%d" % i)
            sock.sendall(register_head(len(order)))
            pieces = [order[j:j + len(order) // 4 + 1] for j in range(0, len(order), len(order) // 4 + 1)]
            for piece in pieces:
                time.sleep(0.1)
                sock.sendall(piece)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 201 "), data
            assert json.loads(body)["checkout"]["merchantReference"] == f"slow-{i}"
    assert checkouts(tmp_path) == 3


def test_the_demo_form_cut_off_by_the_body_deadline_ends_quietly(tmp_path: Path) -> None:
    """The built-in demo (`serve` without --config) reads its form with request.body(): cut off, the
    ClientDisconnect it raises is no failure logged and no 500."""
    server.set_limits(ServerSettings(body_timeout_seconds=1))
    try:
        with captured_logs() as logs, serve_app(create_app(demo_settings(str(tmp_path / "demo.db")), background=False),
                                                http=server.BoundedHeadProtocol) as url:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as sock:
                sock.sendall(b"POST /demo/start HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nscen")
                answer = read_answer(sock)
            time.sleep(0.2)  # the app's task ends after the connection is gone
    finally:
        server.set_limits(ServerSettings())
    assert answer.startswith(b"HTTP/1.1 408 ") and answer.count(b"HTTP/1.1") == 1, answer
    assert "ERROR" not in logs.text and "failed" not in logs.text, logs.text


def test_a_prompt_client_is_served_and_kept_alive(strict: tuple[int, int]) -> None:
    port, _ = strict
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200


def test_headers_beyond_the_size_limit_are_refused(strict: tuple[int, int]) -> None:
    port, _ = strict
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # all at once: the app measures it
        sock.sendall(HEAD + b"X-Big: " + b"a" * 20_000 + b"\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # unfinished: the protocol's bound
        sock.sendall(HEAD + b"X-Big: " + b"a" * 20_000)
        assert sock.recv(4096).startswith(b"HTTP/1.1 431 ")


def test_many_small_headers_are_refused(strict: tuple[int, int]) -> None:
    port, _ = strict
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(150))  # 1.5 KB: under the size limit, over the count
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(HEAD + headers + b"Connection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 431 ")


def test_memory_stays_bounded_with_forty_unfinished_heads(strict: tuple[int, int]) -> None:
    port, pid = strict
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    before = rss_kib(pid)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
    try:
        chunk = b"X-Fill: " + b"a" * 65_000 + b"\r\n"
        for sock in socks:
            sock.sendall(HEAD)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for _ in range(16):  # 1 MB of unfinished headers per connection
                    sock.sendall(chunk)
        after = settled_rss_kib(pid, port)
    finally:
        for sock in socks:
            sock.close()
    # Unbounded buffering would hold 40 MB here; the head bound holds at most a few chunks per connection.
    assert after - before < 16 * 1024, (before, after, unread_bytes(port))


def test_concurrency_beyond_the_limit_is_a_503(tmp_path: Path, emulator: Emulator,
                                               key_files: tuple[Path, Path]) -> None:
    with served(tmp_path, emulator, key_files, "limit_concurrency = 4\nheader_timeout_seconds = 2\n") as (port, _):
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(HEAD + b"Connection: close\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 503 ")
            # Not uvicorn's bare text: when to come back, a page that tries again itself, the API's JSON;
            # the connection closed (kept alive, it would hold a slot more).
            page = exchange(f"http://127.0.0.1:{port}", b"GET /amazon-pay/result?ref=x HTTP/1.1\r\n"
                                                        b"Host: pay.example.com\r\n\r\n", timeout=10)
            api = exchange(f"http://127.0.0.1:{port}", register_head(2) + b"{}", timeout=10)
            association = exchange(f"http://127.0.0.1:{port}", b"GET /.well-known/assetlinks.json HTTP/1.1\r\n"
                                                               b"Host: pay.example.com\r\n\r\n", timeout=10)
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 20  # the server notices the closed sockets; then it serves again
        while http_client().get(f"http://127.0.0.1:{port}/healthz").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    for answer in (page, api):
        assert answer.status == 503 and answer.headers["retry-after"] == "10", (answer.status, answer.headers)
        assert answer.headers["connection"] == "close" and answer.headers["cache-control"] == "no-store"
    assert "text/html" in page.headers["content-type"] and '<meta http-equiv="refresh" content="10">' in page.text
    assert json.loads(api.body)["error"]["code"] == "unavailable"
    assert association.status == 200  # answered in front, with no task: beyond the limit too
    assert "Exceeded concurrency limit." in (tmp_path / "serve.out").read_text()


def test_slow_bodies_hold_the_concurrency_limit_only_until_their_deadline(
        tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> None:
    """The attack: more connections than `limit_concurrency`, each a head with `Content-Length: 100` and one
    byte of body. Until the body deadline everything else gets a 503; after it, the service serves again."""
    with served(tmp_path, emulator, key_files, "limit_concurrency = 20\nbody_timeout_seconds = 2\n") as (port, _):
        url = f"http://127.0.0.1:{port}/healthz"
        assert http_client().get(url).status_code == 200
        slow: list[socket.socket] = []
        try:
            for _ in range(25):  # one after the other, each read by the server before the next connects
                slow.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                slow[-1].sendall(register_head(100) + b"{")
                for _ in range(100):
                    if unread_bytes(port) == 0:
                        break
                    time.sleep(0.01)
            started = time.monotonic()
            during = http_client().get(url).status_code
            freed = None
            while time.monotonic() - started < 8:
                if http_client().get(url).status_code == 200:
                    freed = time.monotonic() - started
                    break
                time.sleep(0.05)
            answers = []
            for sock in slow:
                sock.settimeout(5)
                answers.append(read_answer(sock)[:13])
        finally:
            for sock in slow:
                sock.close()
    assert during == 503  # while the slow bodies hold every slot, even /healthz is refused
    assert freed is not None and freed < 2 + 2, freed  # body_timeout_seconds = 2, plus slack
    # 19 connections hold a slot each (the 20th connection is over the limit) and are cut off with a 408;
    # the rest got the 503 at once (it closes the connection).
    assert sorted(set(answers)) == [b"HTTP/1.1 408 ", b"HTTP/1.1 503 "], answers
    assert answers.count(b"HTTP/1.1 408 ") == 19, answers
    assert checkouts(tmp_path) == 0


def test_trace_logging_masks_session_ids_and_refs(tmp_path: Path, emulator: Emulator,
                                                  key_files: tuple[Path, Path]) -> None:
    session_id, ref = "bd504926-f659-4ad7-a1a9-9a747aaf5275", "Zq3" + "r" * 29
    with served(tmp_path, emulator, key_files, "", "--log-level", "trace") as (port, _):
        url = f"http://127.0.0.1:{port}"
        httpx.post(f"{url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref})
        httpx.get(f"{url}/amazon-pay/result", params={"ref": ref, "amazonCheckoutSessionId": session_id},
                  headers={"host": "pay.example.com"})
    printed = (tmp_path / "serve.out").read_text()
    assert "ASGI [" in printed and "scope=" in printed  # trace lines were written
    assert session_id not in printed and ref not in printed
    assert "bd50…5275" in printed


def test_server_settings_are_checked(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> None:
    config = tmp_path / "rr.toml"
    server = '\n[server]\nheader_timeout_seconds = 0\nbody_timeout_seconds = -1\nmax_headers = "many"\nx = 1\n'
    config.write_text(router_config(emulator.url, key_files[0], f"sqlite:///{tmp_path}/rr.db", extra=server))
    result = subprocess.run([sys.executable, "-m", "router.cli", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env={"RR_TEST_TOKEN": TOKEN})
    assert result.returncode == 2
    assert f"{config}: server.header_timeout_seconds: must be greater than 0" in result.stderr
    assert f"{config}: server.body_timeout_seconds: must be greater than 0" in result.stderr
    assert f"{config}: server.max_headers: must be an integer" in result.stderr
    assert f"{config}: server.x: unknown key" in result.stderr
