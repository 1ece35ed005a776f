"""Operator mistakes the config refuses (issue 9): missing [amazon_pay], unsafe URLs, IP hosts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from router.config import ConfigError, load
from router.config.reader import Problems, Section
from router.validators import is_ip_literal, url_problem
from router.web.routing import Flow
from tests.support.config import ANDROID, APPS_AND_ROUTES, BASE_CONFIG, EMULATOR, IOS, PAY_ROUTES, routes

Write = Callable[..., Path]


def problems(path: Path, env: dict[str, str] | None = None, offline: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, env=env or {}, offline=offline)
    return info.value.problems


def test_a_config_without_amazon_pay_does_not_load(write_config: Write) -> None:
    path = write_config(APPS_AND_ROUTES)
    assert problems(path) == [f"{path}: amazon_pay: missing: add [amazon_pay] with public_key_id and "
                              "private_key_file (Seller Central › Integration Central), or emulator = true to run "
                              "against the built-in emulator (nothing is charged)"]


def test_emulator_true_is_test_mode_and_takes_no_other_keys(write_config: Write) -> None:
    settings = load(write_config(BASE_CONFIG), env={})
    assert settings.amazon_pay is None and settings.test_mode
    path = write_config(APPS_AND_ROUTES + '\n[amazon_pay]\nemulator = true\npublic_key_id = "LIVE-X"\n')
    assert problems(path) == [f"{path}: amazon_pay.public_key_id: is not used with emulator = true "
                              "(the built-in emulator answers)"]
    found = problems(write_config(APPS_AND_ROUTES + '\n[amazon_pay]\nemulator = "yes"\n'))
    assert any(": amazon_pay.emulator: must be true or false" in p for p in found), found


def test_emulator_false_needs_the_real_keys(write_config: Write) -> None:
    found = problems(write_config(APPS_AND_ROUTES + "\n[amazon_pay]\nemulator = false\n"))
    assert any(": amazon_pay.public_key_id: is required" in p for p in found), found
    assert any(": amazon_pay.private_key_file: set exactly one of" in p for p in found), found


@pytest.mark.parametrize(("key", "value", "message"), [
    ("merchant.shop_url", "javascript:alert(1)", "must be an absolute https:// URL (javascript: URLs are refused)"),
    ("merchant.shop_url", "data:text/html,<b>x</b>", "must be an absolute https:// URL (data: URLs are refused)"),
    ("merchant.shop_url", "/cart", "must be an absolute https:// URL (a relative URL is refused)"),
    ("merchant.shop_url", "//evil.example/cart", "must be an absolute https:// URL (a relative URL is refused)"),
    ("merchant.shop_url", "http://shop.example.com/", "must be an absolute https:// URL"),
    ("merchant.shop_url", "http://127.0.0.1/", "must be an absolute https:// URL"),
    ("merchant.shop_url", "https://shop.example.com\\@evil.example/", "must not contain spaces, control"),
    ("merchant.shop_url", "https://user:pw@shop.example.com/", "must not carry a user name or password"),
    ("merchant.webhook_url", "http://backend.example.com/h",
     "must be an absolute https:// URL (http:// only on a loopback host)"),
    ("android.play_store_url", "http://play.google.com/x", "must be an absolute https:// URL"),
])
def test_configured_urls_are_absolute_https(write_config: Write, key: str, value: str, message: str) -> None:
    section, name = key.split(".")
    extra = 'webhook_secret_env = "S"\n' if name == "webhook_url" else ""
    text = BASE_CONFIG + f"\n[{section}]\n{name} = {value!r}\n{extra}"
    if section == "android":  # [android] exists: add the key to it
        text = BASE_CONFIG.replace('package = "com.example.shop"', f'package = "com.example.shop"\n{name} = {value!r}')
    found = problems(write_config(text.replace("'", '"') if "\\" not in value else text), env={"S": "x"})
    assert any(f": {key}: {message}" in p for p in found), found


def test_loopback_http_is_fine_for_server_to_server_urls(write_config: Write) -> None:
    text = BASE_CONFIG + ('\n[merchant]\nshop_url = "https://shop.example.com/"\n'
                          'webhook_url = "http://127.0.0.1:9000/hook"\nwebhook_secret_env = "S"\n')
    settings = load(write_config(text), env={"S": "x"})
    assert settings.merchant.webhook_url == "http://127.0.0.1:9000/hook"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "127.1", "0x7f.1", "[::1]", "::1"])
def test_route_hosts_must_be_dns_names(write_config: Write, host: str) -> None:
    text = BASE_CONFIG.replace('host = "pay.example.com"', f'host = "{host}"', 1)
    found = problems(write_config(text))
    assert any(": routes[0].host: " in p for p in found), found
    if ":" not in host:
        assert any("is an IP address: routes need a DNS name" in p for p in found), found


@pytest.mark.parametrize("host", ["*", "*.example.com"])
def test_the_first_route_of_each_flow_needs_an_exact_host(write_config: Write, host: str) -> None:
    # The return URLs the API signs take the first route's host: a wildcard has none to give.
    first_error = routes(PAY_ROUTES[0], PAY_ROUTES[1], (host, "/ap/error", "error"), PAY_ROUTES[2])
    path = write_config(IOS + ANDROID + first_error + EMULATOR)
    assert problems(path) == [f"{path}: routes[2].host: {host!r}: the first error route gives the return URLs "
                              "their host, so it must be an exact host (put a route with one before it)"]
    first_success = routes((host, "/ap/result", "success"), *PAY_ROUTES)
    assert [p.split(": ")[1] for p in problems(write_config(IOS + ANDROID + first_success + EMULATOR))] == [
        "routes[0].host"]


def test_wildcard_routes_after_an_exact_first_route_load(write_config: Write) -> None:
    text = IOS + ANDROID + routes(*PAY_ROUTES, ("*.example.com", "/ap/result", "success"),
                                  ("*", "/ap/cancel", "cancel")) + EMULATOR
    table = load(write_config(text), env={}).route_table
    assert table.match("m.example.com", "/ap/result") is not None
    assert all(table.first(flow) == route for flow, route in zip(Flow, table.routes[:3], strict=True))


def test_open_in_app_host_cannot_be_an_ip(write_config: Write) -> None:
    text = BASE_CONFIG.replace('app_store_id = "1234567890"',
                               'app_store_id = "1234567890"\nopen_in_app_host = "192.168.1.2"')
    found = problems(write_config(text))
    assert any(": ios.open_in_app_host: '192.168.1.2' is an IP address" in p for p in found), found


def test_offline_skips_secrets_and_the_key_file(write_config: Write) -> None:
    text = APPS_AND_ROUTES + ('\n[merchant]\napi_token_env = "RR_UNSET"\n\n[amazon_pay]\n'
                              'public_key_id = "SANDBOX-X"\nprivate_key_file = "absent.pem"\n')
    path = write_config(text)
    online = problems(path)
    assert any(": merchant.api_token_env: environment variable RR_UNSET" in p for p in online), online
    assert any(": amazon_pay.private_key_file: cannot read absent.pem" in p for p in online), online
    settings = load(path, env={}, offline=True)
    assert settings.amazon_pay is not None and settings.amazon_pay.private_key_pem == b""


def test_retain_days_and_connect_retry(write_config: Write) -> None:
    text = (BASE_CONFIG + "\n[checkout]\nretain_days = 7\ndelivered_events_retain_days = 3\n"
            "\n[storage]\nconnect_retry_seconds = 3\n")
    settings = load(write_config(text), env={})
    assert settings.checkout.retain_seconds == 7 * 86400 and settings.storage.connect_retry_seconds == 3
    assert settings.checkout.events_retain_seconds == 3 * 86400
    assert load(write_config(BASE_CONFIG), env={}).checkout.events_retain_seconds == 30 * 86400
    for key in ("retain_days", "delivered_events_retain_days"):
        found = problems(write_config(BASE_CONFIG + f"\n[checkout]\n{key} = 0\n"))
        assert any(f": checkout.{key}: must be greater than 0" in p for p in found), found


def test_section_cursor_carries_its_path_and_keeps_going() -> None:
    found = Problems("rr.toml", {})
    root = Section(found, "", {"a": {"b": [{"n": "x", "u": "javascript:1", "zz": 1}]}})
    a = root.section("a")
    assert a is not None
    (entry,) = a.tables("b", required="add [[a.b]]")
    assert entry.int_("n", 5) == 5 and entry.url("u") is None and entry.bool_("t", True) is True
    entry.done()
    assert found.lines == [
        "rr.toml: a.b[0].n: must be an integer",
        "rr.toml: a.b[0].u: must be an absolute https:// URL (javascript: URLs are refused)",
        "rr.toml: a.b[0].zz: unknown key (allowed: n, t, u)",
    ]


@pytest.mark.parametrize(("value", "ok"), [
    ("https://shop.example.com/cart?x=1", True), ("HTTPS://SHOP.EXAMPLE/", True), ("https:///x", False),
    ("https://a.example:0/", False), ("vbscript:x", False), ("https://a.example/\tx", False),
])
def test_url_problem(value: str, ok: bool) -> None:
    assert (url_problem(value) is None) is ok


@pytest.mark.parametrize(("host", "ip"), [
    ("127.0.0.1", True), ("1.2.3.4.", True), ("2130706433", True), ("0x7f.0.0.1", True), ("::1", True),
    ("pay.example.com", False), ("localhost", False), ("1password.example", False), ("a.b1", False),
])
def test_is_ip_literal(host: str, ip: bool) -> None:
    assert is_ip_literal(host) is ip


def test_a_config_without_a_merchant_api_token_is_warned_about(write_config: Write) -> None:
    """It loads (association files can be verified before the backend is wired), but can charge nobody:
    `check` prints it and `serve` logs it at WARNING."""
    from router.checks import operator_warnings

    without = load(write_config(BASE_CONFIG), env={})
    assert without.merchant.api_token is None
    assert any(key == "merchant.api_token_env" and "nobody can pay" in message
               for key, message in operator_warnings(without))
    with_token = load(write_config(BASE_CONFIG + '\n[merchant]\napi_token_env = "RR_T"\n'), env={"RR_T": "t" * 32})
    assert with_token.merchant.api_token is not None
    assert all(key != "merchant.api_token_env" for key, _ in operator_warnings(with_token))


def test_a_lease_no_longer_than_the_amazon_deadline_is_warned_about(write_config: Write) -> None:
    from router.checks import operator_warnings

    def warned(extra: str) -> list[str]:
        settings = load(write_config(BASE_CONFIG + extra), env={})
        return [message for key, message in operator_warnings(settings) if key == "checkout.lease_seconds"]

    assert warned("") == []  # the defaults: a 90 s lease over a 60 s deadline
    [message] = warned("\n[checkout]\nlease_seconds = 60\n")
    assert message.startswith("60 s, not longer than [amazon_pay] deadline (60 s)")


def test_serve_logs_each_warning_beside_its_one_start_record(write_config: Write,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from router.ops.start_summary import log_start

    settings = load(write_config(BASE_CONFIG), env={})
    with caplog.at_level(logging.INFO):
        log_start(settings, ["127.0.0.1:8000"], 1)
    assert [r.levelno for r in caplog.records if r.name == "router.start"] == [logging.INFO]
    warned = [r.getMessage() for r in caplog.records if r.name == "router.config" and r.levelno == logging.WARNING]
    assert any("merchant.api_token_env" in line and "nobody can pay" in line for line in warned), warned


def test_the_start_record_names_the_egress_proxy_without_its_credentials(
    write_config: Write, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both outbound clients send through it (router.env_proxy): the operator sees which, never the password."""
    from router.ops.start_summary import log_start

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    settings = load(write_config(BASE_CONFIG), env={})
    with caplog.at_level(logging.INFO, logger="router.start"):
        log_start(settings, ["127.0.0.1:8000"], 1)
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:s3cr%40t@proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.example")
    with caplog.at_level(logging.INFO, logger="router.start"):
        log_start(settings, ["127.0.0.1:8000"], 1)
    direct, proxied = [r for r in caplog.records if r.name == "router.start"]
    assert "; egress direct;" in direct.getMessage() and direct.__dict__["summary"]["egress"] == "direct"
    assert ("; egress https via http://proxy.corp.example:3128 (not for NO_PROXY localhost,.internal.example);"
            in proxied.getMessage())
    assert proxied.__dict__["summary"]["egress"] == {"https": "http://proxy.corp.example:3128",
                                                     "no_proxy": "localhost,.internal.example"}
    assert "s3cr" not in caplog.text and "egress:" not in caplog.text
