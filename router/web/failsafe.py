"""The outermost layer: a request id (a valid incoming one kept) and `nosniff` on every response; one
log line for an unexpected failure.

Starlette's own last-resort middleware re-raises every exception after answering, so uvicorn logs a
full traceback per failed request: a 70-byte request could write kilobytes of log. Here the
failure is answered by the service's 500 handler and logged as ONE line (request id and exception
type); the traceback goes to DEBUG only. Pure ASGI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router import logs
from router.checkout.model import SESSION_ID_PARAMS
from router.redact import mask

log = logging.getLogger("router.web.failsafe")

Handler = Callable[[Request, Exception], Awaitable[Response]]


def new_request_id(incoming: bytes | None = None) -> str:
    return logs.request_id_from(incoming)


def log_context(scope: Scope, request_id: str) -> dict[str, str]:
    """What every log line of this request carries: its id and the masked ref and session id, if any."""
    found = {"request_id": request_id}
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"))[:20]:
        if name == "ref":
            found["ref"] = mask(value)
        elif name in SESSION_ID_PARAMS:
            found["session_id"] = mask(value)
    return found


class Failsafe:
    def __init__(self, app: ASGIApp, handler: Handler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = new_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        token = logs.context.set(log_context(scope, request_id))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            log.error("request %s failed: %s", request_id, type(exc).__name__)
            log.debug("request %s traceback", request_id, exc_info=exc)
            if not started:
                await self._answer(scope, receive, send_with_headers, exc)
        finally:
            logs.context.reset(token)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """The 500 handler's answer; if even that fails, a bare 500, still without a traceback."""
        try:
            response = await self.handler(Request(scope), exc)
        except Exception as again:
            log.debug("the 500 handler failed too", exc_info=again)
            response = PlainTextResponse("Something went wrong on our side.", status_code=500,
                                         headers={"cache-control": "no-store"})
        await response(scope, receive, send)
