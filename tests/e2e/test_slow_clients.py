"""Clients that hold connections, against a real `return-router serve` process and its [server] limits."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bench._load import wait_for_port
from tests.support import free_port, http_client
from tests.support.config import TOKEN, router_config
from tests.support.emulator import Emulator

HEAD = b"GET /healthz HTTP/1.1\r\nHost: pay.example.com\r\n"


@contextlib.contextmanager
def served(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path], server: str,
           *args: str) -> Iterator[tuple[int, int]]:
    """(port, pid) of `return-router serve --config` with the given [server] section; its output in serve.out."""
    config = tmp_path / "rr.toml"
    config.write_text(router_config(emulator.url, key_files[0], f"sqlite:///{tmp_path}/rr.db",
                                    extra="\n[server]\n" + server))
    port = free_port()
    command = [sys.executable, "-m", "router.cli", "serve", "--config", str(config), "--port", str(port), *args]
    out = (tmp_path / "serve.out").open("wb")
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                            env={"RR_TEST_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"})
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
    with served(tmp_path, emulator, key_files, "header_timeout_seconds = 1\nkeep_alive_seconds = 1\n") as running:
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
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 20  # the server notices the closed sockets; then it serves again
        while http_client().get(f"http://127.0.0.1:{port}/healthz").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


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
    server = '\n[server]\nheader_timeout_seconds = 0\nmax_headers = "many"\nx = 1\n'
    config.write_text(router_config(emulator.url, key_files[0], f"sqlite:///{tmp_path}/rr.db", extra=server))
    result = subprocess.run([sys.executable, "-m", "router.cli", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env={"RR_TEST_TOKEN": TOKEN})
    assert result.returncode == 2
    assert f"{config}: server.header_timeout_seconds: must be greater than 0" in result.stderr
    assert f"{config}: server.max_headers: must be an integer" in result.stderr
    assert f"{config}: server.x: unknown key" in result.stderr
