"""The last route under /v1: unknown paths and methods get a JSON answer, never the HTML pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from router.web.api import error_response

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # what the fallback answers for


def json_fallback(prefix: str, routes: list[Route]) -> Route:
    """A route for every method under `prefix`: 405 with Allow for a known path, 404 otherwise."""

    async def endpoint(request: Request) -> Response:
        allowed = sorted({m for r in routes if r.matches(request.scope)[0] is Match.PARTIAL for m in r.methods or ()})
        if allowed:
            return error_response(405, "method_not_allowed", f"use {', '.join(allowed)} on this path",
                                  {"allow": ", ".join(allowed)})
        return error_response(404, "not_found", "no such endpoint")

    return Route(prefix + "/{rest:path}", endpoint, methods=METHODS)
