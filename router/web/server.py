"""How `serve` runs uvicorn: bounded request heads, a deadline for each head and body, bounded concurrency.

uvicorn's fast parser (httptools) buffers an unfinished header without limit, and uvicorn has no
timeout for a request head or body sent one byte at a time (its keep-alive timer only runs between
requests). `serve` keeps httptools (h11, whose buffer is bounded, costs about 50 µs more per
request: as much as serving an association file) and adds these limits around it:
- a deadline from a connection's opening (or a request's first byte) to the end of its headers;
  a client that misses it gets a 408 and the connection is closed;
- a deadline from the end of a request's headers to the end of its body (`body_timeout_seconds`):
  without it, a thousand connections each sending a head with `Content-Length: 100` and one byte
  of body held every `limit_concurrency` slot for good, and every page and /healthz answered 503.
  A client that misses it gets a 408 and the connection is closed, unless the app has answered
  already (without reading the whole body): then the connection is closed once that answer is
  written, at most one more `body_timeout_seconds` later. Either way the app's task awaiting the
  body sees a disconnect (router/web/api.py answers it with a 400 nobody reads);
- at most `max_header_bytes` read while a head is unfinished; beyond, a 431 and the connection is
  closed. What httptools holds is then at most that plus one read (256 KiB). A complete head read
  at once is measured by the app (router/web/guard.py), which answers with a page or JSON.

An association file asked for on a quiet keep-alive connection is answered by the protocol itself
(router/web/front.py gives the answer): the same bytes uvicorn would write for it, in one write, without
a request cycle, a task and two ASGI messages, which were a third of its CPU. Anything else (another
path, a query, a pipelined request behind an unfinished answer, a full write buffer, HTTP/1.0,
Connection: close, Expect, an upgrade, uvicorn's own wrappers around the app such as --proxy-headers)
takes uvicorn's path, as before. Such an answer holds no task, so `limit_concurrency` does not count it:
the fetchers still get the files while buyers' requests are refused with 503.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from router.config import ServerSettings
from router.redact import mask
from router.web.association import PATH_KIND
from router.web.front import FrontDoor
from router.web.guard import absolute_form

log = logging.getLogger("router.web.server")

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TOO_LARGE_RESPONSE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                       b"content-length: 32\r\nconnection: close\r\n\r\nThe request head is too large.\r\n")
# Beyond `limit_concurrency`: what uvicorn would answer (its task writes a bare "Service Unavailable"), written
# here without a task, saying when to come back and closing the connection (a slot back at once). The pages get
# a short page that reloads itself (the same return URL: it finalizes then), the API its JSON error.
_BUSY_RETRY_SECONDS = 10
_BUSY_PAGE = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
              '<meta name="viewport" content="width=device-width, initial-scale=1">'
              f'<meta http-equiv="refresh" content="{_BUSY_RETRY_SECONDS}"><title>Temporarily unavailable</title>'
              '</head><body><h1>Temporarily unavailable</h1><p>Too many requests at once. This page tries again '
              'by itself in a few seconds.</p><p lang="ja">ただいま混み合っています。このページは数秒後に自動的に'
              '再読み込みされます。</p></body></html>\n').encode()
_BUSY_JSON = b'{"error":{"code":"unavailable","message":"the service is busy; retry after Retry-After seconds"}}'
_BUSY_HEAD = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
              b"retry-after: %d\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n"
              b"connection: close\r\n\r\n")
_BUSY_PAGE_RESPONSE = _BUSY_HEAD % (b"text/html; charset=utf-8", len(_BUSY_PAGE), _BUSY_RETRY_SECONDS) + _BUSY_PAGE
_BUSY_API_RESPONSE = _BUSY_HEAD % (b"application/json", len(_BUSY_JSON), _BUSY_RETRY_SECONDS) + _BUSY_JSON
_limits = ServerSettings()
_TARGETS = {path.encode(): path for path in PATH_KIND}  # request targets answered in front: no query, no escapes
_METHODS = {b"GET": "GET", b"HEAD": "HEAD"}


def set_limits(server: ServerSettings) -> None:
    """Set by the app factory in each worker process, from the config it loaded."""
    global _limits
    _limits = server


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size bound for each request head, and a
    deadline for each request body.

    One timer per connection, not one per request: a request only notes when its head began and
    ended, and whether its body is still to come; the timer, when it fires, compares and sets itself
    again for what is left. A request without a body (a GET) costs two attribute writes for the body
    deadline: its message ends in the same read as its head, before the body's clock is started."""

    _head_timer: asyncio.TimerHandle | None = None  # the connection's one timer (head and body deadlines)
    _head_began: float | None = None  # loop time of the unfinished head's first byte (or the opening)
    _body_open = False  # between the end of a request's head and the end of its message (its body)
    _body_began: float | None = None  # loop time its head ended, once a read ended with the body unfinished
    _body_overdue = False  # the body missed its deadline after the answer had started: close once it is written
    _head_bytes = 0  # bytes received while the current head was unfinished
    _upgrade_body_left = 0  # body bytes still to come of an Upgrade request the parser stopped at its head
    _front: FrontDoor | None = None  # the app, when it is the front door with nothing of uvicorn's around it
    _default_head: tuple[object, bytes] = (None, b"")  # uvicorn's default headers (Date) and their lines

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._front = self.app if isinstance(self.app, FrontDoor) else None
        self._head_began = self.loop.time()
        self._head_timer = self.loop.call_later(_limits.header_timeout_seconds, self._check)

    def data_received(self, data: bytes) -> None:
        if self._upgrade_body_left:
            self._upgrade_body(data)
        else:
            self._feed(data)
        if self._head_began is not None:
            if not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > _limits.max_header_bytes:
                    self._refuse(_TOO_LARGE_RESPONSE, "larger than %s bytes", _limits.max_header_bytes)
        elif self._body_open and self._body_began is None:  # this read ended a head, not its body
            self._start_body_clock()

    def _feed(self, data: bytes) -> None:
        """uvicorn's data_received, but for an Upgrade request (served as plain HTTP, see on_headers_complete)
        the bytes after its head are its body, which the parser, stopped at the head, would have dropped."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as upgrade:
            self._unsupported_upgrade_warning()
            if self._upgrade_body_left:
                self._upgrade_body(data[upgrade.args[0]:])

    def _upgrade_body(self, data: bytes) -> None:
        """An Upgrade request's body, by its Content-Length, handed on as the parser would have; the request
        is complete once all of it came (what follows is dropped: the connection ends with the answer)."""
        part = data[:self._upgrade_body_left]
        self._upgrade_body_left -= len(part)
        if part:
            self.on_body(part)
        if not self._upgrade_body_left:
            self.on_message_complete()

    def _start_body_clock(self) -> None:
        """The body's deadline counts from now; the connection's timer fires by then."""
        now = self.loop.time()
        self._body_began = now
        due, timer = now + _limits.body_timeout_seconds, self._head_timer
        if timer is not None and timer.when() > due:
            timer.cancel()
            self._head_timer = self.loop.call_at(due, self._check)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_began is None:  # else the connection's opening (or an earlier byte) started it
            self._head_began = self.loop.time()
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_began = None  # the head is complete: the app now has the request
        self._body_open = True  # until on_message_complete, in this same read for a request without a body
        if self._front is not None and self._answered_in_front():
            return  # the association files: beyond the limit too (no task)
        if self._over_limit():
            self._busy()
        else:
            super().on_headers_complete()
            if not self.url.startswith(b"/"):
                self._keep_target()
            if self.parser.should_upgrade():
                # The parser stops at an upgrade (and calls on_message_complete at once, body or not): this
                # protocol hands on the body a Content-Length gives (a client trying h2c posts with one),
                # and the connection ends with this answer (Connection: close), as nothing after is parsed.
                self.cycle.keep_alive = False
                self._upgrade_body_left = _content_length(self.headers)

    def _over_limit(self) -> bool:
        """uvicorn's own test for its 503, where this protocol can answer it at once: no answer is being
        written on this connection (a pipelined request behind one takes uvicorn's path)."""
        limit = self.limit_concurrency
        return (limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)
                and not self.pipeline and _finished(self.cycle))

    def _busy(self) -> None:
        """The 503 beyond `limit_concurrency`, its connection closed (the parser's later callbacks see it done)."""
        self.logger.warning("Exceeded concurrency limit.")  # uvicorn's line, as before
        self.cycle = _ANSWERED
        if self.transport.is_closing():  # a request pipelined behind the one refused in this read
            return
        api = self.url.startswith(b"/v1/") or self.url == b"/v1"
        self.transport.write(_BUSY_API_RESPONSE if api else _BUSY_PAGE_RESPONSE)
        self.transport.close()

    def _keep_target(self) -> None:
        """An absolute-form target (`GET http://a.example/x`) in the scope as uvicorn's h11 puts it, as sent:
        httptools keeps only its path, and the guard (router/web/guard.py) must see its authority. The
        request's task has not run yet: it reads the scope once the loop is back."""
        target = self.url.partition(b"?")[0]
        if absolute_form(target) is not None:
            self.scope["raw_path"], self.scope["path"] = target, unquote(target.decode("latin-1"))

    def on_message_complete(self) -> None:
        if self._upgrade_body_left:  # the parser's, at an Upgrade request's head: its body is still to come
            return
        self._body_open = False
        self._body_began = None
        super().on_message_complete()

    def _answered_in_front(self) -> bool:
        """Write the front door's answer as uvicorn would (status line, default headers, the answer's headers,
        the body unless HEAD); False, with nothing written, where uvicorn's own path must answer."""
        path, method = _TARGETS.get(self.url), _METHODS.get(self.parser.get_method())
        if (path is None or method is None or self.pipeline or not _finished(self.cycle) or self.flow.write_paused
                or self.expect_100_continue or self.parser.get_http_version() != "1.1"
                or not self.parser.should_keep_alive() or self.parser.should_upgrade()):
            return False
        scope: Any = self.scope  # what uvicorn's on_headers_complete would add to it
        scope["method"], scope["path"], scope["raw_path"], scope["query_string"] = method, path, self.url, b""
        assert self._front is not None
        found = self._front.answer_now(scope)
        if found is None:
            return False
        status, lines, body, request_id = found
        self.cycle = _ANSWERED  # uvicorn's later callbacks for this request (body, message end) see it done
        self.transport.write(b"".join((STATUS_LINE[status], self._defaults(), lines, b"x-request-id: ", request_id,
                                       b"\r\n\r\n", body if method == "GET" else b"")))
        self.on_response_complete()  # the request count, the keep-alive timer, reading resumed
        return True

    def _defaults(self) -> bytes:
        """uvicorn's default headers as lines; it replaces the list when the Date changes (once a second)."""
        headers = self.server_state.default_headers
        if self._default_head[0] is not headers:
            BoundedHeadProtocol._default_head = (headers, b"".join(b"%s: %s\r\n" % pair for pair in headers))
        return self._default_head[1]

    def _unsupported_upgrade_warning(self) -> None:
        """An Upgrade (a WebSocket handshake, h2c) is answered as the plain HTTP request it also is: the guard
        and the pages see it like any other. uvicorn would log two WARNINGs for each (one says to install a
        WebSocket library): a line per request any client can cause, and neither is true here."""
        log.debug("an upgrade request (%s) answered as plain HTTP", _upgrade_of(self.headers))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _check(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        timeout, began = _limits.header_timeout_seconds, self._head_began
        left = timeout if began is None else began + timeout - now
        if left <= 0 and _finished(self.cycle):
            self._refuse(_TIMEOUT_RESPONSE, "within %ss", timeout)
            return
        # The head's deadline is not yet, or a response is still being written (a 408 now would land
        # inside it): look again. A body on its way has a deadline of its own.
        if self._body_began is not None:
            body_left = self._body_began + _limits.body_timeout_seconds - now
            if body_left <= 0:
                if self.flow.read_paused:  # uvicorn holds the body back (pipelined, a full buffer), not the client:
                    self._body_began, body_left = now, _limits.body_timeout_seconds  # its clock starts again
                elif self._body_late():
                    return
                else:  # an answer is being written: it has one more body_timeout_seconds
                    body_left = _limits.body_timeout_seconds
            left = min(left, body_left)
        self._head_timer = self.loop.call_later(max(left, 0.05), self._check)

    def _body_late(self) -> bool:
        """A request body missed its deadline: end the request; True if the connection was closed."""
        cycle: Any = self.cycle
        timeout = _limits.body_timeout_seconds
        if not _finished(cycle) and cycle.response_started and not self._body_overdue:
            # The app answered without the whole body and is still writing: close once that is written.
            log.debug("a request body was not complete within %ss: closing after the answer", timeout)
            self._body_overdue, cycle.keep_alive = True, False
            self._body_began = self.loop.time()
            return False
        log.debug("closing a connection whose request body was not complete within %ss", timeout)
        if not _finished(cycle):
            # What connection_lost would do, now: the app's task awaiting the body gets http.disconnect,
            # and what it sends is dropped (nothing can follow the 408 on this connection).
            cycle.disconnected = True
            cycle.message_event.set()
            if not cycle.response_started:
                self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()
        return True

    def _refuse(self, answer: bytes, why: str, limit: float) -> None:
        log.debug("closing a connection whose request head was not complete " + why, limit)
        self.transport.write(answer)
        self.transport.close()


class _NobodyWaits:
    def set(self) -> None:  # uvicorn wakes a cycle's body reader with it; no reader here
        pass


class _Answered:
    """Stands in for uvicorn's request cycle of a request answered in front: complete, nothing to wake."""

    response_complete = True
    keep_alive = True
    message_event = _NobodyWaits()


_ANSWERED: Any = _Answered()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The request's Content-Length, 0 when none or not one plain number (the guard and the app refuse those)."""
    values = [value for name, value in headers if name == b"content-length"]
    return int(values[0]) if len(values) == 1 and values[0].isdigit() else 0


def _upgrade_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The Upgrade header's protocol, short and printable (it is the client's)."""
    value = next((value for name, value in headers if name == b"upgrade"), b"")
    return repr(value[:32].decode("latin-1"))


def _finished(cycle: Any) -> bool:
    return cycle is None or bool(cycle.response_complete)


# What a session id or a ref looks like in a log line: 16 or more id characters, at least one a digit.
_ID_LIKE = re.compile(r"(?<![A-Za-z0-9_-])(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])", re.ASCII)


class MaskIds(logging.Filter):
    """uvicorn's own lines with ids shown by their ends only: its trace lines (each ASGI scope, path and query
    included), and at any level whatever names a request target (its WebSocket lines did, at INFO). uvicorn
    writes few lines of its own besides traces (startup, a warning per refused request): masking each costs
    little."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _ID_LIKE.sub(lambda m: mask(m.group()), record.getMessage())
        record.args = None
        return True


# With --workers N, uvicorn's supervisor kills a worker that does not answer its ping in time (5 s by
# default). A new worker answers only once its interpreter has started and imported the app's modules,
# which took 5-9 s on a slow, loaded machine: each worker was killed before it could serve, again and
# again. The ping is answered by a thread of the worker's own, so it catches a frozen process, not a
# stuck event loop; waiting longer for it only delays the restart of a frozen one.
WORKER_HEALTHCHECK_SECONDS = 60


def uvicorn_options(server: ServerSettings) -> dict[str, Any]:
    """The keyword arguments `serve` gives uvicorn.run for [server]."""
    return {
        "http": BoundedHeadProtocol,
        # The service has no WebSocket: uvicorn's own answered a handshake itself (a 403, and an INFO line with
        # the whole target), around the app's guard. Without it the request is plain HTTP (see above).
        "ws": "none",
        "limit_concurrency": server.limit_concurrency,
        "timeout_keep_alive": server.keep_alive_seconds,
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
