"""Upgrade requests (a WebSocket handshake) against a real `return-router serve`: the service speaks no
WebSocket, so each is the plain HTTP request it also is, through the guard and the pages, logged masked."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.e2e.raw import exchange
from tests.e2e.test_slow_clients import ORDER, checkouts, served
from tests.support.config import HOST, TOKEN
from tests.support.emulator import Emulator

SESSION = "bd504926-f659-4ad7-a1a9-9a747aaf5275"
REF = "Zq3" + "r" * 29
HANDSHAKE = (f"GET /amazon-pay/result?ref={REF}&amazonCheckoutSessionId={SESSION} HTTP/1.1\r\nHost: {HOST}\r\n"
             "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


def test_a_websocket_handshake_gets_the_page_and_no_log_line_names_its_ids(
        tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> None:
    with served(tmp_path, emulator, key_files, "") as (port, _):
        url = f"http://127.0.0.1:{port}"
        page = exchange(url, (HANDSHAKE + "\r\n").encode())
        two_hosts = exchange(url, (HANDSHAKE + "Host: evil.example\r\n\r\n").encode())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall((HANDSHAKE + "\r\n").encode() + f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            sock.settimeout(5)
            pipelined = b""
            while chunk := sock.recv(65536):  # until the server closes
                pipelined += chunk
    # The unknown order's page (uvicorn's WebSocket answered 403 with no body, before the app).
    assert page.status == 404 and "text/html" in page.headers["content-type"], (page.status, page.headers)
    assert "upgrade" not in page.headers and "sec-websocket-accept" not in page.headers
    # The guard sees it (it skipped the websocket scope: two Host headers got the 403 too).
    assert two_hosts.status == 400 and "more than one Host" in two_hosts.text
    # Its connection ends with the answer: what follows an upgrade in the same read is not parsed, and a
    # request behind it would have waited for good.
    assert page.headers["connection"] == "close"
    assert pipelined.startswith(b"HTTP/1.1 404 ") and b"HTTP/1.1 200 " not in pipelined
    printed = (tmp_path / "serve.out").read_text()
    assert "GET /amazon-pay/result" in printed  # the access lines were written, masked
    assert SESSION not in printed and REF not in printed, printed
    assert "WebSocket" not in printed and "Unsupported upgrade" not in printed, printed


def test_a_post_that_also_asks_for_h2c_is_served_with_its_body(
        tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> None:
    """curl --http2 on http://, and other clients trying h2c, send Upgrade on a POST with its body: the parser
    stopped at the head and dropped the body, and a valid register got 400 invalid_json. The body is read
    by its Content-Length, in the same read as the head or after it."""
    head = (f"POST /v1/checkouts HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            f"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: {len(ORDER)}\r\n\r\n").encode()
    with served(tmp_path, emulator, key_files, "") as (port, _):
        url = f"http://127.0.0.1:{port}"
        together = exchange(url, head + ORDER)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + ORDER[:10])
            time.sleep(0.2)  # the rest of the body in a later read
            sock.sendall(ORDER[10:])
            sock.settimeout(5)
            apart = b""
            while chunk := sock.recv(65536):  # until the server closes
                apart += chunk
    assert together.status == 201, together.text
    assert together.headers["connection"] == "close" and "upgrade" not in together.headers
    assert apart.startswith(b"HTTP/1.1 201 "), apart
    assert checkouts(tmp_path) == 2
