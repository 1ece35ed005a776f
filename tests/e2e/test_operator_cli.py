"""Operator mistakes, as the operator meets them: real `return-router` processes on real ports (issue 9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, wait_until
from tests.support.config import APPS_AND_ROUTES, BASE_CONFIG

from .test_cli import running

CLI = [sys.executable, "-m", "router.cli"]
BAND_EN = "Test mode: nothing is charged."
BAND_JA = "テストモード：請求は発生しません。"
OK_MERCHANT = '\n[merchant]\nshop_url = "https://shop.example.com/cart"\n'


def run(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_check_and_serve_refuse_a_config_without_amazon_pay(tmp_path: Path) -> None:
    config = tmp_path / "rr.toml"
    config.write_text(APPS_AND_ROUTES)
    for command in ("check", "serve"):
        result = run(command, "--config", str(config), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr.startswith(f"{config}: amazon_pay: missing: add [amazon_pay]"), result.stderr
        assert "Traceback" not in result.stderr


def test_emulator_mode_warns_at_start_and_every_page_carries_the_band(tmp_path: Path) -> None:
    config = tmp_path / "rr.toml"
    config.write_text(BASE_CONFIG + '\n[storage]\nurl = "sqlite:///rr.db"\n')
    output: list[str] = []
    with running("serve", "--config", str(config), cwd=tmp_path, output=output) as url:
        host = {"host": "pay.example.com"}
        for path, lang in (("/amazon-pay/cancel", "en"), ("/amazon-pay/error?lang=ja", "ja"), ("/nowhere", "en")):
            page = httpx.get(url + path, headers=host)
            assert page.headers["content-type"].startswith("text/html")
            assert (BAND_JA if lang == "ja" else BAND_EN) in page.text, (path, page.text)
    # stderr is no terminal here, so the default format is JSON lines (README "Logs")
    assert ('"level": "WARNING", "logger": "router.cli", "message": "[amazon_pay] emulator = true: the built-in '
            'emulator answers') in output[0]


def test_the_demo_refuses_a_public_address_unless_allowed(tmp_path: Path) -> None:
    refused = run("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path)
    assert refused.returncode == 2 and "refusing to serve the demo on 0.0.0.0" in refused.stderr
    assert "--allow-public-demo" in refused.stderr and "Traceback" not in refused.stderr
    with running("serve", "--host", "0.0.0.0", "--allow-public-demo", cwd=tmp_path) as url:
        assert BAND_EN in httpx.get(url + "/").text  # the demo's own landing page says it too


def test_the_demo_database_is_private_and_removed_at_exit(tmp_path: Path) -> None:
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    os.environ["TMPDIR"], previous = str(env_tmp), os.environ.get("TMPDIR")
    try:
        with running("serve", cwd=tmp_path) as url:
            start = httpx.post(url + "/demo/start", content=b"scenario=completed&currency=USD&lang=en",
                               headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=True)
            assert start.status_code == 200 and BAND_EN in start.text
            (directory,) = env_tmp.iterdir()
            assert directory.name.startswith("return-router-demo-") and directory.stat().st_mode & 0o077 == 0
            assert (directory / "demo.db").stat().st_mode & 0o777 == 0o600
    finally:
        if previous is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = previous
    assert list(env_tmp.iterdir()) == []


def test_check_opens_the_store_and_warns_about_missing_ways_back(tmp_path: Path) -> None:
    config = tmp_path / "rr.toml"
    port = free_port()  # nothing listens there
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "postgresql://rr:s3cret@127.0.0.1:{port}/rr"\n')
    result = run("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{config}: storage: cannot reach postgresql://127.0.0.1:{port}/rr (" in result.stdout, result.stdout
    assert f"{config}: ios.open_in_app_host: warning: not set" in result.stdout
    assert f"{config}: merchant.shop_url: warning: not set: pages offer no way back to the shop" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert result.stdout.endswith("1 error(s)\n")
    offline = run("check", "--offline", "--config", str(config), cwd=tmp_path)
    assert offline.returncode == 0 and offline.stdout.endswith("ok\n"), offline.stdout


def test_check_reads_the_key_and_secrets_unless_offline(tmp_path: Path) -> None:
    config = tmp_path / "rr.toml"
    config.write_text(APPS_AND_ROUTES + OK_MERCHANT + 'api_token_env = "RR_CHECK_TOKEN"\n\n[amazon_pay]\n'
                      'public_key_id = "SANDBOX-X"\nprivate_key_file = "key.pem"\n')
    (tmp_path / "key.pem").write_text("not a key")
    result = run("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{config}: amazon_pay.private_key_file: is not a usable RSA private key" in result.stderr
    assert f"{config}: merchant.api_token_env: environment variable RR_CHECK_TOKEN is not set" in result.stderr
    offline = run("check", "--offline", "--config", str(config), cwd=tmp_path)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "merchant.shop_url: warning" not in offline.stdout


def test_serve_with_the_database_down_says_one_line_and_gives_up(tmp_path: Path) -> None:
    config = tmp_path / "rr.toml"
    port = free_port()
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "postgresql://rr@127.0.0.1:{port}/rr"\n'
                      "connect_retry_seconds = 2\n")
    result = run("serve", "--config", str(config), "--port", str(free_port()), "--log-format", "text", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = f"storage: cannot reach postgresql://127.0.0.1:{port}/rr ("
    assert len(lines) == 2 and all(f"WARNING router.cli [-]: {said}" in line for line in lines), lines
    assert lines[0].endswith("; retrying for up to 2 s") and lines[1].endswith("; gave up after 2 s")
    # in JSON, as every other line of `serve --log-format json` (it was plain text there)
    result = run("serve", "--config", str(config), "--port", str(free_port()), "--log-format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    docs = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert [d["message"].startswith(said) for d in docs] == [True, True], docs


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_stop_while_waiting_for_the_store_is_prompt_and_clean(tmp_path: Path, stop: signal.Signals,
                                                                status: int) -> None:
    """Stopped while it waits for the database at start: it died by SIGTERM (status -15), and Ctrl+C
    printed a KeyboardInterrupt traceback."""
    config = tmp_path / "rr.toml"
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "postgresql://rr@127.0.0.1:{free_port()}/rr"\n'
                      "connect_retry_seconds = 60\n")
    err = tmp_path / "stderr.log"
    with err.open("w") as sink:
        proc = subprocess.Popen([*CLI, "serve", "--config", str(config), "--port", str(free_port())], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=sink, text=True)
        try:
            wait_until(lambda: "retrying for up to 60 s" in err.read_text(), "the wait for the store")
            proc.send_signal(stop)
            assert proc.wait(timeout=10) == status
        finally:
            proc.kill()
    assert "Traceback" not in err.read_text()
