"""check_host against a real uvicorn on a real socket (scheme http), plus httpx's ASGI transport
for what a loopback socket cannot show (https host names, the trailing-dot host)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import free_port, serve_app
from well_known import PathClaim, build_aasa, build_assetlinks, check_host, dumps
from well_known.remote import AASA_PATH, ASSETLINKS_PATH

APP = "ABCDE12345.com.example.shop"
PACKAGE = "com.example.shop"
FINGERPRINT = ":".join(["5A"] * 32)
CLAIMS = [PathClaim("/amazon-pay/result", ("amazonCheckoutSessionId",)), PathClaim("/amazon-pay/cancel")]
JSON = [(b"content-type", b"application/json")]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]


def good_routes() -> dict[str, Response]:
    return {
        AASA_PATH: (200, JSON, dumps(build_aasa([APP], CLAIMS))),
        ASSETLINKS_PATH: (200, JSON, dumps(build_assetlinks(PACKAGE, [FINGERPRINT], CLAIMS))),
    }


class Site:
    """A tiny ASGI app whose answers each test sets; `dotted` answers for `host.` when set."""

    def __init__(self) -> None:
        self.routes = good_routes()
        self.dotted: dict[str, Response] | None = None
        self.delay = 0.0
        self.requests: list[tuple[str, str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode()
        self.requests.append((host, scope["path"], headers.get(b"user-agent", b"").decode()))
        routes = self.dotted if self.dotted is not None and host.split(":")[0].endswith(".") else self.routes
        status, extra, body = routes.get(
            scope["path"], (404, [(b"content-type", b"text/html")], b"<h1>404</h1>")
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": extra + length})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Site, str]]:
    site = Site()
    with serve_app(site) as base_url:
        yield site, base_url.removeprefix("http://")


@pytest.fixture
def site(server: tuple[Site, str]) -> Site:
    server[0].__init__()  # fresh answers for every test
    return server[0]


@pytest.fixture
def host(server: tuple[Site, str]) -> str:
    return server[1]


def aasa_url(host: str) -> str:
    return f"http://{host}{AASA_PATH}"


def links_url(host: str) -> str:
    return f"http://{host}{ASSETLINKS_PATH}"


async def check(host: str, **kwargs: Any) -> list[tuple[str, str, str]]:
    problems = await check_host(host, scheme="http", **kwargs)
    return [(p.severity, p.where, p.message) for p in problems]


async def test_good_host_passes(site: Site, host: str) -> None:
    assert await check(host, expected_app_ids=[APP], expected_package=PACKAGE) == []
    assert sorted(path for _, path, _ in site.requests) == sorted([AASA_PATH, ASSETLINKS_PATH])


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirect_is_an_error_and_is_not_followed(site: Site, host: str, status: int) -> None:
    target = b"https://www.example.com/.well-known/apple-app-site-association"
    site.routes[AASA_PATH] = (status, [(b"location", target)], b"")
    problems = await check(host, expected_app_ids=[APP])
    assert len(problems) == 1
    severity, where, message = problems[0]
    assert (severity, where) == ("error", aasa_url(host))
    assert f"HTTP {status} redirect to https://www.example.com/" in message
    assert len(site.requests) == 2  # the redirect target was never requested


@pytest.mark.parametrize(
    ("content_type", "severity", "text"),
    [
        (b"text/plain", "error", "Content-Type is 'text/plain'; must be application/json"),
        (b"application/octet-stream", "error", "must be application/json"),
        (b"text/html; charset=utf-8", "error", "must be application/json"),
        (b"application/json; charset=iso-8859-1", "warning", "must be UTF-8"),
    ],
)
async def test_content_type(site: Site, host: str, content_type: bytes, severity: str, text: str) -> None:
    status, _, body = site.routes[ASSETLINKS_PATH]
    site.routes[ASSETLINKS_PATH] = (status, [(b"content-type", content_type)], body)
    problems = await check(host)
    assert len(problems) == 1, problems
    assert problems[0][:2] == (severity, links_url(host))
    assert text in problems[0][2]


async def test_case_and_charset_variants_of_json_are_fine(site: Site, host: str) -> None:
    status, _, body = site.routes[AASA_PATH]
    site.routes[AASA_PATH] = (status, [(b"content-type", b"Application/JSON; charset=UTF-8")], body)
    assert await check(host) == []


async def test_missing_content_type(site: Site, host: str) -> None:
    status, _, body = site.routes[AASA_PATH]
    site.routes[AASA_PATH] = (status, [], body)
    assert await check(host) == [("error", aasa_url(host), "no Content-Type; must be application/json")]


async def test_not_found(site: Site, host: str) -> None:
    del site.routes[ASSETLINKS_PATH]
    assert await check(host) == [("error", links_url(host), "HTTP 404: must answer 200 directly")]


async def test_server_error(site: Site, host: str) -> None:
    site.routes[AASA_PATH] = (503, JSON, b"{}")
    assert await check(host) == [("error", aasa_url(host), "HTTP 503: must answer 200 directly")]


async def test_bad_json(site: Site, host: str) -> None:
    site.routes[AASA_PATH] = (200, JSON, b'{"applinks": {"details": [],}}')
    problems = await check(host, expected_app_ids=[APP])
    assert len(problems) == 1, problems
    severity, where, message = problems[0]
    assert (severity, where) == ("error", f"{aasa_url(host)} $")
    assert message.startswith("invalid JSON at line 1 column")


async def test_bom(site: Site, host: str) -> None:
    status, headers, body = site.routes[ASSETLINKS_PATH]
    site.routes[ASSETLINKS_PATH] = (status, headers, b"\xef\xbb\xbf" + body)
    problems = await check(host)
    assert [(s, w) for s, w, _ in problems] == [("error", f"{links_url(host)} $")]
    assert "byte order mark" in problems[0][2]


async def test_invalid_document_reports_json_paths(site: Site, host: str) -> None:
    site.routes[AASA_PATH] = (
        200,
        JSON,
        b'{"applinks": {"details": [{"appIDs": ["bad"], "components": []}]}}',
    )
    problems = await check(host)
    assert (
        "error",
        f"{aasa_url(host)} applinks.details[0].appIDs[0]",
        "'bad' is not TEAMID.bundle.id",
    ) in problems


async def test_expected_ids_must_be_listed(site: Site, host: str) -> None:
    other_app, other_package = "ZZZZZ12345.com.example.other", "com.example.other"
    assert await check(host, expected_app_ids=[APP, other_app], expected_package=other_package) == [
        ("error", aasa_url(host), f"app ID {other_app} is not listed in applinks.details"),
        (
            "error",
            links_url(host),
            f"no delegate_permission/common.handle_all_urls statement for package {other_package}",
        ),
    ]


async def test_expected_fingerprints_must_be_in_the_package_statement(site: Site, host: str) -> None:
    other = ":".join(["6B"] * 32)
    lower_plain = FINGERPRINT.replace(":", "").lower()  # as keytool or a config may give it: normalised
    assert await check(host, expected_package=PACKAGE, expected_fingerprints=[lower_plain]) == []
    assert await check(host, expected_package=PACKAGE, expected_fingerprints=[FINGERPRINT, other]) == [
        ("error", links_url(host), f"package {PACKAGE} is not listed with certificate fingerprint(s) {other}: "
         "an app signed with it never verifies"),
    ]


async def test_the_expected_documents_are_compared_with_the_deployed_ones(site: Site, host: str) -> None:
    same_aasa, same_links = site.routes[AASA_PATH][2], site.routes[ASSETLINKS_PATH][2]
    assert await check(host, expected_aasa=same_aasa, expected_assetlinks=same_links) == []
    newer = dumps(build_aasa([APP], [*CLAIMS, PathClaim("/amazon-pay/done")]))
    assert await check(host, expected_aasa=newer, expected_assetlinks=same_links) == [
        ("warning", aasa_url(host), "not the file this config serves (at applinks.details[0].components[1]['/']: "
         'deployed "/amazon-pay/result", this config "/amazon-pay/done")'),  # the builder sorts the paths
    ]


async def test_an_unusable_deployed_document_is_not_compared_again(site: Site, host: str) -> None:
    site.routes[AASA_PATH] = (200, JSON, b"{not json")
    problems = await check(host, expected_aasa=good_routes()[AASA_PATH][2])
    assert [(s, w) for s, w, _ in problems] == [("error", f"{aasa_url(host)} $")]


async def test_timeout(site: Site, host: str) -> None:
    site.delay = 1.0
    assert await check(host, timeout=0.2) == [
        ("error", aasa_url(host), "timed out"),
        ("error", links_url(host), "timed out"),
    ]


async def test_unreachable_host() -> None:
    host = f"127.0.0.1:{free_port()}"
    problems = await check(host)
    assert [(s, w) for s, w, _ in problems] == [("error", aasa_url(host)), ("error", links_url(host))]
    assert all("request failed: ConnectError" in m for _, _, m in problems)


async def test_runaway_body_is_cut_off(site: Site, host: str) -> None:
    site.routes[AASA_PATH] = (200, JSON, b" " * (1024 * 1024 + 10))
    problems = await check(host)
    assert problems == [("error", aasa_url(host), "body exceeds 1048576 bytes")]


@pytest.mark.parametrize("bad", ["", "example.com/x", "user@example.com", "a b", "example.com?x"])
async def test_bad_host_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="bare host name"):
        await check_host(bad)


async def test_bad_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        await check_host("example.com", scheme="ftp")


# Through httpx's ASGI transport: https host names without DNS or certificates.
async def test_trailing_dot_host_must_serve_the_same_bytes() -> None:
    site = Site()
    transport = httpx.ASGITransport(app=site)
    assert await check_host("pay.example.com", transport=transport) == []
    assert {h for h, _, _ in site.requests} == {"pay.example.com", "pay.example.com."}

    site.dotted = {**good_routes(), ASSETLINKS_PATH: (301, [(b"location", b"https://pay.example.com/")], b"")}
    problems = await check_host("pay.example.com", transport=transport)
    assert len(problems) == 1
    assert problems[0].severity == "warning"
    assert problems[0].where == f"https://pay.example.com.{ASSETLINKS_PATH}"
    assert "trailing-dot host does not serve the same file (HTTP 301 redirect" in problems[0].message


async def test_https_host_with_a_port_warns() -> None:
    transport = httpx.ASGITransport(app=Site())
    problems = await check_host("pay.example.com:8443", transport=transport)
    assert [(p.severity, p.where) for p in problems] == [("warning", "pay.example.com:8443")]
    assert "port 443" in problems[0].message
