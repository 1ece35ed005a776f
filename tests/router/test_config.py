from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from router.config import ConfigError, load
from router.web.routing import Flow
from tests.support.config import APPS_AND_ROUTES, BASE_CONFIG

Write = Callable[..., Path]


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, env=env or {})
    return info.value.problems


def test_base_config_loads_with_normalized_values(write_config: Write) -> None:
    settings = load(write_config(BASE_CONFIG), env={})
    assert [(r.host, r.path, r.flow) for r in settings.routes] == [
        ("pay.example.com", "/amazon-pay/result", Flow.SUCCESS),
        ("pay.example.com", "/amazon-pay/cancel", Flow.CANCEL),
        ("pay.example.com", "/amazon-pay/error", Flow.ERROR),
    ]
    assert settings.ios is not None and settings.ios.app_ids == ("ABCDE12345.com.example.shop",)
    assert settings.storage.url.startswith("sqlite:////")  # made absolute, next to the config file


def test_lower_case_fingerprint_is_normalized(write_config: Write) -> None:
    lower = BASE_CONFIG.replace("14:6D:E9:83:C5", "14:6d:e9:83:c5")
    settings = load(write_config(lower), env={})
    assert settings.android is not None
    assert settings.android.sha256_cert_fingerprints[0].startswith("14:6D:E9:83:C5")


@pytest.mark.parametrize(("replace", "by", "expected"), [
    ('"ABCDE12345.com.example.shop"', '"ABC.com.example.shop"', "ios.app_ids[0]: "),
    ('"ABCDE12345.com.example.shop"', '"com.example.shop"', "ios.app_ids[0]: "),
    ("14:6D:E9:83:C5:73:06:50:", "14:6D:E9:", "android.sha256_cert_fingerprints[0]: "),
    ("14:6D:E9:83:C5:73:06:50:", "ZZ:6D:E9:83:C5:73:06:50:", "android.sha256_cert_fingerprints[0]: "),
    ('flow = "error"', 'flow = "oops"', "routes[2].flow: must be one of success, cancel, error"),
    ('flow = "error"', 'flow = "cancel"', "routes: no route for flow 'error'"),
    ('host = "pay.example.com"\npath = "/amazon-pay/cancel"', 'host = "pay.example.com:443"\npath = "/x"',
     "routes[1].host: "),
    ('path = "/amazon-pay/error"', 'path = "/amazon-pay/*"', "routes[2].path: "),
    ('app_store_id = "1234567890"', 'app_store_id = "id123"', "ios.app_store_id: "),
    ('package = "com.example.shop"', 'package = "shop"', "android.package: "),
    ("[ios]", "[ios]\nuniversal = true", "ios.universal: unknown key"),
    ('path = "/amazon-pay/error"', 'path = "/amazon-pay/error"\nmethod = "GET"', "routes[2].method: unknown key"),
])
def test_each_problem_names_its_key(write_config: Write, replace: str, by: str, expected: str) -> None:
    assert replace in BASE_CONFIG
    path = write_config(BASE_CONFIG.replace(replace, by, 1))
    found = problems(path)
    assert any(expected in p for p in found), found
    assert all(p.startswith(f"{path}: ") for p in found)


def test_duplicate_host_and_path(write_config: Write) -> None:
    extra = '\n[[routes]]\nhost = "PAY.example.com."\npath = "/amazon-pay/result"\nflow = "cancel"\n'
    found = problems(write_config(BASE_CONFIG + extra))
    assert any("routes[3]: duplicate host+path pay.example.com/amazon-pay/result (also routes[0])" in p
               for p in found), found


def test_all_problems_reported_at_once(write_config: Write) -> None:
    text = BASE_CONFIG.replace('"ABCDE12345.com.example.shop"', '"bad"').replace('flow = "error"', 'flow = "x"')
    found = problems(write_config(text))
    assert len(found) >= 3  # app id, bad flow, and the error flow left without a route


def test_toml_syntax_error_names_the_line(write_config: Write) -> None:
    found = problems(write_config(BASE_CONFIG + "\n[merchant\nname = 1\n"))
    assert len(found) == 1 and "TOML syntax error" in found[0] and "line" in found[0]


def test_unreadable_file(tmp_path: Path) -> None:
    found = problems(tmp_path / "missing.toml")
    assert found[0].startswith(f"{tmp_path / 'missing.toml'}: cannot read the file")


def test_aasa_over_128_kb_is_refused(write_config: Write) -> None:
    extra = "".join(
        f'\n[[routes]]\nhost = "pay.example.com"\npath = "/amazon-pay/result/{"x" * 80}/{i}"\nflow = "success"\n'
        for i in range(1000)
    )
    found = problems(write_config(BASE_CONFIG + extra))
    assert any("apple-app-site-association for pay.example.com would be" in p and "131072" in p
               for p in found), found


def test_secrets_come_from_named_environment_variables(write_config: Write) -> None:
    text = BASE_CONFIG + (
        '\n[merchant]\nname = "Shop"\napi_token_env = "RR_TOKEN"\n'
        'webhook_url = "https://backend.example.com/hook"\nwebhook_secret_env = "RR_HOOK"\n'
    )
    path = write_config(text)
    found = problems(path)
    assert any("merchant.api_token_env: environment variable RR_TOKEN is not set" in p for p in found)
    settings = load(path, env={"RR_TOKEN": "t0k3n", "RR_HOOK": "s3cret"})
    assert settings.merchant.api_token == "t0k3n"
    assert "t0k3n" not in repr(settings) and "s3cret" not in repr(settings)


def test_webhook_url_needs_a_secret(write_config: Write) -> None:
    found = problems(write_config(BASE_CONFIG + '\n[merchant]\nwebhook_url = "https://b.example/h"\n'))
    assert any("merchant.webhook_secret_env: is required with webhook_url" in p for p in found)


def test_amazon_pay_section(write_config: Write, tmp_path: Path) -> None:
    from router.amazon_pay import generate_key_pair

    private_pem, _ = generate_key_pair()
    (tmp_path / "key.pem").write_bytes(private_pem)
    section = ('\n[amazon_pay]\npublic_key_id = "SANDBOX-AEXAMPLE"\nprivate_key_file = "key.pem"\n'
               'region = "US"\nstore_id = "amzn1.application-oa2-client.x"\n')
    settings = load(write_config(APPS_AND_ROUTES + section), env={})
    assert settings.amazon_pay is not None and settings.amazon_pay.region == "na"
    assert b"PRIVATE KEY" not in repr(settings).encode()
    bad = section.replace('"US"', '"mars"').replace('"SANDBOX-AEXAMPLE"', '"AEXAMPLE"').replace("key.pem", "nope.pem")
    found = problems(write_config(APPS_AND_ROUTES + bad))
    for key in ("amazon_pay.region", "amazon_pay.environment", "amazon_pay.private_key_file"):
        assert any(f": {key}: " in p for p in found), (key, found)
    (tmp_path / "notakey.pem").write_text("hello")
    found = problems(write_config(APPS_AND_ROUTES + section.replace("key.pem", "notakey.pem")))
    assert any("amazon_pay.private_key_file: is not a usable RSA private key" in p for p in found), found


def test_open_in_app_host_mirrors_every_return_path(write_config: Write) -> None:
    text = BASE_CONFIG.replace('app_store_id = "1234567890"',
                               'app_store_id = "1234567890"\nopen_in_app_host = "open.example.com"')
    table = load(write_config(text), env={}).route_table
    route = table.match("open.example.com", "/amazon-pay/result")
    assert route is not None and route.flow is Flow.SUCCESS


def test_needs_an_app(write_config: Write) -> None:
    text = BASE_CONFIG.split("[[routes]]", 1)[1]
    found = problems(write_config("[[routes]]" + text))
    assert any(": ios: configure [ios] or [android]" in p for p in found)


def test_example_config_loads_as_printed(tmp_path: Path) -> None:
    printed = subprocess.run([sys.executable, "-m", "router.cli", "config", "example"],
                             capture_output=True, text=True, check=True).stdout
    path = tmp_path / "example.toml"
    path.write_text(printed)
    settings = load(path, env={}, offline=True)  # the example names a key file the operator provides
    assert settings.ios is not None and settings.android is not None
    assert settings.amazon_pay is not None and not settings.test_mode
    assert {r.flow for r in settings.routes} == set(Flow)
    checked = subprocess.run([sys.executable, "-m", "router.cli", "check", "--offline", "--config", str(path)],
                             capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.endswith("ok\n"), checked.stdout + checked.stderr


def test_check_command_exit_codes(write_config: Write) -> None:
    good = write_config(BASE_CONFIG)
    result = subprocess.run([sys.executable, "-m", "router.cli", "check", "--config", str(good)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pay.example.com: /amazon-pay/result (success)" in result.stdout
    bad = write_config(BASE_CONFIG.replace('flow = "error"', 'flow = "nope"'), "bad.toml")
    result = subprocess.run([sys.executable, "-m", "router.cli", "check", "--config", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{bad}: routes[2].flow: must be one of success, cancel, error" in result.stderr
    assert "Traceback" not in result.stderr


def _amazon(tmp_path: Path, lines: str) -> str:
    from router.amazon_pay import generate_key_pair

    if not (tmp_path / "key.pem").exists():
        (tmp_path / "key.pem").write_bytes(generate_key_pair()[0])
    return APPS_AND_ROUTES + f'\n[amazon_pay]\nprivate_key_file = "key.pem"\n{lines}\n'


@pytest.mark.parametrize(("lines", "key", "message"), [
    ('public_key_id = ""', "public_key_id", "must not be empty"),
    ('public_key_id = "SANDBOX-AEX"\nenvironment = "live"', "environment", "is a sandbox key"),
    ('public_key_id = "LIVE-AEX"\nenvironment = "sandbox"', "environment", "is a live key"),
    ('public_key_id = "SANDBOX-AEX"\ndeadline = inf', "deadline", "must be a finite number"),
    ('public_key_id = "SANDBOX-AEX"\nread_timeout = nan', "read_timeout", "must be a finite number"),
    ('public_key_id = "SANDBOX-AEX"\nquota_fraction = nan', "quota_fraction", "must be a finite number"),
    ('public_key_id = "SANDBOX-AEX"\nfinalize_quota = [nan, 1]', "finalize_quota", "must be [burst, per_second]"),
    ('public_key_id = "LIVE-AEX"\nregion = "jp"\nendpoint = "http://127.0.0.1:8400"', "endpoint",
     "a live key must reach Amazon Pay itself (https://pay-api.amazon.jp)"),
    ('public_key_id = "LIVE-AEX"\nendpoint = "https://evil.example.com"', "endpoint", "a live key must reach"),
    ('public_key_id = "SANDBOX-AEX"\nregion = "jp"\nendpoint = "https://pay-api.amazon.eu"', "endpoint",
     "region jp is served by https://pay-api.amazon.jp"),
    ('public_key_id = "LIVE-AEX"\nregion = "jp"\nendpoint = "https://pay-api.amazon.jp/sandbox"', "endpoint",
     "no path"),
])
def test_amazon_pay_settings_that_serve_would_refuse_or_that_charge_nobody_do_not_load(
        write_config: Write, tmp_path: Path, lines: str, key: str, message: str) -> None:
    found = problems(write_config(_amazon(tmp_path, lines)))
    assert any(f": amazon_pay.{key}: " in p and message in p for p in found), found


@pytest.mark.parametrize("lines", [
    'public_key_id = "SANDBOX-AEX"\nendpoint = "http://127.0.0.1:8400"',  # a local emulator
    'public_key_id = "LIVE-AEX"\nregion = "eu"\nendpoint = "https://pay-api.amazon.eu"',
    'public_key_id = "LIVE-AEX"\nenvironment = "live"',
    'public_key_id = "AEXLEGACY"\nenvironment = "sandbox"\nendpoint = "http://localhost:8400"',
])
def test_amazon_pay_settings_that_are_fine_still_load(write_config: Write, tmp_path: Path, lines: str) -> None:
    assert load(write_config(_amazon(tmp_path, lines)), env={}).amazon_pay is not None


def test_server_numbers_must_be_finite(write_config: Write) -> None:
    found = problems(write_config(BASE_CONFIG + "\n[server]\nheader_timeout_seconds = nan\n"))
    assert any(": server.header_timeout_seconds: must be a finite number" in p for p in found), found


@pytest.mark.parametrize(("value", "message"), [
    ("0", "must be greater than 0"), ("-1.5", "must be greater than 0"), ("nan", "must be a finite number"),
    ("inf", "must be a finite number"), ('"10"', "must be a number"), ("true", "must be a number"),
])
def test_the_body_timeout_must_be_a_positive_number(write_config: Write, value: str, message: str) -> None:
    found = problems(write_config(BASE_CONFIG + f"\n[server]\nbody_timeout_seconds = {value}\n"))
    assert any(f": server.body_timeout_seconds: {message}" in p for p in found), found


def test_the_body_timeout_is_read_and_has_a_default(write_config: Write) -> None:
    assert load(write_config(BASE_CONFIG), env={}).server.body_timeout_seconds == 10.0
    settings = load(write_config(BASE_CONFIG + "\n[server]\nbody_timeout_seconds = 2.5\n"), env={})
    assert settings.server.body_timeout_seconds == 2.5
    assert settings.server.header_timeout_seconds == 10.0  # each key its own


def test_the_aasa_size_checked_at_load_counts_webcredentials_too(write_config: Write) -> None:
    """The served file repeats every app id under webcredentials: the load-time size is the served size."""
    ids = ", ".join(f'"ABCDE{i:05d}.com.example.shop{i}"' for i in range(2200))
    many = BASE_CONFIG.replace('app_ids = ["ABCDE12345.com.example.shop"]', f"app_ids = [{ids}]")
    assert load(write_config(many), env={}).ios is not None  # claims alone: under the limit
    found = problems(write_config(many.replace("[ios]\n", "[ios]\nwebcredentials = true\n")))
    assert any("apple-app-site-association for pay.example.com would be" in p for p in found), found
