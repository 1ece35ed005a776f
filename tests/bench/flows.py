"""Return flows against the emulator: success returns/s (each a new session) and a cancel page loaded again
and again (a reload or a link preview: the checkout is canceled by the first), next to a bare Starlette route
rendering the same template in the same run. The router has the bench's raised quotas (the emulator counts as
Sandbox, whose finalize quota would answer most returns 503), and no figure is printed over answers that are
not all 200."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from router.amazon_pay import generate_key_pair
from tests.support import free_port
from tests.support.config import KEY_ID, TOKEN, router_config

from ._load import TABLE_HEAD, LoadResult, compare, load, server, server_process, wait_for_port
from ._returns import RAISED_QUOTAS

RETURNS = int(os.environ.get("BENCH_RETURNS", "300"))
CONCURRENCY = 10
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
HOST = "pay.example.com"


async def prepare(router: str, emulator: str, n: int) -> list[str]:
    """n registered checkouts, each with its own emulator session: the URLs Amazon would redirect to."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    body = {"merchantReference": "bench", "chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
            "paymentIntent": "AuthorizeWithCapture"}
    session = {"chargeAmount": body["chargeAmount"], "paymentIntent": "AuthorizeWithCapture"}
    async with httpx.AsyncClient(timeout=30) as client:
        refs = [(await client.post(f"{router}/v1/checkouts", json=body, headers=auth)).json()["ref"] for _ in range(n)]
        ids = [(await client.post(f"{emulator}/_emulator/checkout-sessions", json=session)).json()["checkoutSessionId"]
               for _ in range(n)]
    pairs = zip(refs, ids, strict=True)
    return [f"/amazon-pay/result?{urlencode({'ref': r, 'amazonCheckoutSessionId': s})}" for r, s in pairs]


async def returns(router: str, paths: list[str]) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    queue = list(paths)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            path = queue.pop()
            start = time.perf_counter()
            answer = await client.get(router + path, headers={"host": HOST})
            latencies.append(time.perf_counter() - start)
            errors += answer.status_code != 200
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(len(latencies) / elapsed, statistics.median(latencies) * 1000,
                      latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, errors, "httpx")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        private_pem, public_pem = generate_key_pair()
        (Path(tmp) / "private.pem").write_bytes(private_pem)
        (Path(tmp) / "public.pem").write_bytes(public_pem)
        port = free_port()
        emulator_proc = subprocess.Popen([sys.executable, "-m", "router.cli", "emulator", "--port", str(port),
                                          "--public-key", f"{KEY_ID}={tmp}/public.pem"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, emulator_proc)  # type: ignore[arg-type]
            emulator = f"http://127.0.0.1:{port}"
            config = Path(tmp) / "bench.toml"
            config.write_text(router_config(emulator, Path(tmp) / "private.pem", f"sqlite:///{tmp}/bench.db",
                                            extra=RAISED_QUOTAS))
            env = {"RETURN_ROUTER_CONFIG": str(config), "RR_TEST_TOKEN": TOKEN}
            with server(["router.cli:app_factory", "--factory"], env, logs_to_pipe=True) as (router, _), \
                    server_process(["tests.bench._pages_baseline:app"]) as baseline:  # the router logs as under systemd
                paths = asyncio.run(prepare(router, emulator, RETURNS))
                success = asyncio.run(returns(router, paths))
                cancel_path = paths[0].replace("/amazon-pay/result", "/amazon-pay/cancel")
                cancel = load(router + cancel_path, host=HOST, seconds=SECONDS)
                page = load(baseline + "/amazon-pay/cancel", seconds=SECONDS)
                problems = [f"{what}: {r.errors} answers not 200" for what, r in (("success returns", success),
                            ("cancel page", cancel), ("bare route", page)) if r.errors]
                if problems:  # a figure over error pages would measure the error page
                    print("No figures: " + "; ".join(problems))
                    return
                print(TABLE_HEAD)
                print(compare(f"success returns ({RETURNS} new sessions, {CONCURRENCY} at a time)", success, page,
                              "bare Starlette + the same template"))
                print(compare("cancel page loaded again (the same URL)", cancel, page,
                              "bare Starlette + the same template").split("\n")[0])
                print(f"\n(success: httpx client, errors {success.errors}; pages: {cancel.tool}, "
                      f"{SECONDS:.0f} s, 32 connections; each return is one signed finalize at the emulator)")
        finally:
            emulator_proc.terminate()
            emulator_proc.wait(timeout=10)
