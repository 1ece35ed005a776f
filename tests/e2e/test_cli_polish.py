"""The command line as an operator meets it: --version, help for every flag, exit codes, `events` at scale."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from router.amazon_pay import create_emulator_app
from router.amazon_pay.emulator.state import SCENARIOS
from router.checkout.events import event_for
from router.checkout.model import Checkout, State
from router.cli import main, parser
from router.store import open_store
from tests.support import serve_app
from tests.support.config import BASE_CONFIG

CLI = [sys.executable, "-m", "router.cli"]


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload, no-any-return]


def test_version_comes_from_the_package_metadata() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"return-router {metadata.version('return-router')}"


def _actions(p: argparse.ArgumentParser, where: str) -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _actions(child, f"{where} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            found.append((where, action))
    return found


def test_every_flag_and_argument_has_help() -> None:
    missing = [f"{where} {action.dest}" for where, action in _actions(parser(), "return-router") if not action.help]
    assert missing == []


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_help_shows_defaults_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "serve")
    for default in ("(default: 127.0.0.1)", "(default: 8000)", "(default: 1)", "(default: info)"):
        assert default in text
    assert "(default: None)" not in text and "(default: False)" not in text
    for code in ("0 done", "1 the command ran and found a problem", "2 bad usage"):
        assert code in text
    assert "(default: 100)" in _help(capsys, "events", "list")


def test_emulator_help_says_how_to_create_a_session_and_that_works() -> None:
    text = run("emulator", "--help").stdout
    assert "POST /v1/checkouts" in text and "amazonCheckoutSessionId" in text
    assert all(scenario in text for scenario in SCENARIOS)
    body = re.search(r"-d '(.*?)'", text, re.S)
    assert body is not None, text
    with serve_app(create_emulator_app({})) as url:
        created = httpx.post(f"{url}/_emulator/checkout-sessions", content=body.group(1),
                             headers={"content-type": "application/json"})
    assert created.status_code == 201 and created.json()["checkoutSessionId"]


def _checkout(ref: str, order: str) -> Checkout:
    return Checkout(ref=ref, merchant_reference=order, amount="1", currency="JPY", payment_intent="Confirm",
                    can_handle_pending=False, created_at=1.0, expires_at=9e9)


def _outbox(tmp_path: Path, events_per_checkout: dict[tuple[str, str], int]) -> tuple[Path, dict[str, list[str]]]:
    """A config and its SQLite outbox holding the given number of events per (ref, merchant reference)."""
    db = f"sqlite:///{tmp_path}/ev.db"
    config = tmp_path / "rr.toml"
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "{db}"\n')
    ids: dict[str, list[str]] = {}

    async def fill() -> None:
        store = open_store(db)
        await store.open()
        try:
            for (ref, order), count in events_per_checkout.items():
                checkout = _checkout(ref, order)
                await store.create_checkout(checkout)
                events = [event_for(replace(checkout, state=State.COMPLETED), 2.0) for _ in range(count)]
                await store.transition(ref, owner=None, now=2.0, state=State.COMPLETED, events=[e for e in events if e])
                ids[ref] = [e.id for e in events if e]
        finally:
            await store.close()

    asyncio.run(fill())
    return config, ids


def test_events_list_limit_ref_and_merchant_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = "a" * 32, "b" * 32
    config, ids = _outbox(tmp_path, {(first, "order-1"): 3, (second, "order-2"): 2})

    def listed(*args: str) -> list[str]:  # in-process: the same main() the script runs, minus the start-up
        assert main(["events", "list", "--config", str(config), *args]) == 0
        return [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]

    assert len(listed()) == 5
    assert len(listed("--limit", "2")) == 2
    assert sorted(listed("--ref", first)) == sorted(ids[first])
    assert sorted(listed("--merchant-reference", "order-2")) == sorted(ids[second])
    assert listed("--merchant-reference", "order-2", "--limit", "1")[0] in ids[second]
    assert listed("--ref", first, "--merchant-reference", "order-2") == []
    with pytest.raises(SystemExit) as exited:
        main(["events", "list", "--config", str(config), "--limit", "0"])
    assert exited.value.code == 2 and "--limit: must be at least 1" in capsys.readouterr().err


def test_events_list_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    # Far more output than a pipe holds (64 KiB), so the listing is still writing when head exits.
    config, _ = _outbox(tmp_path, {("c" * 32, "order-3"): 800})
    lister = subprocess.Popen([*CLI, "events", "list", "--config", str(config), "--limit", "800"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert lister.stdout is not None and lister.stderr is not None
    head = subprocess.run(["head", "-n", "1"], stdin=lister.stdout, capture_output=True, timeout=60)
    lister.stdout.close()
    errors = lister.stderr.read().decode()
    assert lister.wait(timeout=60) == 0, errors
    assert errors == ""
    assert json.loads(head.stdout)["status"] == "pending"


def _park_all(config: Path) -> None:
    async def park() -> None:
        store = open_store(f"sqlite:///{config.parent}/ev.db")
        await store.open()
        try:
            for event in await store.claim_events("w", 3.0, 60, 100):
                await store.event_failed(event.id, "w", 3.0, "HTTP 500", None)
        finally:
            await store.close()

    asyncio.run(park())


def test_events_redeliver_of_an_unknown_id_exits_1_naming_it_and_changes_nothing(tmp_path: Path) -> None:
    config, ids = _outbox(tmp_path, {("d" * 32, "order-4"): 1})
    known = ids["d" * 32][0]
    _park_all(config)
    result = run("events", "redeliver", "--config", str(config), known, "evt_does_not_exist")
    assert result.returncode == 1
    assert "unknown event id(s): evt_does_not_exist; nothing queued" in result.stderr
    assert known not in result.stderr and "Traceback" not in result.stderr
    still_parked = run("events", "list", "--failed", "--config", str(config))
    assert [json.loads(line)["id"] for line in still_parked.stdout.splitlines()] == [known]
    malformed = run("events", "redeliver", "--config", str(config), "not an id")
    assert malformed.returncode == 2 and "not an event id" in malformed.stderr and "Traceback" not in malformed.stderr


@pytest.mark.parametrize("args", [["check", "--config", "x.toml", "--remote", "--ca-file", "/nonexistent/ca.pem"]])
def test_check_names_a_missing_ca_file(tmp_path: Path, args: list[str]) -> None:
    config = tmp_path / "x.toml"
    config.write_text(BASE_CONFIG)
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2 and "--ca-file /nonexistent/ca.pem: no such file" in result.stderr


def test_check_refuses_a_connect_to_that_is_no_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "x.toml"
    config.write_text(BASE_CONFIG)
    assert main(["check", "--config", str(config), "--remote", "--connect-to", "http://127.0.0.1/"]) == 2
    assert "host must be a bare host name" in capsys.readouterr().err
