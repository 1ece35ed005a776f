"""Shared by the return benchmarks: an emulator process with added latency, a router process, N returns.

The router runs in a process of its own (one worker, SQLite file), so that its CPU time can be read from
/proc/<pid>/stat: `python -m uvicorn router.cli:app_factory --factory`, or `return-router serve` with its
metrics listener (`stack(serve=True)`, whose /metrics `sqlite_commits` reads); the emulator runs in its
own process. Each success return
is a new registered checkout bound to a new emulator session that answers after `latency_ms`.
`Placement` can give the router a core of its own and the emulator and the bench's client the others,
as in production, where Amazon's and the buyers' CPU is not the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import httpx

from router.amazon_pay import generate_key_pair
from tests.support import free_port, metric_samples
from tests.support.config import KEY_ID, TOKEN, router_config

from ._load import server, wait_for_port

HOST = "pay.example.com"
ORDER = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "paymentIntent": "AuthorizeWithCapture"}
# [amazon_pay] keys of a merchant whose limits Amazon raised: the emulator counts as Sandbox (finalize: burst 2,
# 1/s), so without them the router's own quota answers most returns 503 and a CPU bench measures that page.
RAISED_QUOTAS = """finalize_quota = [10000, 10000]
get_checkout_session_quota = [10000, 10000]
get_charge_quota = [10000, 10000]
"""


@dataclass(frozen=True)
class Placement:
    """Which CPUs the router, and the emulator with the bench's client, run on (None: any)."""

    name: str
    router: frozenset[int] | None = None
    others: frozenset[int] | None = None

    def wrapper(self, cpus: frozenset[int] | None) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []

    @contextlib.contextmanager
    def client(self) -> Iterator[None]:
        """Run this thread (the bench's client, and the threads it starts) on `others` meanwhile."""
        if self.others is None:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.others)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)


SHARED = Placement("all on every core")


def own_core() -> Placement | None:
    """The router on one core, the emulator and the client on the rest; None with fewer than 2 cores."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None
    return Placement(f"router on core {cpus[0]}, emulator and client on the rest", frozenset(cpus[:1]),
                     frozenset(cpus[1:]))


@dataclass(frozen=True)
class Stack:
    router: str  # base URL
    router_pid: int
    emulator: str
    private_pem: bytes
    directory: Path
    metrics: str | None = None  # the router's /metrics, when it runs under `serve`


@contextlib.contextmanager
def emulator_process(public_key: Path, key_id: str = KEY_ID, wrapper: Sequence[str] = ()) -> Iterator[str]:
    """`return-router emulator` in its own process, accepting `key_id`'s signatures."""
    port = free_port()
    cmd = [*wrapper, sys.executable, "-m", "router.cli", "emulator", "--port", str(port),
           "--public-key", f"{key_id}={public_key}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def stack(extra: str = "", wrapper: Sequence[str] = (), placement: Placement = SHARED, *,
          serve: bool = False) -> Iterator[Stack]:
    """Emulator + router (one worker, SQLite with synchronous=FULL) in two processes; `extra`: more
    [amazon_pay] lines (e.g. RAISED_QUOTAS); `wrapper`: a command the router's python runs under;
    `placement`: the CPUs each runs on (the client's: `placement.client()`); `serve`: the router runs as
    `return-router serve` (its default logging, its metrics listener) instead of under uvicorn's CLI."""
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        directory = Path(tmp)
        private_pem, public_pem = generate_key_pair()
        (directory / "private.pem").write_bytes(private_pem)
        (directory / "public.pem").write_bytes(public_pem)
        with emulator_process(directory / "public.pem", wrapper=placement.wrapper(placement.others)) as emulator:
            config = directory / "bench.toml"
            metrics = f"127.0.0.1:{free_port()}" if serve else None
            config.write_text(router_config(emulator, directory / "private.pem", f"sqlite:///{tmp}/bench.db",
                                            extra=extra) + (f'\n[metrics]\nlisten = "{metrics}"\n' if metrics else ""))
            env = {"RETURN_ROUTER_CONFIG": str(config), "RR_TEST_TOKEN": TOKEN}
            wrapper = [*placement.wrapper(placement.router), *wrapper]
            command = [*wrapper, sys.executable, "-m", "router.cli", "serve", "--config", str(config),
                       "--host", "127.0.0.1"] if serve else None
            with server(["router.cli:app_factory", "--factory"], env, logs_to_pipe=True, wrapper=wrapper,
                        command=command) as (router, pid):  # logs to a pipe, as under systemd or docker
                yield Stack(router, pid, emulator, private_pem, directory,
                            f"http://{metrics}/metrics" if metrics else None)


def sqlite_commits(metrics: str) -> float:
    """The router's SQLite COMMITs so far, from its /metrics."""
    return metric_samples(metrics)["return_router_sqlite_commit_seconds_count"]


async def new_sessions(emulator: str, n: int, latency_ms: int, concurrency: int = 1) -> list[str]:
    spec = {**ORDER, "latency_ms": latency_ms}
    async with httpx.AsyncClient(timeout=30) as client:
        async def one() -> str:
            return str((await client.post(f"{emulator}/_emulator/checkout-sessions", json=spec)).json()[
                "checkoutSessionId"])
        return await _gathered(one, n, concurrency)


async def prepare(s: Stack, n: int, latency_ms: int, concurrency: int = 1) -> list[str]:
    """n registered checkouts, each with its own emulator session: the URLs Amazon would redirect to."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    body = {"merchantReference": "bench", **ORDER}
    async with httpx.AsyncClient(timeout=30) as client:
        async def one() -> str:
            return str((await client.post(f"{s.router}/v1/checkouts", json=body, headers=auth)).json()["ref"])
        refs = await _gathered(one, n, concurrency)
    ids = await new_sessions(s.emulator, n, latency_ms, concurrency)
    return [f"/amazon-pay/result?{urlencode({'ref': r, 'amazonCheckoutSessionId': i})}"
            for r, i in zip(refs, ids, strict=True)]


async def _gathered(one: Callable[[], Awaitable[str]], n: int, concurrency: int) -> list[str]:
    """n results of `one()`, at most `concurrency` at a time."""
    results: list[str] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            results.append(await one())

    share, extra = divmod(n, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
    return results


@dataclass(frozen=True)
class Latencies:
    seconds: list[float]  # one per request, in completion order
    wall: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return len(self.seconds) / self.wall

    def p(self, q: float) -> float:
        """Milliseconds at quantile q (0.5, 0.99)."""
        ordered = sorted(self.seconds)
        return 1000 * (statistics.median(ordered) if q == 0.5 else ordered[max(0, int(len(ordered) * q) - 1)])


async def get_all(base: str, paths: list[str], concurrency: int, host: str = HOST) -> Latencies:
    """GET every path, `concurrency` at a time, on `concurrency` keep-alive connections (as buyers' phones
    would each keep theirs). aiohttp, the client of the latency baseline (tests/bench/latency.py): httpx's
    own pool slows down with concurrency (httpx #3215) and would add its delay to the router's figures."""
    queue = list(reversed(paths))
    seconds: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"host": host}

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            path = queue.pop()
            start = time.perf_counter()
            async with session.get(base + path, headers=headers, allow_redirects=False) as answer:
                await answer.read()
            seconds.append(time.perf_counter() - start)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return Latencies(seconds, time.perf_counter() - started, statuses)


def expect_all(statuses: dict[int, int], status: int, what: str) -> None:
    """Refuse to print a figure measured on the wrong answers (a CPU bench of 503 pages measures those)."""
    wrong = {code: n for code, n in statuses.items() if code != status}
    if wrong:
        raise SystemExit(f"{what}: expected every answer {status}, got {statuses}; no figure printed")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    return _stat_seconds(Path(f"/proc/{pid}/stat"))


def main_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process's main thread alone (where uvicorn runs the event loop)."""
    return _stat_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))


def _stat_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()  # utime and stime: fields 14 and 15 of stat(5)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
