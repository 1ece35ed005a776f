"""Serving apple-app-site-association and assetlinks.json: precomputed bytes behind a raw ASGI fast path.

The files are built once per set of matching host patterns from the same route table the router
uses, so the paths the apps claim and the paths the router handles cannot drift apart. Requests for
them never reach Starlette's routing: Apple's and Google's verifiers (and a CDN in front) get the
same bytes, a strong ETag and no cookies, redirects or HTML, as fast as a bare ASGI app.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from router.config import Settings, claims_for
from router.config.settings import aasa_for
from router.web.routing import RouteTable, normalize_host, raw_path
from well_known import build_assetlinks, dumps

AASA_PATHS = frozenset({"/.well-known/apple-app-site-association", "/apple-app-site-association"})
ASSETLINKS_PATH = "/.well-known/assetlinks.json"
CACHE_CONTROL = b"public, max-age=300"  # minutes, so a fix reaches Apple's CDN and devices soon


@dataclass(frozen=True)
class Prepared:
    """A finished response: status 200 headers, the 304 headers and the body."""

    body: bytes
    etag: bytes
    headers: list[tuple[bytes, bytes]]
    not_modified_headers: list[tuple[bytes, bytes]]

    @classmethod
    def json(cls, body: bytes) -> Prepared:
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        common = [(b"etag", etag), (b"cache-control", CACHE_CONTROL), (b"x-content-type-options", b"nosniff")]
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        return cls(body, etag, headers + common, common)


def _error(status: int, code: str, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    return status, headers, body


class AssociationFiles:
    """The association files for any Host, computed once per distinct set of host patterns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table: RouteTable = settings.route_table
        self._by_patterns: dict[tuple[str, tuple[str, ...]], Prepared | None] = {}
        self._by_raw_host: dict[tuple[str, bytes], Prepared | None] = {}
        for pattern in {r.host for r in self.table.routes}:  # warm the cache at start-up
            if not pattern.startswith("*"):
                self.get("aasa", pattern)
                self.get("assetlinks", pattern)

    def get(self, kind: str, host: str) -> Prepared | None:
        """The prepared file of `kind` ("aasa" or "assetlinks") for a normalized `host`, or None."""
        patterns = self.table.host_patterns(host)
        key = (kind, patterns)
        if key not in self._by_patterns:
            self._by_patterns[key] = self._build(kind, host) if patterns else None
        return self._by_patterns[key]

    def get_raw(self, kind: str, raw_host: bytes) -> Prepared | None:
        """`get` keyed by the Host header's bytes as sent, so the hot path skips normalizing."""
        key = (kind, raw_host)
        if key in self._by_raw_host:
            return self._by_raw_host[key]
        prepared = self.get(kind, normalize_host(raw_host.decode("latin-1")))
        if len(self._by_raw_host) < 4096:  # any Host header can arrive: keep the memo bounded
            self._by_raw_host[key] = prepared
        return prepared

    def _build(self, kind: str, host: str) -> Prepared | None:
        routes = self.table.paths_for_host(host)
        ios, android = self.settings.ios, self.settings.android
        if kind == "aasa" and ios is not None:
            doc: Any = aasa_for(ios, routes)
        elif kind == "assetlinks" and android is not None:
            doc = build_assetlinks(android.package, android.sha256_cert_fingerprints, claims_for(routes),
                                   dynamic_rules=android.dynamic_rules)
        else:
            return None
        return Prepared.json(dumps(doc))


PATH_KIND = {path: "aasa" for path in AASA_PATHS} | {ASSETLINKS_PATH: "assetlinks"}


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 If-None-Match: weak comparison against any listed tag, or "*"."""
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip().removeprefix(b"W/")
        if candidate == b"*" or candidate == etag:
            return True
    return False


def respond(files: AssociationFiles, scope: Scope, kind: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for an association path; pure apart from the files' memo."""
    host = if_none_match = None
    for key, value in scope["headers"]:  # one pass: the two headers this answer depends on
        if key == b"host":
            host = bytes(value)
        elif key == b"if-none-match":
            if_none_match = bytes(value)
    return answer(files, scope["method"], kind, host, if_none_match)


def answer(files: AssociationFiles, method: str, kind: str, host: bytes | None,
           if_none_match: bytes | None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """`respond` for a request whose Host and If-None-Match headers were already read."""
    if method not in ("GET", "HEAD"):
        status, headers, body = _error(405, "method_not_allowed", "use GET or HEAD")
        return status, [*headers, (b"allow", b"GET, HEAD")], body
    prepared = files.get_raw(kind, host) if host else None
    if prepared is None:
        return _error(404, "not_found", "no association file is configured for this host")
    if if_none_match is not None and etag_matches(if_none_match, prepared.etag):
        return 304, prepared.not_modified_headers, b""
    return 200, prepared.headers, prepared.body


async def serve(files: AssociationFiles, scope: Scope, send: Send) -> None:
    """Answer an association path (its raw_path in PATH_KIND) directly, without any routing."""
    status, headers, body = respond(files, scope, PATH_KIND[raw_path(scope)])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


class AssociationMiddleware:
    """Answers the association paths first, in front of routing and the other middleware.

    Apple's and Google's fetchers (and any CDN) get precomputed bytes at nearly raw-ASGI speed;
    every other request passes through untouched.
    """

    def __init__(self, app: ASGIApp, files: AssociationFiles) -> None:
        self.app = app
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and raw_path(scope) in PATH_KIND:  # "/.well-known%2F…" is no such path
            await serve(self.files, scope, send)
            return
        await self.app(scope, receive, send)
