"""The shipped proxy configs (deploy/nginx, deploy/Caddyfile), each run by the real server in front of
`return-router serve --proxy-headers`, checked over real TLS with a throw-away CA."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from router.web.api import error_response

from .caddy import caddy_binary, running_caddy
from .certs import Certificates
from .harness import DEPLOY, HOST, UNAVAILABLE_PAGE, Proxy, Service, cli, fetch, service_env
from .nginx import nginx_binary, running_nginx

ASSOCIATION_PATHS = ("/.well-known/apple-app-site-association", "/.well-known/assetlinks.json",
                     "/apple-app-site-association")
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


PROXIES = {"nginx": (nginx_binary, running_nginx), "caddy": (caddy_binary, running_caddy)}


@pytest.fixture(scope="module", params=sorted(PROXIES))
def proxy(request: pytest.FixtureRequest, service: Service, certs: Certificates) -> Iterator[Proxy]:
    """Each shipped proxy in turn, run by the real server."""
    with _run_proxy(request.param, service.port, certs) as proxy:
        yield proxy


def _run_proxy(name: str, upstream: int, certs: Certificates) -> contextlib.AbstractContextManager[Proxy]:
    find, run = PROXIES[name]
    binary = find()
    if binary is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install {name}; .ci/run does)")
    return run(binary, upstream, certs)  # type: ignore[operator]


@pytest.mark.parametrize("path", ASSOCIATION_PATHS)
def test_association_files_over_https_are_the_service_bytes(proxy: Proxy, service: Service, path: str) -> None:
    direct = httpx.get(f"http://127.0.0.1:{service.port}{path}", headers={"host": HOST})
    with proxy.client() as client:
        proxied = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}{path}")
    assert direct.status_code == 200 and proxied.status_code == 200, proxied.text
    assert proxied.headers["content-type"] == "application/json"
    assert proxied.content == direct.content and proxied.content.startswith(b"{" if "apple" in path else b"[")
    assert proxied.headers["strict-transport-security"] == "max-age=63072000"


@pytest.mark.parametrize("path", ASSOCIATION_PATHS)
def test_plain_http_never_redirects_the_association_files(proxy: Proxy, service: Service, path: str) -> None:
    direct = httpx.get(f"http://127.0.0.1:{service.port}{path}", headers={"host": HOST})
    plain = httpx.get(f"http://127.0.0.1:{proxy.http_port}{path}", headers={"host": HOST}, follow_redirects=False)
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    assert plain.content == direct.content


def test_plain_http_redirects_everything_else_to_https(proxy: Proxy) -> None:
    answer = httpx.get(f"http://127.0.0.1:{proxy.http_port}/amazon-pay/error?x=1", headers={"host": HOST},
                       follow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["location"] == f"https://{HOST}/amazon-pay/error?x=1"


def test_return_page_through_the_proxy_links_with_https(proxy: Proxy) -> None:
    with proxy.client() as client:
        page = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/amazon-pay/error",
                       headers={"user-agent": IPHONE})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["strict-transport-security"] == "max-age=63072000"
    # The iOS smart banner carries the page's own absolute URL: built with https and the public host.
    assert f"app-argument=https://{HOST}/amazon-pay/error" in page.text
    assert f"http://{HOST}" not in page.text


def test_metrics_stay_off_the_public_host(proxy: Proxy, service: Service) -> None:
    with proxy.client() as client:
        public = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/metrics")
    assert public.status_code == 404 and "return_router" not in public.text
    assert httpx.get(f"http://127.0.0.1:{service.port}/metrics").status_code == 404  # nor on the service port
    local = httpx.get(f"http://127.0.0.1:{service.metrics_port}/metrics")
    assert local.status_code == 200 and "return_router_returns_total" in local.text


def test_service_sees_the_client_address_and_scheme_from_the_proxy(proxy: Proxy, service: Service) -> None:
    with socket.socket() as probe_socket:
        try:
            probe_socket.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("cannot bind 127.0.0.2 here: no second loopback address to tell client from proxy")
    # The client connects from 127.0.0.2 and lies in its own X-Forwarded-* headers; the proxy connects from
    # 127.0.0.1. The service must see the address the proxy saw and the scheme the proxy served.
    probe = f"probe={proxy.https_port}"
    with proxy.client(local_address="127.0.0.2") as client:
        answer = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/amazon-pay/error?{probe}",
                       headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "http"})
    assert answer.status_code == 200
    def scopes() -> list[str]:  # log lines are written by the logging thread, a moment after the answer
        return [line for line in service.output().splitlines() if "Started scope=" in line and probe in line]

    deadline = time.monotonic() + 5
    while not scopes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(scopes()) == 1, service.output()[-3000:]
    scope = scopes()[0]
    assert "'scheme': 'https'" in scope and "'client': ('127.0.0.2', 0)" in scope
    assert "203.0.113.9" not in scope.split("'headers'")[0]  # the client's own header was not believed
    def access() -> list[str]:  # written by the access log's own thread, a moment after the answer
        return [line for line in service.output().splitlines() if '"GET /amazon-pay/error?… HTTP/1.1"' in line]

    while not access() and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert any(re.search(r"127\.0\.0\.2:0 - ", line) for line in access()), access()  # the access log says so too


def test_client_limits_match_the_service(proxy: Proxy) -> None:
    url = f"https://127.0.0.1:{proxy.https_port}/v1/checkouts"
    json_body = {"content-type": "application/json"}
    with proxy.client() as client:
        allowed = fetch(client, "POST", url, content=b"x" * (15 * 1024), headers=json_body)
        usual_header = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/healthz",
                             headers={"x-filler": "y" * (6 * 1024)})
        long_header = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/healthz",
                            headers={"x-filler": "y" * (32 * 1024)})  # Go allows 4 KiB of slack
    assert allowed.headers["content-type"] == "application/json"  # reached the service (which wants a token)
    assert allowed.status_code == 401, allowed.text
    assert usual_header.status_code == 200
    assert long_header.status_code in (400, 431), long_header.text
    # Above the service's 16 KiB the body is refused at the edge, before the service sees the request.
    with proxy.client() as client:
        too_big = fetch(client, "POST", url, content=b"x" * (17 * 1024), headers=json_body)
    assert too_big.status_code == 413, too_big.text
    assert not too_big.headers.get("content-type", "").startswith("application/json")
    assert not re.search(r"/\d", too_big.headers.get("server", "") + too_big.text)  # no version disclosed


def test_check_remote_passes_through_the_proxy_with_the_test_ca(proxy: Proxy, service: Service) -> None:
    base = [*cli(), "check", "--config", str(service.config), "--remote",
            "--connect-to", f"127.0.0.1:{proxy.https_port}"]
    passed = subprocess.run([*base, "--ca-file", str(proxy.certs.ca)], capture_output=True, text=True, timeout=60,
                            env=service_env())
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.splitlines()[-1] == "ok"
    remote = [line for line in passed.stdout.splitlines() if " remote: " in line]
    if proxy.name == "caddy":  # Caddy's host matcher does not take "pay.example.com." (the Caddyfile says so)
        remote = [line for line in remote if "trailing-dot host does not serve the same file" not in line]
    assert remote == []  # not even a warning
    untrusted = subprocess.run(base, capture_output=True, text=True, timeout=60, env=service_env())
    assert untrusted.returncode == 1  # the system CAs do not know the test CA: --ca-file is what made it pass
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout


def test_check_remote_says_what_the_deployed_host_lacks_of_a_newer_config(proxy: Proxy, service: Service) -> None:
    """A config with another signing certificate and one more path than the running one (a new release, a
    server not reloaded): the missing certificate fails the check, the other file is named as stale."""
    newer = service.config.with_name(f"newer-{proxy.name}.toml")
    text = service.config.read_text()
    old_print = "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5"
    new_print = ":".join(["5A"] * 32)
    assert old_print in text
    newer.write_text(text.replace(old_print, f"{old_print}\",\n  \"{new_print}")
                     + '\n[[routes]]\nhost = "pay.example.com"\npath = "/amazon-pay/done"\nflow = "success"\n')
    checked = subprocess.run([*cli(), "check", "--config", str(newer), "--remote", "--connect-to",
                              f"127.0.0.1:{proxy.https_port}", "--ca-file", str(proxy.certs.ca)],
                             capture_output=True, text=True, timeout=60, env=service_env())
    assert checked.returncode == 1, checked.stdout + checked.stderr
    remote = [line for line in checked.stdout.splitlines() if line.startswith(f"{HOST} remote: ")
              and "trailing-dot" not in line]
    links = f"https://{HOST}/.well-known/assetlinks.json"
    aasa = f"https://{HOST}/.well-known/apple-app-site-association"
    assert f"{HOST} remote: error: {links}: package com.example.shop is not listed with certificate fingerprint(s)" \
        f" {new_print}: an app signed with it never verifies" in remote
    stale = [line for line in remote if "not the file this config serves" in line]
    assert {line.split(": ")[2] for line in stale} == {aasa, links}, remote
    assert any("/amazon-pay/done" in line for line in stale if aasa in line), stale
    assert all(": warning: " in line for line in stale)


def test_proxy_closes_an_idle_client_connection_after_the_services_5_seconds(proxy: Proxy) -> None:
    """README "Deploying": the proxy's idle timeout matches `[server] keep_alive_seconds` (5 s), so a client
    holds an idle connection no longer on the proxy than it could on the service itself."""
    context = ssl.create_default_context(cafile=str(proxy.certs.ca))
    context.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=12) as raw, \
            context.wrap_socket(raw, server_hostname=HOST) as tls:
        tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += tls.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        idle_since = time.monotonic()
        try:  # the rest of the answer, then nothing until the proxy closes the idle connection
            while tls.recv(65536):
                pass
        except (ConnectionResetError, ssl.SSLError, TimeoutError):  # TimeoutError: still open after 12 s
            pass
        idle = time.monotonic() - idle_since
    assert 3.0 < idle < 9.0, f"{proxy.name} closed an idle connection after {idle:.1f} s, not about 5 s"


def test_request_id_is_the_proxys_not_the_clients(proxy: Proxy, service: Service) -> None:
    """The service keeps a valid incoming X-Request-Id and every log line of the request carries it: behind the
    proxy that must be the proxy's id (nginx's $request_id, Caddy's request UUID), not one a buyer picked."""
    chosen = f"buyer-picked-{proxy.name}-0123456789"
    with proxy.client() as client:
        answer = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/amazon-pay/error",
                       headers={"x-request-id": chosen})
        other = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/healthz")
    assert answer.status_code == 200
    request_id = answer.headers.get("x-request-id")
    assert request_id is not None and request_id != chosen
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    shape = r"[0-9a-f]{32}" if proxy.name == "nginx" else uuid
    assert re.fullmatch(shape, request_id), request_id  # the proxy's id, which the service kept
    assert re.fullmatch(shape, other.headers["x-request-id"]) and other.headers["x-request-id"] != request_id
    deadline = time.monotonic() + 5
    while request_id not in service.output() and time.monotonic() < deadline:  # the logging thread writes soon
        time.sleep(0.05)
    assert request_id in service.output()
    assert chosen not in service.output()


def test_proxy_logs_no_query_string_and_masks_the_api_ids(proxy: Proxy) -> None:
    """README "Deploying": logs carry masked refs and session ids only, and the access log drops query strings.
    The return URLs carry both in the query; the API paths carry them as path segments."""
    ref, session = "3f0c2a9e-5b7d-4c1e-9a8f-0d6b2e4c7a19", "7e1d5c3b-9a2f-4e8d-b6c0-1f3a5e7d9b24"
    query = f"ref={ref}&amazonCheckoutSessionId={session}"
    with proxy.client() as client:
        page = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/amazon-pay/error?{query}")
        api = fetch(client, "GET", f"https://127.0.0.1:{proxy.https_port}/v1/checkouts/{ref}")
        finalize = fetch(client, "POST", f"https://127.0.0.1:{proxy.https_port}/v1/checkout-sessions/{session}"
                         "/finalize", content=b"{}", headers={"content-type": "application/json"})
    redirect = httpx.get(f"http://127.0.0.1:{proxy.http_port}/amazon-pay/error?{query}", headers={"host": HOST},
                         follow_redirects=False)
    assert page.status_code == 200 and api.status_code == 401 and finalize.status_code in (400, 401)
    assert redirect.status_code == 301
    def logged(log: Path) -> str:
        return log.read_text(errors="replace") if log.exists() else ""

    deadline = time.monotonic() + 5  # nginx writes a request's line once it has answered it
    while not all(path in "".join(logged(log) for log in proxy.logs) for path in ("/amazon-pay/error", "/v1/")) \
            and proxy.access_log is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    for log in proxy.logs:
        text = logged(log)
        assert ref not in text and session not in text, (log, text)
        assert "ref=" not in text and "amazonCheckoutSessionId" not in text, (log, text)
    if proxy.access_log is not None:
        text = logged(proxy.access_log)
        assert '"GET /amazon-pay/error HTTP/1.1" 200' in text, text
        assert '"GET /amazon-pay/error HTTP/1.1" 301' in text, text
        assert f'"GET /v1/checkouts/{ref[:4]}...{ref[-4:]} HTTP/1.1" 401' in text, text
        assert f'"POST /v1/checkout-sessions/{session[:4]}...{session[-4:]}/finalize HTTP/1.1" ' \
            f'{finalize.status_code}' in text, text
        assert page.headers["x-request-id"] in text  # the id the service's lines about this request carry


def test_plain_http_refuses_an_unknown_host_instead_of_redirecting_it(proxy: Proxy) -> None:
    """The HTTPS redirect goes to a host of the site, never to whatever Host a client sent."""
    for path in ("/amazon-pay/result?ref=x", "/.well-known/assetlinks.json"):
        answer = httpx.get(f"http://127.0.0.1:{proxy.http_port}{path}", headers={"host": "evil.example"},
                           follow_redirects=False)
        assert answer.status_code == 404, (path, answer.status_code, answer.headers)
        assert "location" not in answer.headers and "evil.example" not in answer.text
        assert not re.search(r"/\d", answer.headers.get("server", "") + answer.text)  # no version disclosed


# What the service itself answers while stopping (router/app.py `stopping`), and a 502 of its own.
SERVICE_503_JSON = error_response(503, "unavailable", "the service is restarting; retry shortly", {"retry-after": "2"})
SERVICE_503_PAGE = b"<!DOCTYPE html><title>the service's own unavailable page</title>"
SERVICE_502 = b"the service's own 502"


class _Answers503(BaseHTTPRequestHandler):
    """Stands in for the service when it answers 5xx itself: the proxy must pass those on unchanged."""

    def do_GET(self) -> None:
        if self.path.startswith("/v1/"):
            self._answer(503, bytes(SERVICE_503_JSON.body), dict(SERVICE_503_JSON.headers))
        elif self.path.startswith("/bad-gateway"):
            self._answer(502, SERVICE_502, {"content-type": "text/plain"})
        else:
            self._answer(503, SERVICE_503_PAGE, {"content-type": "text/html; charset=utf-8", "retry-after": "10",
                                                 "cache-control": "no-store"})

    do_POST = do_GET

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows only failures
        pass


@pytest.fixture(scope="module")
def answers_503() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers503)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _bound_not_listening(sock: socket.socket) -> int:
    """A port where connections are refused, as while the service is down, and that stays ours (so the proxy's
    own ports, picked next, cannot be it)."""
    sock.bind(("127.0.0.1", 0))
    return int(sock.getsockname()[1])


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_service_down_buyers_get_the_confirming_page_and_the_api_its_json_503(
        name: str, certs: Certificates) -> None:
    """Nothing listens on the upstream port (the service stopped or restarting): a returning buyer gets the
    shipped page (503, Retry-After, no-store, reloads itself, "no need to pay again" in English and Japanese),
    whatever the method, and /v1/ the JSON error the service answers for its own 503 (code `unavailable`), so
    the app snippets treat both alike."""
    page = UNAVAILABLE_PAGE.read_bytes()
    assert b'<meta http-equiv="refresh" content="5">' in page
    assert b"You do not need to pay again." in page and "もう一度お支払いいただく必要はありません。".encode() in page
    with socket.socket() as closed, _run_proxy(name, _bound_not_listening(closed), certs) as proxy, \
            proxy.client() as client:
        base = f"https://127.0.0.1:{proxy.https_port}"
        buyer = [fetch(client, "GET", f"{base}/amazon-pay/result?ref=r&amazonCheckoutSessionId=s"),
                 fetch(client, "POST", f"{base}/amazon-pay/result"), fetch(client, "GET", f"{base}/")]
        head = fetch(client, "HEAD", f"{base}/amazon-pay/result")
        api = [fetch(client, "POST", f"{base}/v1/checkout-sessions/s/finalize", content=b'{"ref": "r"}',
                     headers={"content-type": "application/json"}),
               fetch(client, "GET", f"{base}/v1/checkout-sessions/s?ref=r")]
    for answer in [*buyer, head]:
        assert answer.status_code == 503, (answer.request.url, answer.status_code, answer.text[:300])
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["retry-after"] == "5" and answer.headers["cache-control"] == "no-store"
        assert answer.headers["strict-transport-security"] == "max-age=63072000"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert all(answer.content == page for answer in buyer) and head.content == b""
    app_codes = set(re.findall(r'error_response\(503, "(\w+)"', (DEPLOY.parent / "router" / "app.py").read_text()))
    for answer in api:
        assert answer.status_code == 503 and answer.headers["content-type"] == "application/json", answer.text
        assert answer.headers["retry-after"] == "5" and answer.headers["cache-control"] == "no-store"
        assert answer.headers["strict-transport-security"] == "max-age=63072000"
        assert answer.headers["x-content-type-options"] == "nosniff"  # as the service's own JSON answers
        body = json.loads(answer.content)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert app_codes == {body["error"]["code"]} == {"unavailable"}
        assert answer.content == bytes(error_response(503, "unavailable", body["error"]["message"]).body)


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_the_services_own_5xx_pass_through_unchanged(name: str, certs: Certificates, answers_503: int) -> None:
    """Only the proxy's own failures to reach the service are replaced: a 503 (or 502) the service sends is
    what the buyer and the app get, body and Retry-After as sent."""
    with _run_proxy(name, answers_503, certs) as proxy, proxy.client() as client:
        base = f"https://127.0.0.1:{proxy.https_port}"
        api = fetch(client, "POST", f"{base}/v1/checkout-sessions/s/finalize", content=b"{}",
                    headers={"content-type": "application/json"})
        page = fetch(client, "GET", f"{base}/amazon-pay/result?ref=r&amazonCheckoutSessionId=s")
        bad_gateway = fetch(client, "GET", f"{base}/bad-gateway")
    assert api.status_code == 503 and api.content == bytes(SERVICE_503_JSON.body)
    assert api.headers["retry-after"] == "2" and api.headers["content-type"] == "application/json"
    assert page.status_code == 503 and page.content == SERVICE_503_PAGE and page.headers["retry-after"] == "10"
    assert bad_gateway.status_code == 502 and bad_gateway.content == SERVICE_502
