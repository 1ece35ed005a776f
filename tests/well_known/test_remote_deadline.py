"""check_host's overall deadline against a real server that drips its answer one byte at a time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from well_known import check_host

DRIP_BYTES = 40  # the server is bounded: it stops after this many bytes (0.3 s apart: 12 s)


def _drip(conn: socket.socket) -> None:
    with conn:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
            for _ in range(DRIP_BYTES):
                conn.sendall(b" ")
                time.sleep(0.3)
        except OSError:  # the client gave up: that is the point
            pass


@pytest.fixture
def dripping_host() -> Iterator[str]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


async def test_a_dripping_server_is_cut_off_at_the_deadline(dripping_host: str) -> None:
    # Each byte arrives well within the read timeout, so only the overall deadline can end the fetch.
    problems = await check_host(dripping_host, scheme="http", timeout=2, deadline=1)
    messages = {(p.where.rsplit("/", 1)[-1], p.message) for p in problems if p.severity == "error"}
    assert ("apple-app-site-association", "no complete answer within 1 s") in messages, problems
    assert ("assetlinks.json", "no complete answer within 1 s") in messages, problems
