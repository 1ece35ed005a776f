"""Secrets from files (`*_file` twins of every `*_env` key) and the [metrics] / [server] sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import ConfigError, load
from router.ops.settings import OpsSettings
from router.secrets import SecretProblem, resolve_secret
from tests.support.config import BASE_CONFIG


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "router.toml"
    path.write_text(BASE_CONFIG + extra, encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path, env=env or {})
    return caught.value.problems


def test_secrets_come_from_files_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("tok-from-a-file\n")  # echo adds the newline
    (tmp_path / "hook").write_text("whsec-from-a-file\r\n")
    settings = load(write(tmp_path, """
[merchant]
api_token_file = "secrets/token"
webhook_url = "https://shop.example.com/hooks"
webhook_secret_file = "hook"
"""), env={})
    assert (settings.merchant.api_token, settings.merchant.webhook_secret) == ("tok-from-a-file", "whsec-from-a-file")


def test_exactly_one_of_a_pair_and_a_readable_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
[merchant]
api_token_env = "TOKEN"
api_token_file = "token"
webhook_url = "https://shop.example.com/hooks"
webhook_secret_file = "missing"
""")
    found = problems(path, {"TOKEN": "t"})
    assert f"{path}: merchant.api_token_file: set only one of api_token_env or api_token_file" in found
    assert any(p.startswith(f"{path}: merchant.webhook_secret_file: cannot read missing:") for p in found)
    assert not any("webhook_secret_env" in p for p in found)  # the file twin satisfies "webhooks are signed"


def test_env_secrets_work_as_before(tmp_path: Path) -> None:
    path = write(tmp_path, '\n[merchant]\napi_token_env = "TOKEN"\n')
    assert load(path, env={"TOKEN": "from-env"}).merchant.api_token == "from-env"
    assert problems(path) == [f"{path}: merchant.api_token_env: environment variable TOKEN is not set or empty"]


def test_resolve_secret_refuses_empty_files_and_non_strings(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretProblem) as empty:
        resolve_secret({"token_file": "empty"}, "s", "token", {}, tmp_path)
    assert (empty.value.key, str(empty.value)) == ("s.token_file", "empty is empty")
    with pytest.raises(SecretProblem) as typed:
        resolve_secret({"token_file": 3}, "s", "token", {}, tmp_path)
    assert typed.value.key == "s.token_file"
    assert resolve_secret({}, "s", "token", {}, tmp_path) is None


def test_metrics_and_server_sections(tmp_path: Path) -> None:
    assert load(write(tmp_path, ""), env={}).ops == OpsSettings(("127.0.0.1", 9100), 10)
    on = load(write(tmp_path, '\n[metrics]\nlisten = "[::1]:9200"\n[server]\ngraceful_seconds = 3\n'), env={})
    assert on.ops == OpsSettings(("::1", 9200), 3)
    assert load(write(tmp_path, '\n[metrics]\nlisten = ""\n'), env={}).ops.metrics_listen is None
    path = write(tmp_path, '\n[metrics]\nlisten = "9100"\nport = 1\n[server]\ngraceful_seconds = -1\n')
    assert sorted(problems(path)) == sorted([  # every problem once; the order is the reader's
        f"{path}: metrics.port: unknown key (allowed: listen)",
        f'{path}: metrics.listen: must be "host:port" like "127.0.0.1:9100", or "" to turn it off',
        f"{path}: server.graceful_seconds: must be a whole number of seconds from 0 to 3600",
    ])
