"""Refuse, before any part of the service reads it, a request whose Host could be read two ways.

Every part (routing, association files, return URLs, pages) reads the Host header; with two of
them, or one with a bad port, parts could disagree. Such requests get a 400 here, and so does an
absolute-form target (`GET http://other.example/x`) naming another host than the Host header: RFC
9112 3.2.2 has the server read the target's, a proxy in front may read the Host header. One that
agrees is served as its origin form (`/x`), with the target's authority as Host. Ones with more
headers, or more header bytes, than [server] allows get a 431 (the protocol `serve` uses bounds
only heads still unfinished; a complete one read at once is measured here). Pure ASGI.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from router.web.routing import normalize_host

# A DNS name or an IPv4 literal (a trailing dot allowed), or a bracketed IPv6 literal; then an optional port.
HOST_HEADER = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.?|\[(?P<ipv6>[0-9A-Fa-f:.]{2,45})\])"
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII)

Refuse = Callable[[Request, int, str], Response]  # (request, status, the reason's key in the pages' catalogs)


def host_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why the Host header(s) cannot be used (a catalog key), or None (no Host at all is HTTP/1.0's right)."""
    hosts = [value for name, value in headers if name == b"host"]
    if len(hosts) > 1:
        return "reason.two_hosts"
    if hosts and not is_usable_host(hosts[0].decode("latin-1")):
        return "reason.bad_host"
    return None


def is_usable_host(value: str) -> bool:
    """A host name or IP literal with an optional port, that links can be built on."""
    match = HOST_HEADER.fullmatch(value)
    if match is None or (match["port"] is not None and int(match["port"]) > 65535):
        return False
    return match["ipv6"] is None or _is_ipv6(match["ipv6"])


def _is_ipv6(literal: str) -> bool:
    """What URL parsers accept between brackets: `[1.2.3.4]` or `[::::]` would break every link built on it."""
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        return False
    return True


def absolute_form(raw_path: bytes) -> tuple[bytes, bytes] | None:
    """(authority, path) of an absolute-form target's part before any "?" (b"http://a.example/x" → (b"a.example",
    b"/x")), or None for any other form. uvicorn's h11 puts such a target in raw_path as sent (and
    router/web/server.py makes httptools' scope do the same)."""
    scheme, sep, rest = raw_path.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    authority, slash, path = rest.partition(b"/")
    return authority, slash + path if slash else b"/"


def origin_form(scope: Scope) -> tuple[Scope, str | None]:
    """The scope of an absolute-form target as its origin form, the target's authority as its Host, and why it
    is refused (a catalog key) or None; any other scope as it is."""
    found = absolute_form(scope.get("raw_path") or b"") if not scope["path"].startswith("/") else None
    if found is None:
        return scope, None
    authority, path = found
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    origin = {**scope, "path": unquote(path.decode("latin-1")), "raw_path": path}
    text = authority.decode("latin-1")
    if not is_usable_host(text):
        return origin, "reason.bad_host"
    if hosts and normalize_host(hosts[0].decode("latin-1")) != normalize_host(text):
        return origin, "reason.host_mismatch"
    origin["headers"] = [(b"host", authority), *((n, v) for n, v in scope["headers"] if n != b"host")]
    return origin, None


def target_size(scope: Scope) -> int:
    """About the bytes of the request target (path and query) as sent."""
    return len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b"")) + 1


def head_size(scope: Scope) -> int:
    """About the bytes of the request line and headers as sent."""
    return target_size(scope) + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def too_large_reason(scope: Scope) -> str:
    """Why a head is too large, as the buyer can act on it: the address when it is most of the head."""
    target = target_size(scope)
    return "reason.too_long" if 2 * target > head_size(scope) else "reason.headers_too_large"


class RequestGuard:
    def __init__(self, app: ASGIApp, refuse: Refuse, max_headers: int, max_header_bytes: int) -> None:
        self.app = app
        self.refuse = refuse
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            if len(headers) > self.max_headers:
                return await self.refuse(Request(scope), 431, "reason.too_many_headers")(scope, receive, send)
            if head_size(scope) > self.max_header_bytes:
                response = self.refuse(Request(scope), 431, too_large_reason(scope))
                return await response(scope, receive, send)
            problem = host_problem(headers)
            if problem is None:
                scope, problem = origin_form(scope)
            if problem is not None:
                return await self.refuse(Request(scope), 400, problem)(scope, receive, send)
        await self.app(scope, receive, send)
