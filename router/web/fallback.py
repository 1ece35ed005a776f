"""The catch-all routes: unknown paths and methods under /v1 get a JSON answer, never the HTML pages;
any other method on the buyers' pages gets a page (405), never Starlette's plain text.

Starlette's `path` convertor is `.*`, which stops at a newline, so a path with an encoded `%0A` would
miss every route and get Starlette's plain-text 404. The `anypath` convertor matches those too.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from router.web.api import error_response


class AnyPathConvertor(PathConvertor):
    regex = "(?s:.*)"  # a newline too


register_url_convertor("anypath", AnyPathConvertor())


class JsonFallback:
    """Every method (TRACE and unknown ones too): 405 with Allow for a known path, 404 otherwise. ASGI, so
    that Starlette routes every method here."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = sorted({m for r in self.routes if r.matches(scope)[0] is Match.PARTIAL for m in r.methods or ()})
        if allowed:
            response = error_response(405, "method_not_allowed", f"use {', '.join(allowed)} on this path",
                                      {"allow": ", ".join(allowed)})
        else:
            response = error_response(404, "not_found", "no such endpoint")
        await response(scope, receive, send)


def json_fallback(prefix: str, routes: list[Route]) -> Route:
    return Route(prefix + "/{rest:anypath}", JsonFallback(routes))


class PageMethods:
    """Past the pages' GET/HEAD route: every other method (a form posted to a return URL, a scanner's
    PUT) gets `page`'s answer (the 405 page) with Allow. ASGI, so that Starlette routes every method here."""

    def __init__(self, page: Callable[[Request], Response]) -> None:
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.page(Request(scope, receive))
        response.headers["allow"] = "GET, HEAD"
        await response(scope, receive, send)
