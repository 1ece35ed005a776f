"""The egress proxy from the environment, read once (router.env_proxy); the worker's tests send through it on
sockets (tests/webhooks/test_worker_edges.py)."""

from __future__ import annotations

import logging

import pytest
import yarl

from router.env_proxy import EnvProxies

NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_without_variables_there_is_no_proxy() -> None:
    proxies = EnvProxies()
    assert not proxies
    assert proxies.for_url(yarl.URL("https://hooks.example.com/amazon-pay")) is None


def test_each_scheme_takes_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://plain.proxy:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pa%40ss@tls.proxy:3128")
    proxies = EnvProxies()
    assert proxies
    assert proxies.for_url(yarl.URL("http://hooks.example.com/")) == yarl.URL("http://plain.proxy:3128")
    chosen = proxies.for_url(yarl.URL("https://hooks.example.com/"))
    assert chosen is not None and (chosen.host, chosen.user, chosen.password) == ("tls.proxy", "user", "pa@ss")


def test_the_lower_case_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://upper.proxy:3128")
    monkeypatch.setenv("https_proxy", "http://lower.proxy:3128")
    assert EnvProxies().for_url(yarl.URL("https://hooks.example.com/")) == yarl.URL("http://lower.proxy:3128")


@pytest.mark.parametrize(("host", "proxied"), [
    ("hooks.internal.example", False),  # a domain suffix NO_PROXY names
    ("internal.example", False),
    ("10.0.0.7", False),
    ("hooks.example.com", True),
    ("notinternal.example", True),  # a suffix on a label boundary only
])
def test_no_proxy_names_the_hosts_reached_directly(monkeypatch: pytest.MonkeyPatch, host: str, proxied: bool) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:3128")
    monkeypatch.setenv("NO_PROXY", ".internal.example, 10.0.0.7")
    chosen = EnvProxies().for_url(yarl.URL(f"https://{host}/hooks"))
    assert (chosen is not None) is proxied


def test_the_environment_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the process started: a variable changed later (by a library, say) does not move the traffic."""
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:3128")
    proxies = EnvProxies()
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere:3128")
    monkeypatch.setenv("NO_PROXY", "*")
    assert proxies.for_url(yarl.URL("https://hooks.example.com/")) == yarl.URL("http://egress:3128")


def test_a_proxy_that_is_not_http_is_not_used_and_said_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp sends to http:// proxies only (it ignores https:// ones too); the warning names the scheme, not
    the URL, which may carry credentials."""
    monkeypatch.setenv("HTTPS_PROXY", "https://user:secret@tls-proxy:443")
    with caplog.at_level(logging.WARNING, logger="router.env_proxy"):
        proxies = EnvProxies()
    assert not proxies and proxies.for_url(yarl.URL("https://hooks.example.com/")) is None
    assert "https proxy" in caplog.text and "secret" not in caplog.text
