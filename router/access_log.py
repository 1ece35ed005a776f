"""The access log, kept off the event loop: the same lines, handlers and formatters as uvicorn's.

With `serve`'s default logging uvicorn builds a LogRecord per request on the event loop, runs the
redaction filter and its access formatter, and writes and flushes one line to stdout: about as much
CPU as serving an association file itself, plus a stall whenever the pipe (journald, docker) is full.
`take_over` moves the handlers of the `uvicorn.access` logger to a writer thread (so uvicorn skips
its own access logging); the app wrapper then only appends a tuple per response to a queue. The
thread turns them into the same `uvicorn.access` records (the logger's filters, the handlers' levels
and formatters apply as before) and writes each batch at once, waking at most once per INTERVAL.
If the output stays blocked until QUEUE_SIZE lines wait, further lines are counted and dropped (the
count is logged) rather than holding up buyers' requests.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router import logs
from router.web.platform import detect_platform

log = logging.getLogger("router.access_log")
ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'  # uvicorn's, so its AccessFormatter reads the same args
QUEUE_SIZE = 10_000  # lines waiting at most; beyond, lines are counted and dropped
INTERVAL = 0.05  # seconds a line may wait for its batch

# (time, client, method, path, query string, http version, status, fields for JSON lines)
Entry = tuple[float, "tuple[str, int] | None", str, str, bytes, str, int, dict[str, object]]


class _Writer(threading.Thread):
    def __init__(self, logger: logging.Logger, handlers: list[logging.Handler]) -> None:
        super().__init__(name="access-log", daemon=True)
        self.logger = logger
        self.handlers = handlers
        self.pending: deque[Entry] = deque()  # append and popleft are thread-safe
        self.wake = threading.Event()
        self.stopping = False
        self.dropped = 0

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
        records = []
        while self.pending:
            record = _record(self.logger, self.pending.popleft())
            if self.logger.filter(record):  # the redaction filter, as on uvicorn's own records
                record.path = record.args[2] if isinstance(record.args, tuple) else None  # as redacted
                records.append(record)
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            log.warning("%d access log lines dropped: the log output was blocked", dropped)
        for handler in self.handlers:
            mine = [r for r in records if r.levelno >= handler.level]
            if isinstance(handler, logging.StreamHandler) and type(handler).emit is logging.StreamHandler.emit:
                _write_stream(handler, mine)  # one write and one flush for the whole batch
            else:
                for record in mine:
                    handler.handle(record)

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.join(timeout=5)
        self.write_pending()


def _record(logger: logging.Logger, entry: Entry) -> logging.LogRecord:
    at, client, method, path, query, version, status, fields = entry
    agent = fields.get("platform")
    found = detect_platform(agent if isinstance(agent, str) else None)
    fields = {**fields, "platform": found.os + (f"/{found.in_app_browser}" if found.in_app_browser else "")}
    target = quote(path) + ("?" + query.decode("ascii", "replace") if query else "")
    address = f"{client[0]}:{client[1]}" if client else ""
    record = logger.makeRecord(logger.name, logging.INFO, "", 0, ACCESS_FORMAT,
                               (address, method, target, version, status), None,
                               extra={"method": method, "status": status, **fields})
    record.created, record.msecs = at, (at - int(at)) * 1000
    return record


def _write_stream(handler: logging.StreamHandler, records: list[logging.LogRecord]) -> None:  # type: ignore[type-arg]
    lines = []
    for record in records:
        if handler.filter(record):
            try:
                lines.append(handler.format(record) + handler.terminator)
            except Exception:
                handler.handleError(record)
    if lines:
        handler.acquire()
        try:
            handler.stream.write("".join(lines))
            handler.stream.flush()
        except Exception:
            handler.handleError(records[-1])
        finally:
            handler.release()


class _AccessLogged:
    """Notes each HTTP response's start for the writer: a tuple on a queue, nothing else on the loop."""

    def __init__(self, app: ASGIApp, writer: _Writer) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        began = time.monotonic()

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                fields = {"duration_ms": round((time.monotonic() - began) * 1000, 1),
                          "request_id": _header(message.get("headers", ()), b"x-request-id") or "-",
                          "host": _header(scope["headers"], b"host"),
                          "platform": _header(scope["headers"], b"user-agent")}  # classified on the thread
                ctx = logs.context.get()  # the request's, set further in (router/web/failsafe.py)
                if ctx is not None and "merchant_reference" in ctx:
                    fields["merchant_reference"] = ctx["merchant_reference"]
                ids = logs.trace_ids()  # with [tracing]: the request's span
                if ids is not None:
                    fields["trace_id"], fields["span_id"] = ids
                self.writer.put((time.time(), scope.get("client"), scope["method"], scope["path"],
                                 scope["query_string"], scope["http_version"], message["status"], fields))
            await send(message)

        await self.app(scope, receive, noted)


def _header(headers: object, name: bytes) -> str | None:
    for key, value in headers:  # type: ignore[attr-defined]
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def take_over(app: ASGIApp) -> ASGIApp:
    """`app` with the access log written off the loop; `app` itself when access lines are off."""
    logger = logging.getLogger("uvicorn.access")
    if not logger.handlers or not logger.isEnabledFor(logging.INFO):
        return app
    writer = _Writer(logger, list(logger.handlers))
    for handler in list(logger.handlers):
        logger.removeHandler(handler)  # uvicorn sees no handler and skips its own access logging
    writer.start()
    atexit.register(writer.stop)  # the last lines are written before the process exits
    return _AccessLogged(app, writer)
