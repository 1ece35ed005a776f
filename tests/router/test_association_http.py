"""The association files over a real socket, as Apple's and Google's fetchers see them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from router.app import create_app
from router.config import load
from tests.support import serve_app
from tests.support.config import BASE_CONFIG
from well_known import aasa_opens, validate_aasa, validate_assetlinks

PATHS = ["/.well-known/apple-app-site-association", "/apple-app-site-association", "/.well-known/assetlinks.json"]
WILDCARD = BASE_CONFIG + '\n[[routes]]\nhost = "*"\npath = "/any/result"\nflow = "success"\n'


@pytest.fixture
def base_url(write_config: Callable[[str], Path], tmp_path: Path) -> Iterator[str]:
    config = WILDCARD + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n'
    settings = load(write_config(config), env={})
    with serve_app(create_app(settings, background=False)) as url:
        yield url


def get(base_url: str, path: str, host: str = "pay.example.com", **headers: str) -> httpx.Response:
    return httpx.get(base_url + path, headers={"host": host, **headers}, follow_redirects=False)


@pytest.mark.parametrize("path", PATHS)
def test_served_directly_as_json_with_caching_headers(base_url: str, path: str) -> None:
    first = get(base_url, path, **{"user-agent": "AASA-Bot/1.0.0"})
    second = get(base_url, path)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    assert first.headers["etag"].startswith('"') and not first.headers["etag"].startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=300"
    assert "set-cookie" not in first.headers
    assert int(first.headers["content-length"]) == len(first.content)
    assert not first.content.startswith(b"\xef\xbb\xbf")
    validate = validate_assetlinks if path.endswith(".json") else validate_aasa
    assert [p for p in validate(first.content) if p.severity == "error"] == []


def test_both_aasa_locations_serve_identical_bytes(base_url: str) -> None:
    assert get(base_url, PATHS[0]).content == get(base_url, PATHS[1]).content


@pytest.mark.parametrize("host", ["PAY.EXAMPLE.COM", "pay.example.com.", "Pay.Example.Com.:443"])
def test_host_case_port_and_trailing_dot(base_url: str, host: str) -> None:
    for path in PATHS:
        assert get(base_url, path, host=host).content == get(base_url, path).content


def test_etag_revalidation(base_url: str) -> None:
    for path in PATHS:
        etag = get(base_url, path).headers["etag"]
        for candidate in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            answer = get(base_url, path, **{"if-none-match": candidate})
            assert answer.status_code == 304 and answer.content == b""
            assert answer.headers["etag"] == etag
        assert get(base_url, path, **{"if-none-match": '"other"'}).status_code == 200


def test_head_has_headers_and_no_body(base_url: str) -> None:
    for path in PATHS:
        answer = httpx.head(base_url + path, headers={"host": "pay.example.com"})
        assert answer.status_code == 200 and answer.content == b""
        assert answer.headers["content-length"] == get(base_url, path).headers["content-length"]


def test_unknown_host_is_404_json(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    settings = load(write_config(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/x.db"\n'), env={})
    with serve_app(create_app(settings, background=False)) as url:
        for path in PATHS:
            answer = get(url, path, host="evil.example.net")
            assert answer.status_code == 404
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["error"]["code"] == "not_found"


def test_any_host_route_serves_on_every_host(base_url: str) -> None:
    doc = json.loads(get(base_url, PATHS[0], host="elsewhere.test").content)
    assert aasa_opens(doc, "https://elsewhere.test/any/result?amazonCheckoutSessionId=abc")
    assert not aasa_opens(doc, "https://elsewhere.test/amazon-pay/result?amazonCheckoutSessionId=abc")
    configured = json.loads(get(base_url, PATHS[0]).content)
    assert aasa_opens(configured, "https://pay.example.com/amazon-pay/result?ref=r&amazonCheckoutSessionId=abc")
    assert aasa_opens(configured, "https://pay.example.com/any/result?CheckoutSessionId=abc")
    assert aasa_opens(configured, "https://pay.example.com/amazon-pay/cancel?ref=r")
    assert not aasa_opens(configured, "https://pay.example.com/amazon-pay/result?ref=r")
    assert not aasa_opens(configured, "https://pay.example.com/somewhere/else")


def test_assetlinks_lists_the_app_and_fingerprints(base_url: str) -> None:
    statements = get(base_url, PATHS[2]).json()
    target = statements[0]["target"]
    assert statements[0]["relation"] == ["delegate_permission/common.handle_all_urls"]
    assert target["namespace"] == "android_app" and target["package_name"] == "com.example.shop"
    assert target["sha256_cert_fingerprints"][0].startswith("14:6D:E9")


def test_other_methods_are_refused(base_url: str) -> None:
    answer = httpx.post(base_url + PATHS[0], headers={"host": "pay.example.com"})
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
