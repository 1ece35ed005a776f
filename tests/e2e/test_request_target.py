"""The request target as sent, over a real socket, under both of uvicorn's parsers: absolute-form (RFC 9112 3.2.2)
and the raw path the routes match."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from router.app import create_app, serving_app
from router.config import Settings
from router.web.server import BoundedHeadProtocol
from tests.e2e.raw import Answer, exchange, hrefs, resolved_host
from tests.support import serve_app
from tests.support.config import HOST

OTHER = "other.example"


@pytest.fixture(params=["h11", "serve"])
def url(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The router under uvicorn's h11, and as `serve` runs it (the front door, its httptools protocol, which
    drops a target's authority)."""
    if request.param == "h11":
        app, protocol = create_app(make_settings(), background=False), "h11"
    else:
        app, protocol = serving_app(make_settings()), BoundedHeadProtocol
    with serve_app(app, http=protocol) as base:
        yield base


def send(url: str, target: str, host: str | None = HOST, version: str = "1.1") -> Answer:
    lines = [f"GET {target} HTTP/{version}", *([f"Host: {host}"] if host else []), "Connection: close", "", ""]
    return exchange(url, "\r\n".join(lines).encode("latin-1"))


@pytest.mark.parametrize("host", [HOST, "PAY.example.com.", f"{HOST}:443"])
def test_an_absolute_target_that_agrees_with_host_is_served(url: str, host: str) -> None:
    answer = send(url, f"http://{HOST}/amazon-pay/error", host)
    assert answer.status == 200 and 'data-kind="amazon_error"' in answer.text, answer.text[:300]
    files = send(url, f"https://{HOST}/.well-known/assetlinks.json?x=1", host)
    assert files.status == 200 and json.loads(files.body)[0]["target"]["package_name"] == "com.example.shop"


def test_http_1_0_without_host_takes_the_target_s_authority(url: str) -> None:
    answer = send(url, f"http://{HOST}/amazon-pay/error", None, "1.0")
    assert answer.status == 200 and 'data-kind="amazon_error"' in answer.text


@pytest.mark.parametrize(("target", "host"), [
    (f"http://{OTHER}/amazon-pay/error", HOST),  # httptools: served by Host
    (f"http://{HOST}/amazon-pay/error", OTHER),  # httptools: "not found" by Host; RFC: pay.example.com's page
    (f"http://{OTHER}/.well-known/assetlinks.json", HOST),
    (f"http://{OTHER}/.well-known/apple-app-site-association", HOST),
    (f"http://{HOST}.evil.example/amazon-pay/error", HOST),
])
def test_an_absolute_target_naming_another_host_is_refused(url: str, target: str, host: str) -> None:
    answer = send(url, target, host)
    assert answer.status == 400, answer.text[:300]
    if "/amazon-pay/" in target:
        assert "text/html" in answer.headers["content-type"] and "another host than its Host header" in answer.text
        target_host = target.split("/")[2]
        for href in hrefs(answer.text):  # the page's links stay on the Host's site (or go to the shop)
            assert resolved_host(f"https://{host}/", href) in (host, "shop.example.com"), href
            assert target_host not in href, href


def test_the_api_refuses_it_in_json(url: str) -> None:
    answer = send(url, f"http://{OTHER}/v1/openapi.json")
    assert answer.status == 400 and answer.headers["content-type"] == "application/json"
    assert "another host than its Host header" in json.loads(answer.body)["error"]["message"]


@pytest.mark.parametrize("authority", ["a@pay.example.com", "-x.example", "[1.2.3.4]"])
def test_an_unusable_authority_is_a_bad_host(url: str, authority: str) -> None:
    answer = send(url, f"http://{authority}/amazon-pay/error")
    assert answer.status == 400 and "The Host header of the request is not" in answer.text


# --- the raw path ---------------------------------------------------------------------------------

REF = "r" * 32
SESSION = "bd504926-f659-4ad7-a1a9-9a747aaf5275"


@pytest.mark.parametrize("path", [
    "/amazon-pay%2Fresult", "/amazon-pay%2fcancel", "/amazon-pay%2Ferror", "/amazon-pay/%65rror",
    "/amazon-pay%2Fresult/", "/amazon-pay/error//",
])
def test_a_route_spelled_otherwise_is_the_404_page(url: str, path: str) -> None:
    """A proxy in front matches the raw path: `/amazon-pay%2Fresult` is not its `/amazon-pay/result`."""
    answer = send(url, f"{path}?ref={REF}")  # on a route: result's 400 (no session), cancel's or error's 200
    assert answer.status == 404 and 'data-kind="not_found"' in answer.text, answer.text[:200]


@pytest.mark.parametrize("path", ["/.well-known%2Fassetlinks.json", "/.well-known%2Fapple-app-site-association",
                                  "/%61pple-app-site-association", "/.well-known/assetlinks%2Ejson"])
def test_an_association_file_spelled_otherwise_is_the_404_page(url: str, path: str) -> None:
    answer = send(url, path)
    assert answer.status == 404 and "text/html" in answer.headers["content-type"], answer.text[:200]
    assert send(url, "/.well-known/assetlinks.json").status == 200  # as spelled, still served


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("route", ["/amazon-pay/result", "/amazon-pay/cancel", "/amazon-pay/error"])
def test_a_trailing_slash_is_sent_on_to_the_route_on_this_site(url: str, method: str, route: str) -> None:
    query = f"ref={REF}&amazonCheckoutSessionId={SESSION}&x=%41+b"
    answer = exchange(url, f"{method} {route}/?{query} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                      .encode())
    assert answer.status == 308 and answer.headers["location"] == f"{route}?{query}", answer.headers
    assert answer.headers["cache-control"] == "no-store"
    assert send(url, f"{route}/?{query}", OTHER).status == 404  # not a route on that host: no redirect


def test_a_trailing_slash_without_a_query_keeps_none(url: str) -> None:
    answer = send(url, "/amazon-pay/error/")
    assert answer.status == 308 and answer.headers["location"] == "/amazon-pay/error"
