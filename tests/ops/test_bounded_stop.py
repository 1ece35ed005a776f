"""A stop is bounded: whatever Amazon or the store do, the lifespan's stop after graceful_seconds takes at most
lifecycle.STOP_SECONDS, so that the process exits before systemd's TimeoutStopSec kills it (its leases
held, its last log lines lost)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import signal
import time
from pathlib import Path

import pytest

from router.app import create_app
from router.ops import lifecycle
from router.ops.settings import OpsSettings
from router.web.demo import demo_settings
from tests.support.config import process_config
from tests.support.emulator import Emulator
from tests.support.processes import ROOT, RouterProcess
from tests.support.stores import stored_checkout

SLACK = 3.0  # the process's own exit: the last log lines, the interpreter's shutdown


async def test_the_lifespan_stop_is_bounded_by_a_task_that_ignores_it_and_a_release_that_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("TASKS_SECONDS", "RELEASE_SECONDS", "CLOSE_SECONDS"):
        monkeypatch.setattr(lifecycle, name, 0.3)
    app = create_app(demo_settings(str(tmp_path / "demo.db")))
    runtime = app.state.runtime
    hung = asyncio.Event()

    async def ignores_the_stop() -> None:
        await asyncio.sleep(3600)  # a step that never ends: an Amazon or a store that does not answer

    async def hangs(owner: str) -> int:
        hung.set()
        await asyncio.Event().wait()  # a store that does not answer
        return 0

    caplog.set_level(logging.WARNING, "router.ops.lifecycle")
    async with asyncio.timeout(5), app.router.lifespan_context(app):  # unbounded, the stop would never end
        runtime.tasks.append(asyncio.create_task(ignores_the_stop(), name="a stubborn task"))
        monkeypatch.setattr(runtime.store, "release_leases", hangs)
        started = time.monotonic()
    took = time.monotonic() - started

    assert hung.is_set()
    assert took < 3 * 0.3 + 3 * lifecycle.UNWIND_SECONDS + 0.5, took
    assert all(task.done() for task in runtime.tasks)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "stopping: a stubborn task took over 0.3 s; cut short" in warnings
    assert "stopping: releasing the leases (they run out on their own) took over 0.3 s; cut short" in warnings
    assert not any("the reconciler" in w for w in warnings)  # it ended its step on the stop event, in time


def test_sigterm_exits_in_bounded_time_while_the_reconciler_waits_on_a_slow_amazon(
    tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]
) -> None:
    graceful = 1
    db = f"sqlite:///{tmp_path / 'r.db'}"
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], db, lease_seconds=120)  # no lease runs out here
                      + f'\n[server]\ngraceful_seconds = {graceful}\n\n[metrics]\nlisten = ""\n')
    router = RouterProcess(config, tmp_path / "router.log").start()
    try:
        ref = router.register(pending=True)
        session_id = emulator.create_session(scenario="pending-then-authorized", pending_polls=1000)
        assert router.finalize(ref, session_id).status_code == 202
        session = emulator.core.state.sessions[session_id]  # from now on Amazon takes 25 s to answer a poll
        session.spec = dataclasses.replace(session.spec, latency_ms=25_000, latency_first_n=None)
        polls = emulator.calls(session_id)
        emulator.wait_for(lambda: emulator.calls(session_id) > polls, "the reconciler's poll to reach Amazon")
        assert stored_checkout(db, ref).lease_owner is not None  # the poll holds the checkout's lease

        assert router.proc is not None
        started = time.monotonic()
        router.proc.send_signal(signal.SIGTERM)
        assert router.proc.wait(timeout=40) == 0
        took = time.monotonic() - started
    finally:
        router.kill()

    assert took < graceful + lifecycle.STOP_SECONDS + SLACK, took  # before the bound: the poll's 20 s deadline
    log = router.log_tail(100_000)
    assert "stopping: the reconciler took over 3 s; cut short" in log
    assert "released 1 lease(s) at stop" in log  # the poll cut short left its lease to release_leases
    assert stored_checkout(db, ref).lease_owner is None
    assert stored_checkout(db, ref).state == "pending"  # polled again by whoever runs next


def test_the_units_stop_timeout_outlasts_a_bounded_stop() -> None:
    """deploy/return-router.service and the README say what the bound is, and the unit leaves room for it."""
    unit = (ROOT / "deploy" / "return-router.service").read_text()
    (timeout,) = re.findall(r"^TimeoutStopSec=(\d+)s$", unit, re.MULTILINE)
    assert int(timeout) >= OpsSettings.graceful_seconds + lifecycle.STOP_SECONDS + 2 * SLACK
    said = f"+ {lifecycle.STOP_SECONDS:g} s"
    assert said in unit and said in (ROOT / "README.md").read_text()
