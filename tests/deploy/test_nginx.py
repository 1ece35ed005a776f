"""The shipped nginx site (deploy/nginx) in front of `return-router serve --proxy-headers`, over real TLS."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from .certs import Certificates
from .harness import HOST, Proxy, Service, cli, request, service_env
from .nginx import nginx_binary, running_nginx

ASSOCIATION_PATHS = ("/.well-known/apple-app-site-association", "/.well-known/assetlinks.json",
                     "/apple-app-site-association")
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


@pytest.fixture(scope="module")
def nginx(service: Service, certs: Certificates) -> Iterator[Proxy]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; .ci/run does)")
    with running_nginx(binary, service.port, certs) as proxy:
        yield proxy


@pytest.mark.parametrize("path", ASSOCIATION_PATHS)
def test_association_files_over_https_are_the_service_bytes(nginx: Proxy, service: Service, path: str) -> None:
    direct = httpx.get(f"http://127.0.0.1:{service.port}{path}", headers={"host": HOST})
    with nginx.client() as client:
        proxied = request(client, "GET", f"https://127.0.0.1:{nginx.https_port}{path}")
    assert direct.status_code == 200 and proxied.status_code == 200, proxied.text
    assert proxied.headers["content-type"] == "application/json"
    assert proxied.content == direct.content and proxied.content.startswith(b"{" if "apple" in path else b"[")
    assert proxied.headers["strict-transport-security"] == "max-age=63072000"


@pytest.mark.parametrize("path", ASSOCIATION_PATHS)
def test_plain_http_never_redirects_the_association_files(nginx: Proxy, service: Service, path: str) -> None:
    direct = httpx.get(f"http://127.0.0.1:{service.port}{path}", headers={"host": HOST})
    plain = httpx.get(f"http://127.0.0.1:{nginx.http_port}{path}", headers={"host": HOST}, follow_redirects=False)
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    assert plain.content == direct.content


def test_plain_http_redirects_everything_else_to_https(nginx: Proxy) -> None:
    answer = httpx.get(f"http://127.0.0.1:{nginx.http_port}/amazon-pay/error?x=1", headers={"host": HOST},
                       follow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["location"] == f"https://{HOST}/amazon-pay/error?x=1"


def test_return_page_through_the_proxy_links_with_https(nginx: Proxy) -> None:
    with nginx.client() as client:
        page = request(client, "GET", f"https://127.0.0.1:{nginx.https_port}/amazon-pay/error",
                       headers={"user-agent": IPHONE})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["strict-transport-security"] == "max-age=63072000"
    # The iOS smart banner carries the page's own absolute URL: built with https and the public host.
    assert f"app-argument=https://{HOST}/amazon-pay/error" in page.text
    assert f"http://{HOST}" not in page.text


def test_service_sees_the_client_address_and_scheme_from_the_proxy(nginx: Proxy, service: Service) -> None:
    # The client connects from 127.0.0.2 and lies in its own X-Forwarded-* headers; nginx connects from
    # 127.0.0.1. The service must see the address nginx saw and the scheme nginx served.
    with nginx.client(local_address="127.0.0.2") as client:
        answer = request(client, "GET", f"https://127.0.0.1:{nginx.https_port}/amazon-pay/error?probe=forwarded",
                         headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "http"})
    assert answer.status_code == 200
    scopes = [line for line in service.output().splitlines() if "Started scope=" in line and "probe=forwarded" in line]
    assert len(scopes) == 1, service.output()[-3000:]
    assert "'scheme': 'https'" in scopes[0] and "'client': ('127.0.0.2', 0)" in scopes[0]
    assert "203.0.113.9" not in scopes[0].split("'headers'")[0]  # the client's own header was not believed
    access = [line for line in service.output().splitlines() if '"GET /amazon-pay/error?… HTTP/1.1"' in line]
    assert any(re.search(r"127\.0\.0\.2:0 - ", line) for line in access), access  # the access log says so too


def test_client_limits_match_the_service(nginx: Proxy) -> None:
    url = f"https://127.0.0.1:{nginx.https_port}/v1/checkouts"
    with nginx.client() as client:
        allowed = request(client, "POST", url, content=b"x" * (15 * 1024), headers={"content-type": "application/json"})
        too_big = request(client, "POST", url, content=b"x" * (17 * 1024), headers={"content-type": "application/json"})
        long_header = request(client, "GET", f"https://127.0.0.1:{nginx.https_port}/healthz",
                              headers={"x-filler": "y" * (9 * 1024)})
    assert allowed.headers["content-type"] == "application/json"  # reached the service (which wants a token)
    assert allowed.status_code == 401, allowed.text
    assert too_big.status_code == 413  # refused at the edge, above the service's 16 KiB
    assert too_big.headers["server"] == "nginx" and "nginx/" not in too_big.text  # server_tokens off: no version
    assert long_header.status_code in (400, 431), long_header.text


def test_check_remote_passes_through_the_proxy_with_the_test_ca(nginx: Proxy, service: Service) -> None:
    base = [*cli(), "check", "--config", str(service.config), "--remote",
            "--connect-to", f"127.0.0.1:{nginx.https_port}"]
    passed = subprocess.run([*base, "--ca-file", str(nginx.certs.ca)], capture_output=True, text=True, timeout=60,
                            env=service_env())
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.splitlines()[-1] == "ok" and "remote" not in passed.stdout  # no remote problem at all
    untrusted = subprocess.run(base, capture_output=True, text=True, timeout=60, env=service_env())
    assert untrusted.returncode == 1  # the system CAs do not know the test CA: --ca-file is what made it pass
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout
