"""Check a deployed host the way Apple's CDN and Android's verifier fetch it: no redirects,
HTTP 200, `Content-Type: application/json`, a valid document listing the expected apps, signed
with the expected certificates and, when given, the same document as the one expected."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx

from .aasa import validate_aasa
from .assetlinks import HANDLE_ALL_URLS, normalize_fingerprint, validate_assetlinks
from .compare import first_difference
from .document import load
from .matching import aasa_app_ids
from .problems import Problem, error, warning

AASA_PATH = "/.well-known/apple-app-site-association"
ASSETLINKS_PATH = "/.well-known/assetlinks.json"
MAX_FETCH_BYTES = 1024 * 1024  # far above both limits; stops a runaway body
USER_AGENT = "return-router-well-known-check/1"


@dataclass(frozen=True)
class _Fetched:
    url: str
    body: bytes | None  # None when the response is unusable (problems say why)
    problems: list[Problem]

    @cached_property
    def document(self) -> Any:
        """The parsed body, once for all the checks that read it; None when unusable (reported already)."""
        if self.body is None:
            return None
        loaded = load(self.body)
        return loaded.value if loaded.usable else None


async def check_host(
    host: str,
    *,
    scheme: str = "https",
    timeout: float = 10,
    deadline: float = 30,
    transport: httpx.AsyncBaseTransport | None = None,
    expected_app_ids: Sequence[str] = (),
    expected_package: str | None = None,
    expected_fingerprints: Sequence[str] = (),
    expected_aasa: bytes | None = None,
    expected_assetlinks: bytes | None = None,
    ca_file: str | None = None,
    connect_to: str | None = None,
) -> list[Problem]:
    """Fetch both association files from `host` (optionally `host:port`) and report problems.

    Also fetches `host.` (trailing dot) for DNS names and warns when it serves different bytes.
    Problems about HTTP carry the URL as `where`; document problems prefix it to the JSON path.
    `timeout` bounds each read; `deadline` bounds each whole fetch (a server dripping bytes
    resets a read timeout forever).
    `ca_file` (PEM) replaces the system's trusted CAs; `connect_to` ("address:port") is dialled instead
    of what `host` resolves to, with `host` still sent as Host and TLS server name (a server before DNS
    points at it, or a proxy on a test port).
    `expected_fingerprints` must all be in the package's statement (an error: App Links signed with a
    missing certificate never verify). `expected_aasa` and `expected_assetlinks` are the documents the
    host should serve; a deployed document that differs is a warning naming the first difference (an
    old deploy, a stale cache, a config not reloaded).
    """
    _check_host_syntax(host, scheme)
    if connect_to is not None:
        _check_host_syntax(connect_to, scheme)
    async with httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
    ) as client:
        aasa, links = await asyncio.gather(
            _fetch(client, f"{scheme}://{host}{AASA_PATH}", connect_to, deadline),
            _fetch(client, f"{scheme}://{host}{ASSETLINKS_PATH}", connect_to, deadline),
        )
        problems = _port_warning(host, scheme)
        problems += aasa.problems + _document_problems(aasa, validate_aasa)
        problems += _expect_app_ids(aasa, expected_app_ids) + _expect_document(aasa, expected_aasa)
        problems += links.problems + _document_problems(links, validate_assetlinks)
        problems += _expect_package(links, expected_package, expected_fingerprints)
        problems += _expect_document(links, expected_assetlinks)
        dotted = _trailing_dot(host)
        if dotted is not None:
            problems += await _compare_trailing_dot(client, scheme, dotted, (aasa, links), connect_to, deadline)
    return problems


def _check_host_syntax(host: str, scheme: str) -> None:
    if scheme not in ("https", "http"):
        raise ValueError(f"scheme must be 'https' or 'http', not {scheme!r}")
    if not isinstance(host, str) or not host or any(c in host for c in "/?#@ \t\r\n\\"):
        raise ValueError(f"host must be a bare host name (optionally :port), got {host!r}")


def _port_warning(host: str, scheme: str) -> list[Problem]:
    if scheme == "https" and _split_port(host)[1] is not None:
        return [warning(host, "Apple and Google fetch from port 443 only; host names cannot carry a port")]
    return []


def _split_port(host: str) -> tuple[str, str | None]:
    if host.startswith("["):  # [v6]:port
        name, _, rest = host[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, None


def _trailing_dot(host: str) -> str | None:
    """`example.com.:port` for a DNS name; None for IP literals or names already ending in '.'."""
    name, port = _split_port(host)
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if name.endswith(".") or "." not in name:
        return None
    return f"{name}.:{port}" if port else f"{name}."


async def _fetch(client: httpx.AsyncClient, url: str, connect_to: str | None, deadline: float) -> _Fetched:
    try:
        async with asyncio.timeout(deadline):
            return await _read(client, url, connect_to)
    except TimeoutError:
        return _Fetched(url, None, [error(url, f"no complete answer within {deadline:g} s")])


async def _read(client: httpx.AsyncClient, url: str, connect_to: str | None) -> _Fetched:
    try:
        async with _stream(client, url, connect_to) as response:
            problems = _status_problems(url, response)
            if problems:
                return _Fetched(url, None, problems)
            problems += _content_type_problems(url, response.headers.get("content-type"))
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_FETCH_BYTES:
                    return _Fetched(url, None, [error(url, f"body exceeds {MAX_FETCH_BYTES} bytes")])
            return _Fetched(url, bytes(body), problems)
    except httpx.TimeoutException:
        return _Fetched(url, None, [error(url, "timed out")])
    except httpx.HTTPError as exc:
        return _Fetched(url, None, [error(url, f"request failed: {type(exc).__name__}: {exc}")])


def _stream(
    client: httpx.AsyncClient, url: str, connect_to: str | None
) -> AbstractAsyncContextManager[httpx.Response]:
    """GET `url`, or GET it from `connect_to` with the URL's host as Host header and TLS server name."""
    if connect_to is None:
        return client.stream("GET", url)
    parsed = httpx.URL(url)
    host = parsed.netloc.decode("ascii")
    dialled = parsed.copy_with(netloc=connect_to.encode("ascii"))
    server_name = _split_port(host)[0].rstrip(".")
    return client.stream("GET", dialled, headers={"Host": host}, extensions={"sni_hostname": server_name})


def _status_problems(url: str, response: httpx.Response) -> list[Problem]:
    status = response.status_code
    if response.is_redirect or 300 <= status < 400:
        target = response.headers.get("location", "?")
        return [error(url, f"HTTP {status} redirect to {target}: Apple and Google never follow redirects")]
    if status != 200:
        return [error(url, f"HTTP {status}: must answer 200 directly")]
    return []


def _content_type_problems(url: str, header: str | None) -> list[Problem]:
    if header is None:
        return [error(url, "no Content-Type; must be application/json")]
    media, _, params = header.partition(";")
    if media.strip().lower() != "application/json":
        return [error(url, f"Content-Type is {media.strip()!r}; must be application/json")]
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    if params.strip() and charset not in ("utf-8", "utf8"):
        return [warning(url, f"Content-Type parameters {params.strip()!r}; the file must be UTF-8")]
    return []


def _document_problems(fetched: _Fetched, validate: Callable[[bytes], list[Problem]]) -> list[Problem]:
    if fetched.body is None:
        return []
    return [Problem(p.severity, f"{fetched.url} {p.where}", p.message) for p in validate(fetched.body)]


def _expect_app_ids(fetched: _Fetched, expected: Sequence[str]) -> list[Problem]:
    doc = fetched.document
    if not expected or doc is None:  # unusable documents are reported already
        return []
    listed = aasa_app_ids(doc) if isinstance(doc, dict) else set()
    return [
        error(fetched.url, f"app ID {app_id} is not listed in applinks.details")
        for app_id in expected
        if app_id not in listed
    ]


def _expect_package(fetched: _Fetched, package: str | None, fingerprints: Sequence[str] = ()) -> list[Problem]:
    doc = fetched.document
    if package is None or doc is None:
        return []
    statements = [s for s in (doc if isinstance(doc, list) else []) if _delegates_all_urls(s, package)]
    if not statements:
        return [error(fetched.url, f"no {HANDLE_ALL_URLS} statement for package {package}")]
    listed = {_normal(f) for s in statements for f in _fingerprints(s)}
    missing = [f for f in fingerprints if _normal(f) not in listed]
    if missing:
        return [error(fetched.url, f"package {package} is not listed with certificate fingerprint(s) "
                      f"{', '.join(missing)}: an app signed with it never verifies")]
    return []


def _delegates_all_urls(statement: Any, package: str) -> bool:
    if not isinstance(statement, dict) or not isinstance(statement.get("target"), dict):
        return False
    relation = statement.get("relation")
    return (statement["target"].get("package_name") == package and isinstance(relation, list)
            and HANDLE_ALL_URLS in relation)


def _fingerprints(statement: dict[str, Any]) -> list[Any]:
    listed = statement["target"].get("sha256_cert_fingerprints")
    return listed if isinstance(listed, list) else []


def _normal(fingerprint: Any) -> str | None:
    try:
        return normalize_fingerprint(fingerprint)
    except ValueError:  # the validator reports malformed ones already
        return None


def _expect_document(fetched: _Fetched, expected: bytes | None) -> list[Problem]:
    doc = fetched.document
    if expected is None or doc is None:
        return []
    difference = first_difference(doc, load(expected).value)
    if difference is None:
        return []
    return [warning(fetched.url, f"not the file this config serves ({difference})")]


async def _compare_trailing_dot(
    client: httpx.AsyncClient, scheme: str, dotted: str, originals: tuple[_Fetched, _Fetched],
    connect_to: str | None, deadline: float,
) -> list[Problem]:
    paths = (AASA_PATH, ASSETLINKS_PATH)
    fetched = await asyncio.gather(*(_fetch(client, f"{scheme}://{dotted}{p}", connect_to, deadline) for p in paths))
    problems: list[Problem] = []
    for original, again in zip(originals, fetched, strict=True):
        if original.body is None:
            continue
        if again.body != original.body:
            why = again.problems[0].message if again.problems else "different bytes"
            problems.append(warning(again.url, f"trailing-dot host does not serve the same file ({why})"))
    return problems
