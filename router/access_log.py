"""The access log, kept off the event loop: the same lines, handlers and formatters as uvicorn's.

With `serve`'s default logging uvicorn builds a LogRecord per request on the event loop, runs the
redaction filter and its access formatter, and writes and flushes one line to stdout: about as much
CPU as serving an association file itself, plus a stall whenever the pipe (journald, docker) is full.
`take_over` moves the handlers of the `uvicorn.access` logger to a writer thread (so uvicorn skips
its own access logging); the app wrapper then only appends a tuple per response to a queue. The
thread reads the request line and headers from it, redacts, and writes each batch at once, waking
at most once per INTERVAL. With the handlers and filter `serve` sets up it formats each line
directly (the formatters' `access_line`, the same text); with any other handler, formatter or
filter it builds the same `uvicorn.access` records as uvicorn (the logger's filters, the handlers'
levels and formatters apply as before). If the output stays blocked until QUEUE_SIZE lines wait,
further lines are counted and dropped (the count is logged) rather than holding up buyers' requests.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router import logs
from router.access_format import Line as LineOf
from router.access_format import Template, template_for
from router.redact import redact_path
from router.web.platform import detect_platform

log = logging.getLogger("router.access_log")
ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'  # uvicorn's, so its AccessFormatter reads the same args
QUEUE_SIZE = 10_000  # lines waiting at most; beyond, lines are counted and dropped
INTERVAL = 0.05  # seconds a line may wait for its batch
_MEMO_MAX = 4096  # distinct targets and User-Agents remembered by the writer

Headers = Iterable[tuple[bytes, bytes]]
# Per request, from its log context: merchant_reference, trace_id and span_id when known (else None)
Context = dict[str, str] | None
# (time, duration s, client, method, path, query string, http version, status, Host, User-Agent, the
# X-Request-Id answered, context fields). Only values, no lists: a tuple of them the garbage collector stops
# tracking, where thousands of waiting entries holding header lists made each collection walk them all.
Entry = tuple[float, float, "tuple[str, int] | None", str, str, bytes, str, int, "bytes | None", "bytes | None",
              "bytes | None", Context]
# What repeats from line to line: method, path, query string, http version, status, Host, User-Agent
Key = tuple[str, str, bytes, str, int, "bytes | None", "bytes | None"]
# What a line says: created, client address, method, target, http version, status, duration ms, request id,
# host, platform
Line = tuple[float, str, str, str, str, int, float, str, "str | None", str]


class RedactAccessLog(logging.Filter):
    """Access log lines keep the route but not the refs and session ids in the path and query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            if isinstance(path, str):
                record.args = (client, method, redact_path(path), version, status)
        return True


class _Writer(threading.Thread):
    def __init__(self, logger: logging.Logger, handlers: list[logging.Handler]) -> None:
        super().__init__(name="access-log", daemon=True)
        self.logger = logger
        self.handlers = handlers
        self.pending: deque[Entry] = deque()  # append and popleft are thread-safe
        self.wake = threading.Event()
        self.stopping = False
        self.dropped = 0
        self.platforms: dict[str | None, str] = {}
        self.targets: dict[tuple[str, bytes], str] = {}
        self.templates: dict[Key, list[LineOf]] = {}  # an entry's repeating parts → its lines
        self._direct_handlers: list[logging.Handler] = []

    def put(self, entry: Entry) -> None:
        if len(self.pending) >= QUEUE_SIZE:
            self.dropped += 1
            return
        self.pending.append(entry)
        if len(self.pending) == 1:  # the first since the last batch: one wake-up per batch, not per line
            self.wake.set()

    def run(self) -> None:
        while not self.stopping:
            self.wake.wait()
            self.wake.clear()
            time.sleep(INTERVAL)  # let the batch fill: one write for many requests
            self.write_pending()

    def write_pending(self) -> None:
        entries = []
        while self.pending:
            entries.append(self.pending.popleft())
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            log.warning("%d access log lines dropped: the log output was blocked", dropped)
        if not entries:
            return
        direct = self._direct()
        if direct is not None:
            for (stream, _), lines in zip(direct, self._direct_lines(entries, direct), strict=True):
                logs.write_lines(stream, lines)
            return
        records = [r for r in (self._record(e) for e in entries) if r is not None]
        for handler in self.handlers:
            mine = [r for r in records if r.levelno >= handler.level]
            if isinstance(handler, logging.StreamHandler) and type(handler).emit is logging.StreamHandler.emit:
                logs.write_records(handler, mine)  # one write and one flush for the whole batch
            else:
                for record in mine:
                    handler.handle(record)

    def _direct(self) -> list[tuple[logging.StreamHandler, Template]] | None:  # type: ignore[type-arg]
        """(handler, line template) for each handler when every line can skip the LogRecord, else None."""
        if not all(type(f) is RedactAccessLog for f in self.logger.filters):
            return None
        direct = []
        for handler in self.handlers:
            if handler.level > logging.INFO:
                continue
            template = template_for(handler.formatter)
            if (template is None or not isinstance(handler, logging.StreamHandler) or handler.filters
                    or type(handler).emit is not logging.StreamHandler.emit):
                return None
            direct.append((handler, template))
        if [h for h, _ in direct] != self._direct_handlers:  # new handlers, new templates
            self._direct_handlers, self.templates = [h for h, _ in direct], {}
        return direct

    def _record(self, entry: Entry) -> logging.LogRecord | None:
        """The `uvicorn.access` record uvicorn would make, through the logger's filters (the redaction)."""
        record = _record(self.logger, self._line(entry, redact=False), entry[-1])
        if not self.logger.filter(record):
            return None
        record.path = record.args[2] if isinstance(record.args, tuple) else None  # as redacted
        return record

    def _direct_lines(self, entries: list[Entry], direct: list[tuple[logging.StreamHandler, Template]],  # type: ignore[type-arg]
                      ) -> list[list[str]]:
        """Each handler's lines, from the templates of each entry's repeating parts and its merchant_reference
        (an entry with a trace id goes through its formatter)."""
        out: list[list[str]] = [[] for _ in direct]
        for entry in entries:
            at, duration, client, method, path, query, version, status, host, agent, answered, context = entry
            reference = context.get("merchant_reference") if context else None
            if context and (len(context) > 1 or reference is None):  # trace ids: through the formatter
                record = self._record(entry)
                if record is not None:
                    for handler_lines, (handler, _) in zip(out, direct, strict=True):
                        handler_lines.append(handler.format(record))
                continue
            key = (method, path, query, version, status, host, agent)
            lines = self.templates.get(key) or self._templates(key, direct)
            request_id = answered.decode("latin-1") if answered is not None else "-"
            address = f"{client[0]}:{client[1]}" if client else ""
            took = round(duration * 1000, 1)
            for handler_lines, line in zip(out, lines, strict=True):
                handler_lines.append(line(at, address, request_id, took, reference))
        return out

    def _templates(self, key: Key,
                   direct: list[tuple[logging.StreamHandler, Template]]) -> list[LineOf]:  # type: ignore[type-arg]
        method, path, query, version, status, host, agent = key
        target = self.target_of(path, query, True)
        platform = self.platform_of(agent.decode("latin-1") if agent is not None else None)
        text_host = host.decode("latin-1") if host is not None else None
        lines = [template(method, target, version, status, text_host, platform) for _, template in direct]
        if len(self.templates) < _MEMO_MAX:
            self.templates[key] = lines
        return lines

    def _line(self, entry: Entry, *, redact: bool) -> Line:
        at, duration, client, method, path, query, version, status, raw_host, raw_agent, answered, _ = entry
        host = raw_host.decode("latin-1") if raw_host is not None else None
        agent = raw_agent.decode("latin-1") if raw_agent is not None else None
        request_id = answered.decode("latin-1") if answered is not None else "-"
        target = self.target_of(path, query, redact)
        address = f"{client[0]}:{client[1]}" if client else ""
        return (at, address, method, target, version, status, round(duration * 1000, 1), request_id, host,
                self.platform_of(agent))

    def target_of(self, path: str, query: bytes, redact: bool) -> str:
        key = (path, query)
        found = self.targets.get(key) if redact else None
        if found is None:
            found = quote(path) + ("?" + query.decode("ascii", "replace") if query else "")
            if redact:
                found = redact_path(found)
                if len(self.targets) < _MEMO_MAX:
                    self.targets[key] = found
        return found

    def platform_of(self, agent: str | None) -> str:
        found = self.platforms.get(agent)
        if found is None:
            platform = detect_platform(agent)
            found = platform.os + (f"/{platform.in_app_browser}" if platform.in_app_browser else "")
            if len(self.platforms) < _MEMO_MAX:
                self.platforms[agent] = found
        return found

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.join(timeout=5)
        self.write_pending()


def _first(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _answered_id(headers: Headers) -> bytes | None:
    """The X-Request-Id answered; the failsafe layer (and the front door) add it last."""
    if isinstance(headers, list) and headers and headers[-1][0] == b"x-request-id":
        return bytes(headers[-1][1])
    return next((v for k, v in headers if k.lower() == b"x-request-id"), None)


def _context_fields() -> Context:
    """On the loop, in the request's task: what its log context adds to the access line."""
    ctx = logs.context.get()  # the request's, set further in (router/web/failsafe.py)
    fields = {"merchant_reference": ctx["merchant_reference"]} if ctx and "merchant_reference" in ctx else None
    ids = logs.trace_ids()  # with [tracing]: the request's span
    if ids is not None:
        fields = {**(fields or {}), "trace_id": ids[0], "span_id": ids[1]}
    return fields


def _record(logger: logging.Logger, line: Line, context: Context) -> logging.LogRecord:
    at, address, method, target, version, status, duration_ms, request_id, host, platform = line
    fields: dict[str, object] = {"duration_ms": duration_ms, "request_id": request_id, "host": host,
                                 "platform": platform, **(context or {})}
    record = logger.makeRecord(logger.name, logging.INFO, "", 0, ACCESS_FORMAT,
                               (address, method, target, version, status), None,
                               extra={"method": method, "status": status, **fields})
    record.created, record.msecs = at, (at - int(at)) * 1000
    return record


class _AccessLogged:
    """Notes each HTTP response's start for the writer: a tuple on a queue, nothing else on the loop."""

    def __init__(self, app: ASGIApp, writer: _Writer) -> None:
        self.app = app
        self.put = writer.put

    def note(self, scope: Scope, status: int, host: bytes | None, agent: bytes | None, request_id: bytes | None,
             began: float, context: Context = None) -> None:
        """The line for an answer (`began`: time.monotonic() at the request's start); also for a layer in
        front that answers by itself and has read the request's Host and User-Agent already."""
        self.put((time.time(), time.monotonic() - began, scope.get("client"), scope["method"], scope["path"],
                  scope["query_string"], scope["http_version"], status, host, agent, request_id, context))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        note = self.note

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                request = scope["headers"]
                note(scope, message["status"], _first(request, b"host"), _first(request, b"user-agent"),
                     _answered_id(message.get("headers", ())), began, _context_fields())
            await send(message)

        await self.app(scope, receive, noted)


Note = Callable[[Scope, int, "bytes | None", "bytes | None", "bytes | None", float], None]


def take_over(app: ASGIApp) -> tuple[ASGIApp, Note | None]:
    """`app` with the access log written off the loop, and how a layer in front notes a line; `app` itself
    and None when access lines are off."""
    logger = logging.getLogger("uvicorn.access")
    if not logger.handlers or not logger.isEnabledFor(logging.INFO):
        return app, None
    writer = _Writer(logger, list(logger.handlers))
    for handler in list(logger.handlers):
        logger.removeHandler(handler)  # uvicorn sees no handler and skips its own access logging
    writer.start()
    atexit.register(writer.stop)  # the last lines are written before the process exits
    logged = _AccessLogged(app, writer)
    return logged, logged.note
