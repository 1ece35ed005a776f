"""The shipped systemd unit and the proxies' static settings: what can be checked without running systemd.

What is checked: the unit's key directives (parsed here), `systemd-analyze verify` (syntax, known keys, valid
values, an executable ExecStart) and `systemd-analyze security --offline` (exposure score) where systemd-analyze
exists; that all three files send traffic to the port the unit serves on; `caddy fmt`/`caddy adapt` on the
Caddyfile. Not checked: the unit actually starting under systemd (test_proxies.py runs the same command line).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from router.ops.settings import DEFAULT_METRICS_LISTEN

from .harness import DEPLOY, cli

UNIT = DEPLOY / "return-router.service"


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: sections of `Key=Value` lines, keys that may repeat, `#` comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None and "=" in line, f"{UNIT}: not a directive: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_runs_unprivileged_restarts_on_failure_and_is_hardened() -> None:
    service = directives(UNIT.read_text())["Service"]
    assert service["User"] == ["return-router"] and service["Group"] == ["return-router"]
    assert service["Restart"] == ["on-failure"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
                       "RestrictSUIDSGID": "yes", "ProtectKernelTunables": "yes", "UMask": "0077"}.items():
        assert service.get(key) == [value], key
    assert service["StateDirectory"] == ["return-router"]  # the one writable path (SQLite) under ProtectSystem
    serve = shlex.split(service["ExecStart"][0])
    assert serve[1:3] == ["serve", "--config"] and "--proxy-headers" in serve
    assert serve[serve.index("--host") + 1] == "127.0.0.1"  # only the proxy reaches it
    check = shlex.split(service["ExecStartPre"][0])
    assert check[1] == "check" and check[check.index("--config") + 1] == serve[serve.index("--config") + 1]
    # not the store: a database not up yet at boot is serve's to wait for, not a failed start to restart
    assert "--offline" in check


def test_proxies_send_traffic_to_the_port_the_unit_serves() -> None:
    serve = shlex.split(directives(UNIT.read_text())["Service"]["ExecStart"][0])
    upstream = f"127.0.0.1:{serve[serve.index('--port') + 1]}"
    assert re.findall(r"^\s*server (\S+);", (DEPLOY / "nginx" / "return-router.conf").read_text(), re.M) == [upstream]
    assert re.findall(r"^\s*reverse_proxy (\S+)", (DEPLOY / "Caddyfile").read_text(), re.M) == [upstream]


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    return found


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The shipped unit with the installed `return-router` as executable (verify checks that it exists)."""
    text = UNIT.read_text()
    assert text.count("/opt/return-router/bin/return-router") == 2
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace("/opt/return-router/bin/return-router", cli()[0]))
    return copy


def test_systemd_analyze_verify_accepts_every_line(tmp_path: Path) -> None:
    if len(cli()) != 1:
        pytest.skip("the return-router script is not installed beside this Python")
    result = subprocess.run([_analyze(), "verify", str(_unit_for_this_machine(tmp_path))], capture_output=True,
                            text=True, timeout=60)
    # verify exits 0 even for unknown keys or bad values; it says so on stderr, so that must stay empty.
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_systemd_security_exposure_is_low(tmp_path: Path) -> None:
    result = subprocess.run([_analyze(), "security", "--offline=true", str(_unit_for_this_machine(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout  # systemd calls < 2 "OK"; a default unit scores 9.6


def test_caddyfile_is_formatted_and_adapts_without_warnings() -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian: apt-get install caddy; .ci/run does)")
    source = (DEPLOY / "Caddyfile").read_text()
    formatted = subprocess.run([caddy, "fmt", str(DEPLOY / "Caddyfile")], capture_output=True, text=True, timeout=30)
    assert formatted.stdout == source
    adapted = subprocess.run([caddy, "adapt", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
                             capture_output=True, text=True, timeout=30)
    assert adapted.returncode == 0 and "WARN" not in adapted.stderr.upper(), adapted.stderr


def test_proxy_comments_name_the_metrics_listener_not_the_service_port() -> None:
    """/metrics is on `[metrics] listen` (default 127.0.0.1:9100) and 404 on the service port the proxies send
    traffic to: a comment that tells the operator to scrape the service port points Prometheus at a 404."""
    serve = shlex.split(directives(UNIT.read_text())["Service"]["ExecStart"][0])
    service_port = serve[serve.index("--port") + 1]
    for path in (DEPLOY / "nginx" / "return-router.conf", DEPLOY / "Caddyfile"):
        comments = [line for line in path.read_text().splitlines() if line.strip().startswith("#")]
        about_metrics = [line for line in comments if "/metrics" in line or "Prometheus" in line]
        assert about_metrics, path
        assert not [line for line in about_metrics if f":{service_port}" in line], (path, about_metrics)
        assert any(DEFAULT_METRICS_LISTEN in line for line in about_metrics), (path, about_metrics)
