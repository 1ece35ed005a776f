"""`return-router app-config`: the app side equals what the served association files claim.

The expected hosts and paths come from the real apple-app-site-association and assetlinks.json bytes
the app serves over a socket, never from app_config itself.
"""

from __future__ import annotations

import json
import plistlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router import app_config
from router.app import create_app
from router.config import Settings, load
from tests.support import serve_app
from tests.support.config import ANDROID, EMULATOR, routes

ANDROID_NS = "http://schemas.android.com/apk/res/android"
A = "{" + ANDROID_NS + "}"
APP_IDS = ["ABCDE12345.com.example.shop", "FGHIJ67890.com.example.shop.beta"]
CONFIG = """
[ios]
app_ids = ["ABCDE12345.com.example.shop", "FGHIJ67890.com.example.shop.beta"]
open_in_app_host = "open.example.com"
webcredentials = true
""" + ANDROID + routes(
    ("pay.example.com", "/amazon-pay/result", "success"),
    ("pay.example.com", "/pay&go/cancel", "cancel"),
    ("pay.example.com", "/amazon-pay/error", "error"),  # a flow's first route needs an exact host
    ("*.shop.example.com", "/ap/result", "success"),
    ("*.shop.example.com", "/ap/error", "error"),
    ("eu.shop.example.com", "/eu/result", "success"),
    ("*", "/any/cancel", "cancel"),
) + EMULATOR
# Each configured host, and a Host header the served files are fetched with (a wildcard: any subdomain).
HOSTS = {"pay.example.com": "pay.example.com", "*.shop.example.com": "m.shop.example.com",
         "eu.shop.example.com": "eu.shop.example.com", "open.example.com": "open.example.com"}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "router.toml"
    path.write_text(CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n', encoding="utf-8")
    return path


@pytest.fixture
def settings(config_path: Path) -> Settings:
    return load(config_path, env={})


@pytest.fixture
def served(settings: Settings) -> Iterator[Callable[[str, str], Any]]:
    """GET an association file from the running app for a Host, parsed from the bytes on the wire."""
    with serve_app(create_app(settings, background=False)) as url:
        def fetch(path: str, host: str) -> Any:
            answer = httpx.get(url + path, headers={"host": host})
            assert answer.status_code == 200, (path, host, answer.text)
            return json.loads(answer.content)
        yield fetch


def aasa_claims(aasa: dict[str, Any]) -> dict[str, set[str]]:
    """app id → paths its applinks components claim."""
    claims: dict[str, set[str]] = {}
    for detail in aasa["applinks"]["details"]:
        for app_id in detail["appIDs"]:
            claims.setdefault(app_id, set()).update(c["/"] for c in detail["components"])
    return claims


def assetlinks_paths(statements: list[dict[str, Any]]) -> set[str]:
    (statement,) = statements
    rules = statement["relation_extensions"]["delegate_permission/common.handle_all_urls"]
    return {c["/"] for c in rules["dynamic_app_link_components"]}


def parse_intent_filters(xml_text: str) -> ET.Element:
    """The output is a fragment: wrap it in a manifest that declares xmlns:android, as the app's does."""
    assert "xmlns:android=" not in xml_text  # the prefix is left to the manifest
    return ET.fromstring(f'<manifest xmlns:android="{ANDROID_NS}"><activity>{xml_text}</activity></manifest>')


def test_ios_entitlements_list_every_served_host(settings: Settings, served: Callable[[str, str], Any]) -> None:
    plist = plistlib.loads(app_config.ios_plist(settings))
    domains = plist["com.apple.developer.associated-domains"]
    applinks = [d.removeprefix("applinks:") for d in domains if d.startswith("applinks:")]
    assert applinks == list(HOSTS)  # config order, the open-in-app host included, "*" left out
    assert [d for d in domains if d.startswith("webcredentials:")] == [f"webcredentials:{h}" for h in HOSTS]
    for host in applinks:
        aasa = served("/.well-known/apple-app-site-association", HOSTS[host])
        assert set(aasa_claims(aasa)) == set(APP_IDS)
        assert aasa["webcredentials"]["apps"] == APP_IDS  # the entitlement's webcredentials are honoured


def test_without_webcredentials_only_applinks(config_path: Path) -> None:
    config_path.write_text(config_path.read_text().replace("webcredentials = true", ""))
    domains = app_config.ios_entitlements(load(config_path, env={}))["com.apple.developer.associated-domains"]
    assert domains and all(d.startswith("applinks:") for d in domains)


def test_android_intent_filters_equal_the_served_claims(settings: Settings,
                                                        served: Callable[[str, str], Any]) -> None:
    root = parse_intent_filters(app_config.android_xml(settings))
    claimed: dict[str, set[str]] = {}
    for intent_filter in root.iter("intent-filter"):
        assert intent_filter.get(A + "autoVerify") == "true"
        assert [a.get(A + "name") for a in intent_filter.iter("action")] == ["android.intent.action.VIEW"]
        assert {c.get(A + "name") for c in intent_filter.iter("category")} == {
            "android.intent.category.BROWSABLE", "android.intent.category.DEFAULT"}
        data = list(intent_filter.iter("data"))
        assert {d.get(A + "scheme") for d in data} == {"https"}
        hosts = {d.get(A + "host") for d in data}
        assert len(hosts) == 1  # one host per filter: a filter's <data> elements combine
        host = hosts.pop()
        assert host is not None and host not in claimed
        claimed[host] = {str(d.get(A + "path")) for d in data}
    assert list(claimed) == list(HOSTS)
    for host, paths in claimed.items():
        assert paths == assetlinks_paths(served("/.well-known/assetlinks.json", HOSTS[host]))
        # the same paths Apple is told, for every app
        for app_paths in aasa_claims(served("/.well-known/apple-app-site-association", HOSTS[host])).values():
            assert app_paths == paths
    assert "/pay&go/cancel" in claimed["pay.example.com"]  # escaped in the XML, read back intact
    assert "/eu/result" in claimed["eu.shop.example.com"] and "/eu/result" not in claimed["*.shop.example.com"]


def test_json_formats_say_the_same(settings: Settings) -> None:
    root = parse_intent_filters(app_config.android_xml(settings))
    from_xml = [[(d.get(A + "host"), d.get(A + "path")) for d in f.iter("data")] for f in root.iter("intent-filter")]
    from_json = [[(d["host"], d["path"]) for d in f["data"]] for f in app_config.android_intent_filters(settings)]
    assert from_xml == from_json
    assert plistlib.loads(app_config.ios_plist(settings)) == app_config.ios_entitlements(settings)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router.cli", "app-config", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_each_format(config_path: Path, settings: Settings) -> None:
    ios = run_cli("ios", "--config", str(config_path))
    assert ios.returncode == 0, ios.stderr
    assert plistlib.loads(ios.stdout.encode()) == app_config.ios_entitlements(settings)
    assert "note: host *.shop.example.com:" in ios.stderr and 'note: host "*"' in ios.stderr
    ios_json = run_cli("ios", "--config", str(config_path), "--format", "json")
    assert json.loads(ios_json.stdout) == plistlib.loads(ios.stdout.encode())
    android = run_cli("android", "--config", str(config_path))
    assert android.returncode == 0, android.stderr
    hosts = {d.get(A + "host") for d in parse_intent_filters(android.stdout).iter("data")}
    assert hosts == set(HOSTS)
    android_json = json.loads(run_cli("android", "--config", str(config_path), "--format", "json").stdout)
    assert {d["host"] for f in android_json["intentFilters"] for d in f["data"]} == hosts


def test_cli_refuses_an_unconfigured_platform_and_a_bad_config(config_path: Path, tmp_path: Path) -> None:
    text = config_path.read_text()
    no_android = tmp_path / "ios-only.toml"
    no_android.write_text(text[:text.index("[android]")] + text[text.index("[[routes]]"):])
    result = run_cli("android", "--config", str(no_android))
    assert result.returncode == 2 and result.stdout == ""
    assert f"{no_android}: android: not configured" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('flow = "error"', 'flow = "eror"'))
    result = run_cli("ios", "--config", str(bad))
    assert result.returncode == 2 and f"{bad}: routes[2].flow:" in result.stderr
    assert "Traceback" not in result.stderr
