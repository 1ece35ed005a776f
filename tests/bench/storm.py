"""The exactly-once storm: 50 buyers' returns for one checkout session at once, over two instances.

Two `return-router serve` processes on one PostgreSQL schema (when a server answers; else one
process with two workers on a SQLite file) and the Amazon Pay emulator in a third process. Each
storm is a new checkout and session; every storm must reach Amazon exactly once. Baseline: 50
concurrent GETs of /healthz on the same instances, the same way. Latency is per response, from
sending the request to the last byte; storms/s is storms (or baseline bursts) over their wall time.

The routers have the raised quotas of the other return benches: the emulator counts as Sandbox, whose
finalize quota (burst 2, 1 per second) storms run back to back would exhaust, so that a leader waited up
to a second for its token (a p99 of 1.2 s that measured the quota, not the storm; the quota has tests of
its own). The client is aiohttp, a new connection per request, as a storm of phones opens them: with
httpx's pool the /healthz baseline itself read 52-80 ms p50 against 13-15 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import httpx

from router.amazon_pay import generate_key_pair
from tests.bench._returns import RAISED_QUOTAS, emulator_process
from tests.support.config import HOST, KEY_ID, process_config
from tests.support.processes import RouterProcess, return_path
from tests.support.stores import PG_DSN, postgres_problem, with_query

CALLERS = 50
STORMS = 10


@dataclass(frozen=True)
class Burst:
    seconds: float  # wall time of the whole burst
    latencies: list[float]  # seconds, one per response
    statuses: set[int]


async def burst(client: aiohttp.ClientSession, urls: list[str]) -> Burst:
    async def one(url: str) -> tuple[float, int]:
        start = time.perf_counter()
        async with client.get(url, headers={"host": HOST}) as answer:
            await answer.read()
            return time.perf_counter() - start, answer.status

    started = time.perf_counter()
    results = await asyncio.gather(*(one(url) for url in urls))
    return Burst(time.perf_counter() - started, [r[0] for r in results], {r[1] for r in results})


@contextlib.contextmanager
def database(directory: Path) -> Iterator[tuple[str, str]]:
    """(store URL, description): a fresh PostgreSQL schema if a server answers, else a SQLite file."""
    problem = asyncio.run(postgres_problem())
    if problem:
        print(f"_{problem}; using SQLite with 2 workers_\n")
        yield f"sqlite:///{directory / 'storm.db'}", "SQLite, 1 process × 2 workers"
        return
    schema = f"rr_bench_{secrets.token_hex(6)}"
    try:
        yield with_query(PG_DSN, schema=schema), "PostgreSQL, 2 processes"
    finally:
        asyncio.run(_drop_schema(schema))


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def start_routers(directory: Path, emulator: str, private_key: Path, db_url: str) -> list[RouterProcess]:
    config = directory / "router.toml"
    # Production-like timings: nothing in a storm should wait for a lease to expire.
    text = process_config(emulator, private_key, db_url, lease_seconds=90, interval=2, resume_after=15,
                          extra=RAISED_QUOTAS)
    config.write_text(text)
    if db_url.startswith("sqlite"):
        return [RouterProcess(config, directory / "router.log", workers=2).start()]
    return [RouterProcess(config, directory / f"router-{n}.log").start() for n in "ab"]


def new_checkout(router: RouterProcess, emulator: str) -> tuple[str, str]:
    ref = router.register()
    body = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
            "paymentIntent": "AuthorizeWithCapture"}
    session = httpx.post(f"{emulator}/_emulator/checkout-sessions", json=body).json()["checkoutSessionId"]
    return ref, str(session)


def finalize_calls(emulator: str, session_id: str) -> int:
    log = httpx.get(f"{emulator}/_emulator/requests").json()["requests"]
    return sum(1 for r in log
               if r["operation"] == "finalizeCheckoutSession" and r["checkoutSessionId"] == session_id)


async def run(routers: list[RouterProcess], emulator: str) -> tuple[list[Burst], list[Burst], list[int]]:
    storms, baselines, calls = [], [], []
    connector = aiohttp.TCPConnector(limit=CALLERS, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:
        await burst(client, [f"{r.url}/healthz" for r in routers])  # warm-up
        for _ in range(STORMS):
            baselines.append(await burst(client, [f"{routers[i % len(routers)].url}/healthz"
                                                  for i in range(CALLERS)]))
            ref, session_id = await asyncio.to_thread(new_checkout, routers[0], emulator)
            path = return_path(ref, session_id)
            storms.append(await burst(client, [routers[i % len(routers)].url + path for i in range(CALLERS)]))
            calls.append(await asyncio.to_thread(finalize_calls, emulator, session_id))
    return storms, baselines, calls


def figures(bursts: list[Burst]) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, bursts per second)."""
    latencies = sorted(x * 1000 for b in bursts for x in b.latencies)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    return statistics.median(latencies), p99, len(bursts) / sum(b.seconds for b in bursts)


def row(name: str, bursts: list[Burst], baseline: list[Burst] | None) -> str:
    p50, p99, rate = figures(bursts)
    ratio = "1.00x"
    if baseline is not None:
        base_p50, _, base_rate = figures(baseline)
        ratio = f"{p50 / base_p50:.1f}x p50, {rate / base_rate:.2f}x rate"
    statuses = ",".join(str(s) for s in sorted({s for b in bursts for s in b.statuses}))
    return f"| {name} | {p50:.1f} | {p99:.1f} | {rate:.2f} | {statuses} | {ratio} |"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rr-storm-") as tmp:
        directory = Path(tmp)
        private_pem, public_pem = generate_key_pair()
        (directory / "private.pem").write_bytes(private_pem)
        (directory / "public.pem").write_bytes(public_pem)
        with emulator_process(directory / "public.pem", KEY_ID) as emulator, database(directory) as (db_url, where):
            routers = start_routers(directory, emulator, directory / "private.pem", db_url)
            try:
                storms, baselines, calls = asyncio.run(run(routers, emulator))
            finally:
                for router in routers:
                    router.stop()
    print(f"{STORMS} storms of {CALLERS} concurrent returns for one session each ({where}); "
          f"emulator without added latency; Amazon's quotas raised in the routers' config.\n")
    print("| what | p50 ms | p99 ms | storms/s | statuses | vs baseline |\n|---|---:|---:|---:|---|---|")
    print(row(f"storm: {CALLERS} returns, one session", storms, baselines))
    print(row(f"baseline: {CALLERS} × GET /healthz", baselines, None))
    print(f"\nfinalizeCheckoutSession calls per storm: {calls} (must all be 1)")
