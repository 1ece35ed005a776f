"""The association files answered in front of every other layer (what `serve` runs).

Apple's and Google's fetchers (and a CDN's) ask for them far more often than buyers return, and
behind the service's layers (the reload holder, two Starlette stacks, failsafe, guard) an answer
cost several times what sending the bytes costs. FrontDoor gives the answer those layers give
(the same status, headers and body; tests/router/test_front.py compares them) for every request
the guard lets through; a request the guard would refuse, or any failure, goes through the layers
as before and gets their page, JSON and log line.

`answer_now` gives the same answer to a protocol that writes it without an ASGI cycle (router/web/server.py):
uvicorn's request cycle, task and per-header checks were a third of an association file's CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from router import logs
from router.config import Settings
from router.web.association import PATH_KIND, AssociationFiles, answer
from router.web.guard import host_problem
from router.web.routing import raw_path

# A finished answer: status, headers (nosniff added), body, and the headers as HTTP/1.1 lines when its framing is
# complete for a protocol to write it as is (a Content-Length, or a status without a body), else None
Finished = tuple[int, list[tuple[bytes, bytes]], bytes, "bytes | None"]
# An answer given here: the finished answer, the request's Host and User-Agent (for its access line), and the
# X-Request-Id to answer
Answered = tuple[Finished, "bytes | None", "bytes | None", bytes]
# The access log's line for an answer given here: (scope, status, Host, User-Agent, the request id answered,
# time.monotonic() at the start)
Note = Callable[[Scope, int, "bytes | None", "bytes | None", "bytes | None", float], None]
NOSNIFF = (b"x-content-type-options", b"nosniff")
_HOSTS_MAX = 4096  # distinct Host values remembered as acceptable


class FrontDoor:
    def __init__(self, app: ASGIApp, current: Callable[[], Settings], note: Note | None = None) -> None:
        self.app = app
        self.current = current  # the settings requests see now (a reload replaces them)
        self.note = note
        self._settings: Settings | None = None
        self._files: AssociationFiles | None = None
        self._hosts: set[bytes] = set()
        # (method, path, Host) → the finished answer (nosniff added), for requests without If-None-Match
        self._answers: dict[tuple[str, str, bytes | None], Finished] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and raw_path(scope) in PATH_KIND:
            began = time.monotonic()
            found = self._answer(scope)
            if found is not None:
                (status, head, body, _), host, agent, request_id = found
                if self.note is not None:
                    self.note(scope, status, host, agent, request_id, began)
                headers = [*head, (b"x-request-id", request_id)]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
                return
        await self.app(scope, receive, send)

    def answer_now(self, scope: Scope) -> tuple[int, bytes, bytes, bytes] | None:
        """For an HTTP/1.1 protocol writing the answer itself: (status, the header lines without the request
        id's, body, X-Request-Id), its access line noted; None where the ASGI path must answer (the layers, or
        an answer whose framing a protocol must work out)."""
        began = time.monotonic()
        found = self._answer(scope)
        if found is None:
            return None
        (status, _, body, lines), host, agent, request_id = found
        if lines is None:
            return None
        if self.note is not None:
            self.note(scope, status, host, agent, request_id, began)
        return status, lines, body, request_id

    def _answer(self, scope: Scope) -> Answered | None:
        """The layers' answer, or None where only they can give it."""
        settings = self.current()
        if settings is not self._settings or self._files is None:
            self._files, self._settings, self._hosts, self._answers = AssociationFiles(settings), settings, set(), {}
        limits = settings.server
        headers = scope["headers"]
        if len(headers) > limits.max_headers:
            return None
        host = if_none_match = request_id = agent = None
        hosts = 0
        # guard.head_size: the target, and each header's name, value and 4 bytes of ": " and CRLF
        size = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b"")) + 1 + 4 * len(headers)
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"host":
                host, hosts = value, hosts + 1
            elif name == b"user-agent" and agent is None:
                agent = value
            elif name == b"x-request-id" and request_id is None:
                request_id = value
            elif name == b"if-none-match":
                if_none_match = value
        if hosts > 1 or size > limits.max_header_bytes or (host is not None and not self._acceptable(host)):
            return None
        found = self._finished(scope["method"], raw_path(scope), host, if_none_match)
        if found is None:
            return None
        return found, host, agent, logs.request_id_from(request_id).encode()

    def _finished(self, method: str, path: str, host: bytes | None, if_none_match: bytes | None) -> Finished | None:
        """The answer with nosniff added, as router/web/failsafe.py adds it to every answer; None on a failure
        (the layers answer and log it). Remembered while the settings last, except for conditional requests."""
        key = (method, path, host)
        found = self._answers.get(key) if if_none_match is None else None
        if found is not None:
            return found
        assert self._files is not None
        try:
            status, head, body = answer(self._files, method, PATH_KIND[path], host, if_none_match)
        except Exception:
            return None
        if not any(name == b"x-content-type-options" for name, _ in head):
            head = [*head, NOSNIFF]
        found = status, head, body, _lines(status, head)
        if if_none_match is None and len(self._answers) < _HOSTS_MAX:
            self._answers[key] = found
        return found

    def _acceptable(self, host: bytes) -> bool:
        """The guard's Host rule (router/web/guard.py), remembered per distinct value."""
        if host in self._hosts:
            return True
        if host_problem([(b"host", host)]) is not None:
            return False
        if len(self._hosts) < _HOSTS_MAX:
            self._hosts.add(host)
        return True


def _lines(status: int, head: list[tuple[bytes, bytes]]) -> bytes | None:
    """The headers as HTTP/1.1 lines, when they frame the body completely (as uvicorn checks it); else None."""
    if status not in (204, 304) and not any(name == b"content-length" for name, _ in head):
        return None
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in head)
