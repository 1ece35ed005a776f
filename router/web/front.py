"""The association files answered in front of every other layer (what `serve` runs).

Apple's and Google's fetchers (and a CDN's) ask for them far more often than buyers return, and
behind the service's layers (the reload holder, two Starlette stacks, failsafe, guard) an answer
cost several times what sending the bytes costs. FrontDoor gives the answer those layers give
(the same status, headers and body; tests/router/test_front.py compares them) for every request
the guard lets through; a request the guard would refuse, or any failure, goes through the layers
as before and gets their page, JSON and log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from router import logs
from router.config import Settings
from router.web.association import PATH_KIND, AssociationFiles, answer
from router.web.guard import host_problem

# An answer given here, with the request's Host and User-Agent (for its access line)
Answered = tuple[int, list[tuple[bytes, bytes]], bytes, "bytes | None", "bytes | None"]
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
        self._answers: dict[tuple[str, str, bytes | None], tuple[int, list[tuple[bytes, bytes]], bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PATH_KIND:
            began = time.monotonic()
            found = self._answer(scope)
            if found is not None:
                status, headers, body, host, agent = found
                if self.note is not None:
                    self.note(scope, status, host, agent, headers[-1][1], began)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
                return
        await self.app(scope, receive, send)

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
        found = self._finished(scope["method"], scope["path"], host, if_none_match)
        if found is None:
            return None
        status, head, body = found
        return status, [*head, (b"x-request-id", logs.request_id_from(request_id).encode())], body, host, agent

    def _finished(self, method: str, path: str, host: bytes | None,
                  if_none_match: bytes | None) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
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
        found = status, head, body
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
