"""Outbound HTTP at 100 in flight against a local upstream answering in 100 ms.

Clients: httpx with its default pool (httpcore), httpx over aiohttp's pool (`httpx-aiohttp`), plain
aiohttp, and `router.outbound.async_client` (what the Amazon client and the webhook worker use). The
baseline is the ideal: in flight / upstream latency. The upstream is tests/bench/_upstream.py in its
own process (a bare asyncio protocol: its CPU per request is printed, a small part of the client's);
every client sends the same small JSON POST, on uvloop as under `serve`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from router.outbound import async_client

from ._load import server
from ._returns import cpu_seconds

IN_FLIGHT = 100
LATENCY_MS = 100
REQUESTS = 1500
TIME_CAP = 6.0  # seconds per run, whichever comes first
BODY = b'{"type":"checkout.completed","ref":"bench"}'
HEADERS = {"content-type": "application/json"}


Figures = tuple[float, float, float, int, float]


async def drive(post: Callable[[], Awaitable[int]]) -> Figures:
    """(requests/s, p50 ms, p99 ms, non-200 answers, client CPU µs per request) for REQUESTS posts, IN_FLIGHT
    at a time, stopping early after TIME_CAP seconds."""
    left = REQUESTS
    latencies: list[float] = []
    bad = 0
    cpu = time.process_time()

    async def worker() -> None:
        nonlocal left, bad
        while left > 0 and time.perf_counter() - started < TIME_CAP:
            left -= 1
            start = time.perf_counter()
            try:
                status = await post()
            except (httpx.HTTPError, aiohttp.ClientError):
                status = 0  # counted with the non-200 answers
            latencies.append(time.perf_counter() - start)
            bad += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    latencies.sort()
    return (len(latencies) / elapsed, 1000 * statistics.median(latencies),
            1000 * latencies[int(len(latencies) * 0.99) - 1], bad, 1e6 * cpu / len(latencies))


async def with_httpx(url: str, client: httpx.AsyncClient) -> Figures:
    async with client:
        async def post() -> int:
            return (await client.post(url, content=BODY, headers=HEADERS)).status_code

        await drive(post)  # warm: every connection open
        return await drive(post)


async def httpx_default(url: str) -> Figures:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    return await with_httpx(url, httpx.AsyncClient(limits=limits))


async def httpx_aiohttp(url: str) -> Figures:
    transport = AiohttpTransport(client=lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)))
    return await with_httpx(url, httpx.AsyncClient(transport=transport))


async def router_client(url: str) -> Figures:
    return await with_httpx(url, async_client(max_connections=IN_FLIGHT, timeout=httpx.Timeout(30)))


async def plain_aiohttp(url: str) -> Figures:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session:
        async def post() -> int:
            async with session.post(url, data=BODY, headers=HEADERS) as answer:
                await answer.read()
                return answer.status

        await drive(post)
        return await drive(post)


CLIENTS = ((f"httpx {httpx.__version__}, default transport (httpcore pool)", httpx_default),
           ("httpx over aiohttp (httpx-aiohttp transport)", httpx_aiohttp),
           ("router.outbound.async_client (what the router uses)", router_client),
           ("plain aiohttp", plain_aiohttp))


T = TypeVar("T")


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """On uvloop, as `serve` runs the router (uvicorn[standard]), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def upstream() -> Any:
    """(base URL, pid) of tests/bench/_upstream.py answering in LATENCY_MS."""
    return server([], command=[sys.executable, "-m", "tests.bench._upstream", "--latency-ms", str(LATENCY_MS)])


def main() -> None:
    ideal = IN_FLIGHT * 1000 / LATENCY_MS
    with upstream() as (base, pid):
        url = base + "/hooks"
        print(f"{REQUESTS} POSTs, {IN_FLIGHT} in flight, upstream answering in {LATENCY_MS} ms; after one warm-up "
              f"run each. Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n")
        print("| client | requests/s | p50 ms | p99 ms | errors or non-200 | client CPU µs/request "
              "| upstream CPU µs/request | vs ideal |\n|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, run in CLIENTS:
            before = cpu_seconds(pid)
            rate, p50, p99, bad, cpu = run_loop(run(url))
            spent = 1e6 * (cpu_seconds(pid) - before) / (2 * REQUESTS)  # the warm-up run and the measured one
            print(f"| {name} | {rate:,.0f} | {p50:.0f} | {p99:.0f} | {bad} | {cpu:,.0f} | {spent:,.0f} "
                  f"| {rate / ideal:.2f}x |", flush=True)
        print(f"| ideal: {IN_FLIGHT} in flight / {LATENCY_MS} ms | {ideal:,.0f} | {LATENCY_MS} | {LATENCY_MS} | 0 | – "
              "| – | 1.00x |")
        print(f"\n(at most {REQUESTS} requests or {TIME_CAP:g} s per client. The client runs in this process, so on "
              f"a busy machine its CPU per request bounds its rate: at {ideal:,.0f} requests/s each 100 µs per request "
              f"is a tenth of a core. Load average now {os.getloadavg()[0]:.1f})")
