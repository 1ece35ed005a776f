"""The operator's view of real `serve` processes: metrics that add up, SIGTERM, SIGHUP."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, http_client, metric_samples, wait_until
from tests.support.concurrency import in_background, storm
from tests.support.config import AUTH, HOST, process_config
from tests.support.emulator import Emulator
from tests.support.processes import ROOT, RouterProcess, page_kind
from tests.support.stores import stored_checkout


@pytest.fixture
def routers() -> Iterator[list[RouterProcess]]:
    started: list[RouterProcess] = []
    try:
        yield started
    finally:
        for router in started:
            router.kill()


def start(routers: list[RouterProcess], config: Path, workers: int = 1, env: dict[str, str] | None = None,
          timeout: float = 30) -> RouterProcess:
    router = RouterProcess(config, config.with_suffix(".log"), workers, env)
    routers.append(router)
    return router.start(timeout)


def scrape(port: int) -> dict[str, float]:
    return metric_samples(f"http://127.0.0.1:{port}/metrics")


def test_two_workers_add_up_on_the_metrics_listener(tmp_path: Path, emulator: Emulator, routers: list[RouterProcess],
                                                    key_files: tuple[Path, Path]) -> None:
    port = free_port()
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}")
                      + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    router = start(routers, config, workers=2)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in router.log_tail(100_000)
    n = 40
    answers = storm([("GET", f"{router.url}/amazon-pay/error", {"headers": {"host": HOST}})] * n)
    assert [a.status_code for a in answers] == [200] * n
    series = ('return_router_returns_total{flow="error",host="pay.example.com",in_app="none",page="amazon_error",'
              'platform="other"}')
    for _ in range(5):  # whichever worker served which request, every scrape sees all of them
        assert scrape(port)[series] == n
    order = {"merchantReference": "o", "chargeAmount": {"amount": "1.00", "currencyCode": "USD"},
             "paymentIntent": "AuthorizeWithCapture"}
    created = storm([("POST", f"{router.url}/v1/checkouts", {"headers": AUTH, "json": order})] * 8)
    assert [a.status_code for a in created] == [201] * 8
    samples = scrape(port)
    # both workers' SQLite COMMITs add up too: the 8 checkouts, however they were grouped into COMMITs
    assert samples["return_router_sqlite_writes_total"] >= 8
    assert 1 <= samples["return_router_sqlite_commit_seconds_count"] <= samples["return_router_sqlite_writes_total"]
    assert not [name for name in samples if "webhook" in name]  # webhooks are off: no gauges to alert on
    assert any(name.startswith("return_router_build_info{") for name in samples)
    assert httpx.get(f"{router.url}/metrics", headers={"host": HOST}).status_code == 404
    assert httpx.get(f"{router.url}/readyz").status_code == 200


# Runs first in every Python of the router's process tree; only uvicorn's workers (spawned: their command
# line runs multiprocessing's spawn_main) sleep, as their imports did on a slow, loaded machine.
SLOW_WORKER_START = """import sys, time
if "spawn_main" in " ".join(sys.orig_argv):
    time.sleep(7)
"""


def test_workers_that_start_slower_than_uvicorns_default_ping_are_not_killed(
    tmp_path: Path, emulator: Emulator, routers: list[RouterProcess], key_files: tuple[Path, Path]
) -> None:
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_WORKER_START)
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}")
                      + '\n[metrics]\nlisten = ""\n')
    env = {"PYTHONPATH": f"{slow}{os.pathsep}{ROOT}"}
    router = start(routers, config, workers=2, env=env, timeout=60)
    log = router.log_tail(100_000)
    assert log.count("Application startup complete") == 2 and "died" not in log  # both first workers serve
    answer = http_client().get(f"{router.url}/amazon-pay/error", headers={"host": HOST}, timeout=10)
    assert answer.status_code == 200


def test_an_empty_listen_turns_the_listener_off(tmp_path: Path, emulator: Emulator, routers: list[RouterProcess],
                                                key_files: tuple[Path, Path]) -> None:
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}")
                      + '\n[metrics]\nlisten = ""\n')
    router = start(routers, config)
    assert "metrics on http" not in router.log_tail(100_000)
    assert httpx.get(f"{router.url}/healthz").status_code == 200


def test_sigterm_releases_the_lease_of_a_stuck_finalize(tmp_path: Path, emulator: Emulator,
                                                        routers: list[RouterProcess],
                                                        key_files: tuple[Path, Path]) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    extra = '\n[server]\ngraceful_seconds = 1\n\n[metrics]\nlisten = ""\n'
    (tmp_path / "a.toml").write_text(process_config(emulator.url, key_files[0], db, lease_seconds=120,
                                                    resume_after=600) + extra)
    (tmp_path / "b.toml").write_text(process_config(emulator.url, key_files[0], db, lease_seconds=120,
                                                    resume_after=600) + extra)
    a, b = start(routers, tmp_path / "a.toml"), start(routers, tmp_path / "b.toml")
    ref = a.register()
    session_id = emulator.create_session(latency_ms=20_000, latency_first_n=1)  # only A's call is slow
    a_answer = in_background(lambda: a.buyer_return(ref, session_id))
    emulator.wait_for(lambda: emulator.calls(session_id) >= 1, "A's finalize to reach Amazon")
    held = stored_checkout(db, ref)
    assert held.lease_owner is not None and held.lease_until is not None

    assert a.proc is not None
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=30) == 0  # a requested stop is a clean exit
    stopped = a_answer()  # A gave up on its buyer after graceful_seconds, asking for a retry...
    assert isinstance(stopped, httpx.Response) and (stopped.status_code, page_kind(stopped)) == (503, "unavailable")
    released = stored_checkout(db, ref)
    assert released.state == "created" and released.lease_owner is None  # ...and freed the lease on its way out

    reload = b.buyer_return(ref, session_id)  # B takes the lease at once (it would otherwise wait 120 s)
    assert (reload.status_code, page_kind(reload)) == (200, "success")
    wait_until(lambda: len(emulator.requests("finalizeCheckoutSession", session_id)) == 2,
               "A's orphaned call to be answered too", timeout=40)
    assert len(emulator.charges(session_id)) == 1  # the same idempotency key: one charge
    assert "released 1 lease(s) at stop" in a.log_tail(100_000)


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_a_valid_config_and_keeps_the_old_on_errors(
    tmp_path: Path, emulator: Emulator, routers: list[RouterProcess], key_files: tuple[Path, Path], workers: int
) -> None:
    config = tmp_path / "router.toml"
    base = process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}") + '\n[metrics]\nlisten = ""\n'
    config.write_text(base)
    router = start(routers, config, workers=workers)
    assert router.proc is not None

    def shop_name(path: str = "/amazon-pay/error") -> str | None:
        page = http_client().get(router.url + path, headers={"host": HOST}, timeout=10)
        return next((n for n in ("Durable Shop", "Reloaded Shop") if n in page.text), None) \
            if page.status_code == 200 else None

    assert shop_name() == "Durable Shop" and shop_name("/amazon-pay/failed") is None
    failures: list[int] = []
    stop = threading.Event()

    def hammer() -> None:  # requests keep coming during the reload: none may fail
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                status = client.get(router.url + "/amazon-pay/error", headers={"host": HOST}).status_code
                if status != 200:
                    failures.append(status)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    config.write_text(base.replace('name = "Durable Shop"', 'name = "Reloaded Shop"')
                      + '\n[[routes]]\nhost = "pay.example.com"\npath = "/amazon-pay/failed"\nflow = "error"\n')
    router.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: all(shop_name() == "Reloaded Shop" for _ in range(8)), "both workers to reload")
    stop.set()
    thread.join(timeout=20)
    assert failures == []
    assert shop_name("/amazon-pay/failed") == "Reloaded Shop"  # a new route

    config.write_text(base.replace('flow = "error"', 'flow = "eror"').replace("ABCDE12345.", "X."))
    router.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: router.log_tail(100_000).count("routes[2].flow: must be one of success, cancel, error")
               >= workers, "every worker to refuse the broken config")
    log = router.log_tail(100_000)
    assert f"reload refused, keeping the running config: {config}: ios.app_ids[0]:" in log  # every problem
    assert all(shop_name() == "Reloaded Shop" for _ in range(8))

    config.write_text(base.replace(f"sqlite:///{tmp_path / 'r.db'}", f"sqlite:///{tmp_path / 'other.db'}"))
    router.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "the storage URL changed; it takes effect after a restart" in router.log_tail(100_000),
               "the restart notice")
    wait_until(lambda: all(shop_name() == "Durable Shop" for _ in range(8)), "the rest to apply")
    assert router.proc.poll() is None


def _kill_a_worker_while_locked(router: RouterProcess, db: Path) -> sqlite3.Connection:
    """kill -9 one of the two workers and hold SQLite's write lock, so that uvicorn's replacement cannot
    open the store; returns the connection holding the lock (roll it back to release it)."""
    workers = [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", router.log_tail(100_000))]
    assert len(workers) == 2, workers
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    os.kill(workers[0], signal.SIGKILL)
    return holder


def _two_worker_config(tmp_path: Path, emulator: Emulator, key: Path, retry_seconds: float) -> tuple[Path, Path]:
    db = tmp_path / "r.db"
    config = tmp_path / "router.toml"
    text = process_config(emulator.url, key, f"sqlite:///{db}?busy_timeout=0.2") + '\n[metrics]\nlisten = ""\n'
    config.write_text(text.replace("[storage]\n", f"[storage]\nconnect_retry_seconds = {retry_seconds}\n", 1))
    return config, db


def test_a_restarted_worker_waits_for_a_locked_store(tmp_path: Path, emulator: Emulator,
                                                      routers: list[RouterProcess],
                                                      key_files: tuple[Path, Path]) -> None:
    """uvicorn replaces a worker that died; its store open must wait out a brief lock as `serve`'s own
    preflight does. It failed at once, and uvicorn then stopped the healthy worker too."""
    config, db = _two_worker_config(tmp_path, emulator, key_files[0], retry_seconds=60)
    router = start(routers, config, workers=2)
    holder = _kill_a_worker_while_locked(router, db)
    try:
        wait_until(lambda: "; retrying for up to 60 s" in router.log_tail(100_000), "the new worker waiting", 60)
    finally:
        holder.rollback()
        holder.close()
    wait_until(lambda: router.log_tail(100_000).count("Application startup complete") == 3, "the new worker", 60)
    log = router.log_tail(100_000)
    assert "storage: reachable again; starting" in log and "failed to start" not in log
    assert router.proc is not None and router.proc.poll() is None
    assert http_client().get(f"{router.url}/amazon-pay/error", headers={"host": HOST}).status_code == 200


def test_serve_exits_1_when_a_worker_cannot_start(tmp_path: Path, emulator: Emulator,
                                                  routers: list[RouterProcess],
                                                  key_files: tuple[Path, Path]) -> None:
    """When the replacement still cannot open the store, uvicorn stops every worker and returns: `serve`
    exited 0 then, and systemd's Restart=on-failure left the service down."""
    config, db = _two_worker_config(tmp_path, emulator, key_files[0], retry_seconds=1)
    router = start(routers, config, workers=2)
    holder = _kill_a_worker_while_locked(router, db)
    try:
        assert router.proc is not None
        assert router.proc.wait(timeout=60) == 1
    finally:
        holder.rollback()
        holder.close()
    log = router.log_tail(100_000)
    assert "gave up after 1 s" in log and "serve: a worker failed to start" in log


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_each_worker_writes_its_last_log_lines_at_a_stop(
    tmp_path: Path, emulator: Emulator, routers: list[RouterProcess], key_files: tuple[Path, Path],
    stop: signal.Signals,
) -> None:
    """A worker re-raised the signal with Python's default handler once uvicorn had shut it down: it died
    before its exit handlers wrote the lines queued last (the shutdown's, the leases released, the access
    lines). The whole process group is signalled, as systemd does."""
    config, _ = _two_worker_config(tmp_path, emulator, key_files[0], retry_seconds=5)
    router = start(routers, config, workers=2)
    for _ in range(4):
        assert http_client().get(f"{router.url}/amazon-pay/error", headers={"host": HOST}).status_code == 200
    assert router.proc is not None
    os.killpg(router.proc.pid, stop)
    assert router.proc.wait(timeout=30) == 0
    log = router.log_tail(100_000)
    assert log.count("Application shutdown complete") == 2, log[-3000:]
    assert log.count("Finished server process") == 2 and "Traceback" not in log, log[-3000:]


def test_one_worker_with_the_metrics_listener_logs_one_server(
    tmp_path: Path, emulator: Emulator, routers: list[RouterProcess], key_files: tuple[Path, Path]
) -> None:
    """The listener's own uvicorn server logged "Started server process [pid]" (and its stop) beside the
    buyers' server: one process read as two."""
    port = free_port()
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}")
                      + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    router = start(routers, config)
    assert "return_router_build_info" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    router.stop()
    log = router.log_tail(100_000)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in log
    assert log.count("Started server process") == 1 and log.count("Finished server process") == 1, log[-3000:]
