"""Durability fixtures: return-router as real `serve` processes, the emulator and a webhook receiver.

The routers are subprocesses (`python -m router.cli serve`) in their own process group, so `kill -9`
takes down a multi-worker server with its workers, exactly as a crash would. The Amazon Pay emulator
and the webhook receiver run in this process on real sockets and outlive every router restart; the
test reads the emulator's state directly (calls per session, charges) as well as its request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.amazon_pay import create_emulator_app
from router.amazon_pay.emulator.app import Emulator as EmulatorCore
from router.amazon_pay.emulator.state import Charge
from router.amazon_pay.keys import load_public_key
from router.checkout.model import Checkout
from router.store import open_store
from router.store.base import OutboxEvent, Store
from router.webhooks.signature import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, verify_signature
from tests.router.conftest import APPS_AND_ROUTES
from tests.store.conftest import postgres_backend
from tests.support import free_port, serve_app, webhook_schema_errors

from .proxy import ThreadedProxy

ROOT = Path(__file__).resolve().parents[2]
KEY_ID = "SANDBOX-DURABILITYKEY"
TOKEN = "durability-merchant-token-0123456789"
WEBHOOK_SECRET = "whsec_durability_0123456789abcdef"
HOST = "pay.example.com"
LEASE_SECONDS = 2.0
T = TypeVar("T")


# --- databases -------------------------------------------------------------------------------------


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema (dropped afterwards); skips when no server answers."""
    async with postgres_backend() as backend:
        yield backend.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'router.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Both backends: a SQLite file shared by every process, and a PostgreSQL schema."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


def via_proxy(url: str, proxy: ThreadedProxy) -> str:
    """The PostgreSQL URL `url`, reaching the server through `proxy`."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[ThreadedProxy]:
    """A proxy in front of the test's PostgreSQL server, listening."""
    parts = urlsplit(pg_url)
    proxy = ThreadedProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


def with_store(url: str, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run `fn` on a store opened on `url` behind the routers' backs (the test's own connection)."""

    async def run() -> T:
        store = open_store(url)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


def stored_checkout(url: str, ref: str) -> Checkout:
    checkout = with_store(url, lambda store: store.get_checkout(ref))
    assert checkout is not None
    return checkout


def stored_events(url: str) -> list[OutboxEvent]:
    """Every outbox event, oldest first."""
    return sorted(with_store(url, lambda store: store.list_events(limit=1000)), key=lambda e: e.seq)


# --- the Amazon Pay emulator -----------------------------------------------------------------------


@dataclass
class Emulator:
    url: str
    core: EmulatorCore

    def create_session(self, scenario: str = "completed", amount: str = "14.00", **extra: Any) -> str:
        body = {"chargeAmount": {"amount": amount, "currencyCode": "USD"},
                "paymentIntent": "AuthorizeWithCapture", "scenario": scenario, **extra}
        answer = httpx.post(f"{self.url}/_emulator/checkout-sessions", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["checkoutSessionId"])

    def requests(self, operation: str | None = None, session_id: str | None = None) -> list[dict[str, Any]]:
        log = httpx.get(f"{self.url}/_emulator/requests").json()["requests"]
        return [r for r in log if operation in (None, r.get("operation"))
                and session_id in (None, r.get("checkoutSessionId"))]

    def calls(self, session_id: str) -> int:
        """Amazon-surface calls that reached the session, counted on arrival (before any latency)."""
        return self.core.state.sessions[session_id].calls

    def charges(self, session_id: str) -> list[Charge]:
        return [c for c in list(self.core.state.charges.values()) if c.session_id == session_id]

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 15) -> None:
        wait_until(predicate, what, timeout)


@pytest.fixture
def emulator(key_files: tuple[Path, Path]) -> Iterator[Emulator]:
    app = create_emulator_app({KEY_ID: load_public_key(key_files[1].read_bytes())})
    with serve_app(app) as url:
        yield Emulator(url, app.state.emulator)


# --- return-router processes -----------------------------------------------------------------------


def config_text(
    emulator_url: str, private_key: Path, db_url: str, *, webhook_url: str | None = None,
    lease_seconds: float = LEASE_SECONDS, interval: float = 0.3, resume_after: float = 1.0,
) -> str:
    """A router config with test timings: short lease, a reconciler that looks often."""
    webhook = (f'webhook_url = "{webhook_url}"\nwebhook_secret_env = "RR_TEST_WEBHOOK_SECRET"\n'
               if webhook_url else "")
    return APPS_AND_ROUTES + f"""
[merchant]
name = "Durable Shop"
shop_url = "https://shop.example.com/cart"
api_token_env = "RR_TEST_TOKEN"
{webhook}
[storage]
url = "{db_url}"

[checkout]
lease_seconds = {lease_seconds}
reconcile_interval_seconds = {interval}
resume_after_seconds = {resume_after}

[amazon_pay]
public_key_id = "{KEY_ID}"
private_key_file = "{private_key}"
region = "us"
endpoint = "{emulator_url}"
max_attempts = 2
deadline = 20
"""


class RouterProcess:
    """`python -m router.cli serve` in its own process group; start, kill -9, restart on one port."""

    def __init__(self, config: Path, log: Path, workers: int = 1) -> None:
        self.config = config
        self.log_path = log
        self.workers = workers
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> RouterProcess:
        assert self.proc is None, "already running"
        env = {**os.environ, "RR_TEST_TOKEN": TOKEN, "RR_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(self.config),
               "--port", str(self.port), "--workers", str(self.workers), "--log-level", "info"]
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts + 1}\n".encode())
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.starts += 1
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """/healthz answers and every worker has finished its startup (the store is open)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"router exited with {self.proc.returncode}:\n{self.log_tail()}")
            started = self.log_tail(100_000).split("--- start #")[-1].count("Application startup complete")
            with contextlib.suppress(httpx.HTTPError):
                if started >= self.workers and httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"router did not become ready in {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """kill -9 the server and all its workers: no shutdown code runs."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM, grace=10)

    def _signal(self, sig: signal.Signals, grace: float = 5) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        _reap_group(proc.pid)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    # --- HTTP helpers ------------------------------------------------------------------------------

    def register(self, pending: bool = False, amount: str = "14.00", reference: str = "order-1") -> str:
        body = {"merchantReference": reference, "chargeAmount": {"amount": amount, "currencyCode": "USD"},
                "paymentIntent": "AuthorizeWithCapture", "canHandlePendingAuthorization": pending}
        answer = httpx.post(f"{self.url}/v1/checkouts", json=body, headers=AUTH, timeout=30)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["ref"])

    def checkout(self, ref: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/v1/checkouts/{ref}", headers=AUTH, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def buyer_return(self, ref: str, session_id: str, timeout: float = 60) -> httpx.Response:
        return httpx.get(self.url + return_path(ref, session_id), headers={"host": HOST}, timeout=timeout)

    def finalize(self, ref: str, session_id: str, timeout: float = 60) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref},
                          timeout=timeout)


def _reap_group(pgid: int) -> None:
    """Wait (briefly) until no process of the killed group is left, so ports and files are free."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


AUTH = {"authorization": f"Bearer {TOKEN}"}


def return_path(ref: str, session_id: str) -> str:
    return "/amazon-pay/result?" + urlencode({"ref": ref, "amazonCheckoutSessionId": session_id})


def page_kind(response: httpx.Response) -> str | None:
    """The `data-kind` of a rendered page (success, pending, unavailable, …)."""
    marker = 'data-kind="'
    start = response.text.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return response.text[start:response.text.index('"', start)]


@dataclass
class Launcher:
    """Makes router processes for one test and kills whatever is still running at its end."""

    directory: Path
    emulator: Emulator
    private_key: Path
    started: list[RouterProcess] = field(default_factory=list)

    def __call__(self, db_url: str, *, name: str = "router", workers: int = 1, start: bool = True,
                 **options: Any) -> RouterProcess:
        config = self.directory / f"{name}.toml"
        config.write_text(config_text(self.emulator.url, self.private_key, db_url, **options))
        router = RouterProcess(config, self.directory / f"{name}.log", workers)
        self.started.append(router)
        return router.start() if start else router

    def close(self) -> None:
        for router in self.started:
            router.kill()


@pytest.fixture
def launch(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path, emulator, key_files[0])
    try:
        yield launcher
    finally:
        launcher.close()


# --- concurrency, waiting --------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def storm(requests: Sequence[tuple[str, str, dict[str, Any]]], timeout: float = 90) -> list[httpx.Response]:
    """Send every (method, url, httpx options) at once, each on its own connection; answers in order."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            return list(await asyncio.gather(*(client.request(m, u, **o) for m, u, o in requests)))

    return asyncio.run(run())


def in_background(fn: Callable[[], T]) -> Callable[[], T | BaseException]:
    """Run `fn` on a thread now; the returned callable joins it and gives its result or exception."""
    box: list[T | BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # handed to the test, which decides whether it matters
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join(timeout: float = 90) -> T | BaseException:
        thread.join(timeout)
        assert box, "background call did not finish"
        return box[0]

    return join


# --- the merchant's webhook receiver ---------------------------------------------------------------


@dataclass
class Delivery:
    event_id: str
    body: dict[str, Any]
    signature_ok: bool


class Receiver:
    """A merchant endpoint on a fixed port that can go down and come back (same URL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self.schema_errors: list[str] = []  # bodies that did not match /v1/openapi.json's webhooks
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.app = Starlette(routes=[Route("/hooks", self.receive, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def receive(self, request: Request) -> Response:
        raw = await request.body()
        ok = verify_signature(WEBHOOK_SECRET, raw, request.headers.get(SIGNATURE_HEADER, ""))
        invalid = webhook_schema_errors(raw, request.headers.get(EVENT_TYPE_HEADER, ""))
        with self._lock:
            self.schema_errors += invalid
            if invalid:  # a merchant that validates refuses it; the fixture fails the test
                return JSONResponse({"errors": invalid}, status_code=400)
            self.deliveries.append(Delivery(request.headers.get(EVENT_ID_HEADER, ""), json.loads(raw), ok))
        return JSONResponse({"received": True})

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def up(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_until(lambda: server.started, "the webhook receiver to start", timeout=10, step=0.01)
        self._server, self._thread, self._socket = server, thread, sock

    def down(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        assert self._thread is not None and self._socket is not None
        self._thread.join(timeout=10)
        self._socket.close()
        self._server = self._thread = self._socket = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    try:
        yield hooks
    finally:
        hooks.down()
    assert not hooks.schema_errors, hooks.schema_errors
