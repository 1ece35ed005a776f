"""return-router as real `serve` processes: start, kill -9, restart on one port; buyer-side HTTP helpers.

Each router is `python -m router.cli serve` in its own process group, so `kill -9` takes down a
multi-worker server with its workers, exactly as a crash would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.support import free_port, http_client
from tests.support.config import (
    AUTH,
    HOST,
    LEASE_SECONDS,
    TOKEN,
    TOKEN_ENV,
    WEBHOOK_SECRET,
    WEBHOOK_SECRET_ENV,
    process_config,
)
from tests.support.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]


def router_env() -> dict[str, str]:
    """The environment a router process needs: this checkout on the path, the token and the webhook secret."""
    return {**os.environ, TOKEN_ENV: TOKEN, WEBHOOK_SECRET_ENV: WEBHOOK_SECRET, "PYTHONPATH": str(ROOT)}


class RouterProcess:
    """`python -m router.cli serve` in its own process group; start, kill -9, restart on one port."""

    def __init__(self, config: Path, log: Path, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log
        self.workers = workers
        self.env = {**router_env(), **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> RouterProcess:
        assert self.proc is None, "already running"
        cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(self.config),
               "--port", str(self.port), "--workers", str(self.workers), "--log-level", "info"]
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts + 1}\n".encode())
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
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
                if started >= self.workers and http_client().get(f"{self.url}/healthz", timeout=1).status_code == 200:
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
        answer = http_client().post(f"{self.url}/v1/checkouts", json=body, headers=AUTH, timeout=30)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["ref"])

    def checkout(self, ref: str) -> dict[str, Any]:
        answer = http_client().get(f"{self.url}/v1/checkouts/{ref}", headers=AUTH, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def buyer_return(self, ref: str, session_id: str, timeout: float = 60) -> httpx.Response:
        return http_client().get(self.url + return_path(ref, session_id), headers={"host": HOST}, timeout=timeout)

    def finalize(self, ref: str, session_id: str, timeout: float = 60) -> httpx.Response:
        return http_client().post(f"{self.url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref},
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
                 webhook_url: str | None = None, lease_seconds: float = LEASE_SECONDS, interval: float = 0.3,
                 resume_after: float = 1.0) -> RouterProcess:
        config = self.directory / f"{name}.toml"
        config.write_text(process_config(self.emulator.url, self.private_key, db_url, webhook_url=webhook_url,
                                         lease_seconds=lease_seconds, interval=interval, resume_after=resume_after))
        router = RouterProcess(config, self.directory / f"{name}.log", workers)
        self.started.append(router)
        return router.start() if start else router

    def close(self) -> None:
        for router in self.started:
            router.kill()
