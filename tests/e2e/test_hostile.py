"""Hostile requests over a real socket: each gets a 4xx (JSON or the bad-request page) and little or no log."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from router.app import create_app
from router.config import Settings
from router.web.flows import Flows
from tests.e2e.raw import captured_logs, exchange, get, hrefs, resolved_host
from tests.support import serve_app
from tests.support.config import HOST, TOKEN
from tests.support.routers import Router

SESSION = "bd504926-f659-4ad7-a1a9-9a747aaf5275"
REF = "r" * 32
AUTH = {"authorization": f"Bearer {TOKEN}"}


def post(url: str, path: str, body: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url + path, content=body, headers={"content-type": content_type, **(headers or {})})


# --- requests that gave 500 -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/amazon-pay/result", "/amazon-pay/cancel"])
def test_sixty_ampersands_get_the_bad_request_page(router: Router, path: str) -> None:
    with captured_logs() as logs:
        answer = get(router.url, f"{path}?ref={REF}&amazonCheckoutSessionId={SESSION}" + "&" * 60)
    assert answer.status == 400 and answer.headers["content-type"].startswith("text/html")
    assert "too many parameters" in answer.text
    assert "Traceback" not in logs.text and len(logs.text) < 300, logs.text


@pytest.mark.parametrize(("target", "english"), [
    (f"/amazon-pay/result?ref={REF}&amazonCheckoutSessionId={SESSION}" + "&" * 60, "too many parameters"),
    (f"/amazon-pay/result?ref={REF}&amazonCheckoutSessionId=%3Cx%3E", "is not valid"),
    (f"/amazon-pay/result?amazonCheckoutSessionId={SESSION}", "no order reference"),
    (f"/amazon-pay/cancel?ref={REF}&ref=other", "more than one checkout"),
])
def test_a_japanese_buyer_reads_why_in_japanese(router: Router, target: str, english: str) -> None:
    """The page's one line on why the link failed was English on the Japanese page."""
    answer = get(router.url, target, "pay.example.com", "Accept-Language: ja")
    assert answer.status == 400 and 'lang="ja"' in answer.text
    assert "詳細" in answer.text and english not in answer.text
    assert english in get(router.url, target).text  # the English page still says it in English


def test_a_japanese_buyer_reads_a_refused_host_in_japanese(router: Router) -> None:
    answer = get(router.url, "/amazon-pay/error?lang=ja", "[1.2.3.4]")
    assert answer.status == 400 and "Hostヘッダーが正しくありません" in answer.text
    api = get(router.url, "/v1/openapi.json", "[1.2.3.4]")  # the API's message stays English
    assert json.loads(api.text)["error"]["message"].startswith("The Host header of the request is not")


def test_deeply_nested_json_is_a_json_400(router: Router) -> None:
    with captured_logs() as logs:
        answer = post(router.url, f"/v1/checkout-sessions/{SESSION}/finalize", b"[" * 2000 + b"]" * 2000)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_json" and "32 levels" in answer.json()["error"]["message"]
    assert "Traceback" not in logs.text and len(logs.text) < 300, logs.text


def test_nesting_at_the_limit_is_still_read(router: Router) -> None:
    body = {"ref": REF, "x": json.loads("[" * 31 + "]" * 31)}  # 32 levels with the outer object
    answer = post(router.url, f"/v1/checkout-sessions/{SESSION}/finalize", json.dumps(body).encode())
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_ref"


@pytest.mark.parametrize(("amount", "currency"), [
    ("1e30", "USD"), ("1" * 40, "USD"), ("1_000", "JPY"), ("١٢٣", "JPY"), (" 14", "USD"), ("+14", "USD"),
    ("14.", "USD"), (".5", "USD"), ("NaN", "USD"), ("Infinity", "USD"), ("0x10", "USD"), ("10000001", "JPY"),
    ("150000.01", "USD"), ("1500000.01", "SEK"), (1e30, "USD"), ("0", "JPY"), ("0.00", "USD"),
])
def test_malformed_or_excessive_amounts_are_refused(router: Router, amount: object, currency: str) -> None:
    body = {"merchantReference": "o-1", "chargeAmount": {"amount": amount, "currencyCode": currency},
            "paymentIntent": "Confirm"}
    with captured_logs() as logs:
        answer = httpx.post(router.url + "/v1/checkouts", json=body, headers=AUTH)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_amount", answer.text
    assert "Traceback" not in logs.text and len(logs.text) < 300, logs.text


HUGE = "1" + "0" * 5000  # past int()'s 4,300-digit limit, which json.loads reported as invalid JSON


@pytest.mark.parametrize("amount", [HUGE, "-" + HUGE, "1e999", "-1e999", "1E+99999999999", "1" + "0" * 400 + ".5"])
def test_a_huge_json_number_is_an_invalid_amount(router: Router, amount: str) -> None:
    body = ('{"merchantReference": "o-1", "paymentIntent": "Confirm", '
            f'"chargeAmount": {{"amount": {amount}, "currencyCode": "USD"}}}}').encode()
    with captured_logs() as logs:
        answer = post(router.url, "/v1/checkouts", body, headers=AUTH)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_amount", answer.text
    assert len(answer.json()["error"]["message"]) < 200 and "Traceback" not in logs.text, logs.text


@pytest.mark.parametrize(("body", "code"), [
    ('{"merchantReference": ' + HUGE + ', "paymentIntent": "Confirm", '
     '"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}}', "invalid_merchant_reference"),
    ('{"merchantReference": "o-1", "paymentIntent": "Confirm", "chargeAmount": {"amount": "14.00", '
     '"currencyCode": "USD"}, "canHandlePendingAuthorization": ' + HUGE + "}", "invalid_field"),
])
def test_a_huge_integer_elsewhere_is_that_field_s_error(router: Router, body: str, code: str) -> None:
    answer = post(router.url, "/v1/checkouts", body.encode(), headers=AUTH)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code, answer.text


def test_the_largest_charges_are_accepted(router: Router, jp_router: Router) -> None:
    assert jp_router.register(amount="10000000", currency="JPY")["checkout"]["chargeAmount"]["amount"] == "10000000"
    assert router.register(amount="150000", currency="USD")["checkout"]["chargeAmount"]["amount"] == "150000.00"


def test_unknown_keys_inside_money_are_refused(router: Router) -> None:
    body = {"merchantReference": "o-1", "paymentIntent": "Confirm",
            "chargeAmount": {"amount": "14.00", "currencyCode": "USD", "extra": 1}}
    answer = httpx.post(router.url + "/v1/checkouts", json=body, headers=AUTH)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_amount"


@pytest.fixture
def failing_router(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The router with a fault injected into the checkout service: an error no handler expects."""
    app = create_app(make_settings(), background=False)

    async def broken(ref: str) -> None:
        raise ZeroDivisionError("injected fault " + "x" * 2000)

    app.state.runtime.service.cancel = broken
    with serve_app(app) as url:
        yield url


def test_an_unexpected_failure_logs_one_short_line(failing_router: str) -> None:
    request = f"GET /amazon-pay/cancel?ref={REF} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    assert len(request) < 100
    with captured_logs() as logs:
        answer = exchange(failing_router, request)
    assert answer.status == 500 and "text/html" in answer.headers["content-type"]
    request_id = answer.headers["x-request-id"]
    assert logs.lines and all("ZeroDivisionError" not in line or request_id in line for line in logs.lines)
    errors = [line for line in logs.lines if " ERROR " in line]
    assert len(errors) == 1 and request_id in errors[0] and "ZeroDivisionError" in errors[0], logs.text
    assert "Traceback" not in logs.text and "injected fault" not in logs.text
    assert len(logs.text.encode()) < 400, logs.text


def test_the_traceback_goes_to_debug(failing_router: str) -> None:
    with captured_logs(logging.DEBUG) as logs:
        answer = get(failing_router, f"/amazon-pay/cancel?ref={REF}")
    assert answer.status == 500
    assert "Traceback" in logs.text and answer.headers["x-request-id"] in logs.text


def test_an_unexpected_failure_on_the_api_is_a_json_500(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(), background=False)

    async def broken(ref: str) -> None:
        raise KeyError(ref)

    app.state.runtime.service.get = broken
    with serve_app(app) as url, captured_logs() as logs:
        answer = httpx.get(f"{url}/v1/checkouts/{REF}", headers=AUTH)
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal_error"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "Traceback" not in logs.text and REF not in logs.text


# --- links built from the request path ------------------------------------------------------------

HOSTILE_PATHS = ["//evil.example/x", "/%2Fevil.example/x", "///evil.example/x", "/\\evil.example/x",
                 "/%5Cevil.example/x", "/%09/evil.example/x", "/%2F%2Fevil.example/x", "/\\/evil.example/x"]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_links_on_a_page_for_a_hostile_path_stay_on_the_site(router: Router, path: str) -> None:
    answer = get(router.url, path + "?a=1")
    assert answer.status == 404
    links = hrefs(answer.text)
    assert any("lang=ja" in href for href in links)
    page = f"https://{HOST}{path}"
    for href in links:
        assert resolved_host(page, href) in (HOST, "shop.example.com", "apps.apple.com", "play.google.com"), href
    lang = next(href for href in links if "lang=ja" in href)
    assert lang.startswith("/") and not lang.startswith(("//", "/\\")) and "evil.example/x" in lang


def test_the_helper_sees_what_a_browser_sees() -> None:
    page = f"https://{HOST}/x"
    assert resolved_host(page, "//evil.example/x") == "evil.example"
    assert resolved_host(page, "/\\evil.example/x") == "evil.example"
    assert resolved_host(page, "/\t/evil.example/x") == "evil.example"
    assert resolved_host(page, "javascript:alert(1)") == "javascript:"
    assert resolved_host(page, "/evil.example/x") == HOST


# --- Host, methods, media types, headers ----------------------------------------------------------

def test_two_host_headers_are_refused(router: Router) -> None:
    for target in ["/amazon-pay/error", "/.well-known/apple-app-site-association", "/v1/openapi.json"]:
        answer = get(router.url, target, HOST, "Host: evil.example")
        assert answer.status == 400, target
    api = get(router.url, "/v1/openapi.json", HOST, "Host: evil.example")
    assert api.headers["content-type"] == "application/json" and b"more than one Host" in api.body
    page = get(router.url, "/amazon-pay/error", HOST, "Host: evil.example")
    assert "text/html" in page.headers["content-type"] and "more than one Host" in page.text


@pytest.mark.parametrize("host", ["pay.example.com:abc", "pay.example.com:99999", "pay example.com", "a@b.example",
                                  "pay.example.com:", "-x.example"])
def test_a_malformed_host_is_a_400(router: Router, host: str) -> None:
    assert get(router.url, "/amazon-pay/error", host).status == 400
    assert get(router.url, "/v1/openapi.json", host).status == 400


@pytest.mark.parametrize("host", ["[1.2.3.4]", "[::1", "[:::::]", "[12345::]", "[::1]x"])
@pytest.mark.parametrize("path", ["/amazon-pay/error", "/amazon-pay/cancel?ref=" + REF, "/x"])
def test_a_bracketed_host_that_is_not_ipv6_is_the_bad_request_page(router: Router, host: str, path: str) -> None:
    """Links built on such a Host cannot even be parsed: refused before anything reads it, in one line."""
    with captured_logs() as logs:
        answer = get(router.url, path, host)
    assert answer.status == 400 and "text/html" in answer.headers["content-type"], answer.text
    assert "x-request-id" in answer.headers and "Host header" in answer.text
    assert "Traceback" not in logs.text and " ERROR " not in logs.text, logs.text


def test_a_failing_500_page_still_answers_without_a_traceback(make_settings: Callable[..., Settings],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_settings(), background=False)

    async def broken(ref: str) -> None:
        raise ZeroDivisionError("injected fault")

    def broken_page(*args: object, **kwargs: object) -> None:
        raise ValueError("the error page fails too")

    app.state.runtime.service.cancel = broken
    monkeypatch.setattr(Flows, "error_page", broken_page)
    with serve_app(app) as url, captured_logs() as logs:
        answer = get(url, f"/amazon-pay/cancel?ref={REF}")
    assert answer.status == 500 and answer.headers["content-type"].startswith("text/plain")
    assert "x-request-id" in answer.headers and answer.headers["cache-control"] == "no-store"
    errors = [line for line in logs.lines if " ERROR " in line]
    assert len(errors) == 1 and "Traceback" not in logs.text, logs.text


def test_good_hosts_still_pass(router: Router) -> None:
    for host in [HOST, f"{HOST}:443", "Pay.Example.COM.", "127.0.0.1:8000", "[::1]:8000"]:
        assert get(router.url, "/healthz", host).status == 200, host


def test_too_many_headers_are_a_431(router: Router) -> None:
    extra = [f"X-H{i}: v" for i in range(120)]
    assert get(router.url, "/healthz", HOST, *extra).status == 431
    assert get(router.url, "/healthz", HOST, *extra[:50]).status == 200


@pytest.mark.parametrize(("length", "status"), [(3000, 400), (20000, 431)])
def test_a_too_long_link_says_so(router: Router, length: int, status: int) -> None:
    """The page said "This link is incomplete" (and, past the head's limit, "too many headers")."""
    target = f"/amazon-pay/result?ref={REF}&amazonCheckoutSessionId={SESSION}&x=" + "a" * length
    en, ja = get(router.url, target), get(router.url, target, HOST, "Accept-Language: ja")
    assert en.status == ja.status == status and "text/html" in en.headers["content-type"]
    assert "<title>This link is too long – " in en.text and "The address is too long." in en.text
    assert "incomplete" not in en.text and "headers" not in en.text
    assert "<title>リンクが長すぎます – " in ja.text and "アドレスが長すぎます。" in ja.text
    assert "正しくありません" not in ja.text


def test_too_large_headers_say_so(router: Router) -> None:
    answer = get(router.url, "/amazon-pay/error", HOST, "X-Big: " + "b" * 17000)
    assert answer.status == 431 and "The request’s headers are too large." in answer.text
    assert "<title>This link is incomplete – " in answer.text  # the link itself may be fine: the generic page


def test_json_answers_carry_nosniff(router: Router) -> None:
    for answer in [httpx.get(router.url + "/healthz"), httpx.get(router.url + "/v1/openapi.json"),
                   httpx.get(f"{router.url}/v1/checkout-sessions/{SESSION}?ref={REF}"),
                   httpx.post(router.url + "/v1/checkouts", json={}, headers=AUTH)]:
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]
    page = httpx.get(router.url + "/amazon-pay/error", headers={"host": HOST})
    assert page.headers.get_list("x-content-type-options") == ["nosniff"]  # once, not twice


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/checkouts", "POST"), ("DELETE", "/v1/checkouts/" + REF, "GET, HEAD"),
    ("PUT", f"/v1/checkout-sessions/{SESSION}/finalize", "POST"), ("POST", "/v1/openapi.json", "GET, HEAD"),
])
def test_wrong_methods_under_v1_are_json_405(router: Router, method: str, path: str, allow: str) -> None:
    answer = httpx.request(method, router.url + path, headers=AUTH)
    assert answer.status_code == 405 and answer.headers["allow"] == allow
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_unknown_v1_paths_are_json_404(router: Router) -> None:
    answer = httpx.get(router.url + "/v1/nothing-here")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("content_type", "parsed"), [
    ("APPLICATION/JSON", True), ("application/json; charset=utf-8", True), ("application/json ;charset=utf-8", True),
    ("text/plain; application/json", False), ("application/jsonp", False), ("text/plain", False),
    ("application/json-patch+json", False),
])
def test_content_type_is_parsed(router: Router, content_type: str, parsed: bool) -> None:
    answer = post(router.url, f"/v1/checkout-sessions/{SESSION}/finalize", json.dumps({"ref": REF}).encode(),
                  content_type)
    assert answer.status_code == (404 if parsed else 415), answer.text


def test_a_client_that_goes_away_mid_body_is_not_a_server_error(router: Router) -> None:
    host, port = router.url.removeprefix("http://").split(":")
    head = (f"POST /v1/checkout-sessions/{SESSION}/finalize HTTP/1.1\r\nHost: {HOST}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    with captured_logs() as logs:
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head + b'{"ref":')
        deadline = time.monotonic() + 5
        while "incomplete_body" not in logs.text and " 400 " not in logs.text and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    assert " ERROR " not in logs.text and "ClientDisconnect" not in logs.text, logs.text
    assert " 500 " not in logs.text and '"status": 500' not in logs.text, logs.text


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_any_method_under_v1_gets_a_json_answer(router: Router, method: str) -> None:
    request = f"{method} /v1/checkouts HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n".encode()
    answer = exchange(router.url, request)
    assert answer.status == 405 and answer.headers["content-type"] == "application/json", answer.body
    assert answer.headers["allow"] == "POST" and b"method_not_allowed" in answer.body


@pytest.mark.parametrize(("method", "path"), [("POST", "/amazon-pay/result?ref=a"), ("PUT", "/amazon-pay/cancel"),
                                              ("TRACE", "/"), ("PROPFIND", "/nowhere")])
def test_any_other_method_on_the_pages_gets_a_405_page(router: Router, method: str, path: str) -> None:
    """A form posted to a return URL, a scanner's PUT: the site's own page (Starlette's was plain text)."""
    request = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n".encode()
    answer = exchange(router.url, request)
    assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD", answer.body
    assert "text/html" in answer.headers["content-type"] and 'data-kind="bad_request"' in answer.text
    assert "it takes no form or upload" in answer.text


def test_an_encoded_newline_in_a_path_still_gets_json_or_the_page(router: Router) -> None:
    api = get(router.url, "/v1/x%0Ay")
    assert api.status == 404 and api.headers["content-type"] == "application/json" and b"not_found" in api.body
    page = get(router.url, "/amazon-pay/result%0Ax?ref=a")
    assert page.status == 404 and "text/html" in page.headers["content-type"] and "Page not found" in page.text
