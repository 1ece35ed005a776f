"""Amazon Pay client: finalize calls/s against the emulator, and the client's own CPU cost per call.

The emulator runs in a subprocess (uvicorn, via `router.amazon_pay.emulator.app.run`) so the client's
CPU time is measured alone. Baselines from the same run:
- throughput: a bare httpx POST (same outbound transport) of the same bytes to the same URL, unsigned
  (the emulator answers 400 MissingHeader without RSA work), at the same concurrency;
- CPU: building the same request without serialization or signing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from router.amazon_pay import (
    AmazonPayAuth,
    AmazonPayClient,
    ClientConfig,
    RetryPolicy,
    generate_key_pair,
    load_private_key,
    serialize_payload,
)
from router.outbound import async_client
from tests.support import free_port

KEY_ID = "SANDBOX-AHBENCHKEY00000000000"
ORDER = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "paymentIntent": "AuthorizeWithCapture"}
LEVELS = ((1, 200), (10, 1000), (100, 2000))  # (concurrent callers, total calls)
TIME_CAP = 5.0  # seconds per measurement, whichever comes first
CPU_ITERATIONS = 500
POOL = 10  # the client's default connection pool; the bare baseline uses the same


@contextmanager
def emulator_process(public_pem: bytes) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "pub.pem"
        key_file.write_bytes(public_pem)
        port = free_port()
        code = (
            "import sys; from router.amazon_pay.emulator.app import run; "
            "run('127.0.0.1', int(sys.argv[1]), [sys.argv[2]], None, None)"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(port), f"{KEY_ID}={key_file}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, proc)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"{url}/_emulator/requests")
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("emulator subprocess did not start") from None
            time.sleep(0.1)


async def create_sessions(url: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=url) as http:
        semaphore = asyncio.Semaphore(50)

        async def one() -> str:
            async with semaphore:
                response = await http.post("/_emulator/checkout-sessions", json=ORDER)
                return str(response.json()["checkoutSessionId"])

        return list(await asyncio.gather(*(one() for _ in range(count))))


@dataclass(frozen=True)
class Run:
    calls: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu / self.calls


async def drive(concurrency: int, items: list[str], call: Callable[[str], Awaitable[None]]) -> Run:
    """`concurrency` workers take items until they run out or TIME_CAP passes."""
    queue = iter(items)
    done = 0
    start, cpu_start = time.perf_counter(), time.process_time()

    async def worker() -> None:
        nonlocal done
        for item in queue:
            if time.perf_counter() - start > TIME_CAP:
                return
            await call(item)
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(done, time.perf_counter() - start, time.process_time() - cpu_start)


async def measure_level(url: str, config: ClientConfig, concurrency: int, total: int) -> tuple[Run, Run]:
    sessions = await create_sessions(url, total)
    async with AmazonPayClient(config, max_connections=POOL) as client:

        async def finalize(session_id: str) -> None:
            result = await client.finalize_checkout_session(session_id, ORDER, uuid.uuid4().hex)
            assert result.http_status == 200

        signed = await drive(concurrency, sessions, finalize)
    body = serialize_payload(ORDER)
    async with async_client(max_connections=POOL, timeout=httpx.Timeout(30)) as http:  # the client's transport

        async def bare(session_id: str) -> None:
            await http.post(f"{url}/v2/checkoutSessions/{session_id}/finalize", content=body)

        baseline = await drive(concurrency, sessions, bare)
    return signed, baseline


def cpu_per_call(config: ClientConfig) -> tuple[float, float]:
    """Microseconds of CPU per request: (serialize + sign via AmazonPayAuth, build only)."""
    auth = AmazonPayAuth(config.public_key_id, config.private_key, config.region, config.algorithm)
    url = "https://pay-api.amazon.com/v2/checkoutSessions/bd504926-f659-4ad7-a1a9-9a747aaf5275/finalize"
    prebuilt = serialize_payload(ORDER)

    def signed() -> None:
        request = httpx.Request(
            "POST", url, content=serialize_payload(ORDER), headers={"x-amz-pay-idempotency-key": "k"}
        )
        next(auth.auth_flow(request))

    def bare() -> None:
        httpx.Request("POST", url, content=prebuilt, headers={"x-amz-pay-idempotency-key": "k"})

    results = []
    for action in (signed, bare):
        start = time.process_time()
        for _ in range(CPU_ITERATIONS):
            action()
        results.append(1e6 * (time.process_time() - start) / CPU_ITERATIONS)
    return results[0], results[1]


def main() -> None:
    private_pem, public_pem = generate_key_pair()
    retry = RetryPolicy(max_attempts=1, read_timeout=30, deadline=60)
    with emulator_process(public_pem) as url:
        config = ClientConfig(KEY_ID, load_private_key(private_pem), endpoint=url, retry=retry)
        print(
            f"Connection pool: {POOL} for both; emulator in a subprocess; at most {TIME_CAP:g} s per cell.\n"
        )
        print("| callers | signed finalize/s | bare POST/s | ratio | client CPU ms/call signed / bare |")
        print("|---:|---:|---:|---:|---:|")
        for concurrency, total in LEVELS:
            signed, baseline = asyncio.run(measure_level(url, config, concurrency, total))
            ratio = signed.rate / baseline.rate
            cpu = f"{signed.cpu_ms_per_call:.2f} / {baseline.cpu_ms_per_call:.2f}"
            rates = f"{signed.rate:,.0f} ({signed.calls} calls) | {baseline.rate:,.0f}"
            print(f"| {concurrency} | {rates} | {ratio:.2f} | {cpu} |", flush=True)
    signed_us, bare_us = cpu_per_call(config)
    print()
    print("| client CPU per request (no I/O) | µs | ratio to baseline |")
    print("|---|---:|---:|")
    label = f"serialize + sign (RSA-2048 PSS, {config.algorithm})"
    print(f"| {label} | {signed_us:,.0f} | {signed_us / bare_us:.1f} |")
    print(f"| baseline: build the same httpx.Request | {bare_us:,.0f} | 1.0 |")


if __name__ == "__main__":
    main()
