"""Load generation for the benchmarks: wrk when installed, else a small asyncio generator.

Servers run as separate processes (one uvicorn worker each), so the generator and the server do not
share an interpreter. Every figure is meant to be read as a ratio against a baseline loaded the same
way in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from tests.support import free_port


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


@contextlib.contextmanager
def server_process(args: Sequence[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `python -m uvicorn ARGS --port P` and yield its base URL once it accepts connections."""
    with server(args, env) as (url, _pid):
        yield url


@contextlib.contextmanager
def server(args: Sequence[str], env: dict[str, str] | None = None, *,
           command: Sequence[str] | None = None, logs_to_pipe: bool = False,
           wrapper: Sequence[str] = ()) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of `python -m uvicorn ARGS` (quiet logs), or of `COMMAND --port P` when given.
    `logs_to_pipe`: its stdout and stderr go to one pipe that a thread here reads (as under systemd or docker);
    `wrapper`: a command that runs python (valgrind …)."""
    port = free_port()
    cmd = [*wrapper, sys.executable, "-m", "uvicorn", *args, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log", "--no-server-header"]
    if command is not None:
        cmd = [*command, "--port", str(port)]
    pipe = subprocess.PIPE if logs_to_pipe else None
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=pipe,
                            stderr=subprocess.STDOUT if logs_to_pipe else None)
    if proc.stdout is not None:
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _drain(pipe: IO[bytes]) -> None:
    while pipe.read1(1 << 16):
        pass


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def load(url: str, *, host: str | None = None, seconds: float = 5, connections: int = 32) -> LoadResult:
    if shutil.which("wrk"):
        return _wrk(url, host, seconds, connections)
    return asyncio.run(_builtin(url, host, seconds, connections))


def _wrk(url: str, host: str | None, seconds: float, connections: int) -> LoadResult:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--latency", url]
    if host:
        cmd[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    return LoadResult(rps, _wrk_latency(out, "50%"), _wrk_latency(out, "99%"), errors, "wrk")


def _wrk_latency(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def _builtin(url: str, host: str | None, seconds: float, connections: int) -> LoadResult:
    parts = urlsplit(url)
    request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host or parts.netloc}\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 2")
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(len(latencies) / elapsed, statistics.median(latencies) * 1000,
                      latencies[int(len(latencies) * 0.99) - 1] * 1000, errors, "builtin")


def compare(name: str, subject: LoadResult, baseline: LoadResult, baseline_name: str) -> str:
    """A markdown table row pair with the ratio subject/baseline."""
    ratio = subject.requests_per_s / baseline.requests_per_s
    def row(label: str, r: LoadResult, times: float) -> str:
        return f"| {label} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {times:.2f}x |"

    return row(name, subject, ratio) + "\n" + row(baseline_name, baseline, 1.0)


TABLE_HEAD = "| what | requests/s | p50 ms | p99 ms | vs baseline |\n|---|---:|---:|---:|---:|"
