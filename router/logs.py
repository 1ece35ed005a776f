"""The service's log output: one format (text or JSON lines), request ids on every line, off the event loop.

`setup` gives the root logger a QueueHandler: a record is only stamped with the request's context
and put on a queue; a writer thread formats what has queued every FLUSH_SECONDS and writes it to
stderr in one write (waking a thread per record cost more CPU than the record itself). uvicorn's loggers
propagate to it (`serve` passes uvicorn no log config), except `uvicorn.access`, whose handler
router/access_log.py drives from its own writer thread. Worker processes call `setup` again, with the
format that `serve` chose handed down in an environment variable.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import json
import logging
import logging.handlers
import os
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

FORMAT_ENV = "RETURN_ROUTER_LOG_FORMAT"
FORMATS = ("text", "json")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

# The request (or background step) being served in this task: {"request_id": …, "ref": masked,
# "session_id": masked, "merchant_reference": the merchant's order number, once the checkout is known}.
context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("log_context", default=None)
CONTEXT_FIELDS = ("request_id", "ref", "session_id", "merchant_reference")
TRACE_FIELDS = ("trace_id", "span_id")  # with [tracing] on (router/tracing.py)
ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "host", "platform")
FLUSH_SECONDS = 0.05  # how long a line may wait in the queue (a person reading a terminal does not notice)
MAX_REFERENCE = 128  # the API's limit for merchantReference
_PLAIN = re.compile(r'[^\s"=]+')  # a text-format value written as is; others are quoted
_trace_ids: Callable[[], tuple[str, str] | None] | None = None  # set by router.tracing when tracing is on


class _Referenced(Protocol):
    @property
    def merchant_reference(self) -> str: ...


R = TypeVar("R", bound="_Referenced | None")


def request_id_from(incoming: bytes | None) -> str:
    """A valid incoming X-Request-Id is kept (the proxy's or the client's); otherwise a new one.

    A request id only ties log lines together, it guards nothing: 64 bits from the process's PRNG
    (seeded from the OS, and again in a forked worker) instead of a getrandom call per request."""
    if incoming:
        text = incoming.decode("latin-1")
        if REQUEST_ID.fullmatch(text):
            return text
    return f"{random.getrandbits(64):016x}"


def current_request_id() -> str | None:
    ctx = context.get()
    return ctx.get("request_id") if ctx else None


def clean(value: str, limit: int = MAX_REFERENCE) -> str:
    """Merchant-supplied text fit for one log line: printable characters only (a line break or a
    control character becomes \\uXXXX, so it cannot start a fake line), at most `limit` of them.
    The API already refuses such references; this holds for whatever else reaches a log."""
    value = value[:limit]
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in value)


def noted(checkout: R) -> R:
    """The rest of this request's log lines carry the checkout's merchant_reference; returns `checkout`."""
    ctx = context.get()
    if ctx is not None and checkout is not None:
        ctx["merchant_reference"] = clean(checkout.merchant_reference)
    return checkout


def identified(*, ref: str, session_id: str) -> None:
    """The rest of this request's log lines carry these (masked) ids: what a return's query gives its lines
    (router/web/failsafe.py), for a request that names them in its path or body (the app API's finalize)."""
    ctx = context.get()
    if ctx is not None:
        ctx.update(ref=ref, session_id=session_id)


@contextlib.contextmanager
def scope(**fields: str | None) -> Iterator[None]:
    """Log context for one step of background work (a reconciler step, a webhook delivery)."""
    found = {name: value for name, value in fields.items() if value is not None}
    if "merchant_reference" in found:
        found["merchant_reference"] = clean(found["merchant_reference"])
    token = context.set({**(context.get() or {}), **found})
    try:
        yield
    finally:
        context.reset(token)


def trace_with(ids: Callable[[], tuple[str, str] | None] | None) -> None:
    """router.tracing: `ids()` gives the current span's (trace id, span id) for each log line."""
    global _trace_ids
    _trace_ids = ids


def trace_ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id); None when tracing is off or outside a span."""
    return _trace_ids() if _trace_ids is not None else None


def default_format() -> str:
    """text for a person at a terminal, JSON lines for a log shipper (journald, docker, a file)."""
    return "text" if sys.stderr.isatty() else "json"


class ContextFilter(logging.Filter):
    """Copies the request's context onto the record, in the thread (and task) that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.get() or {}
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, ctx.get(name, "-" if name == "request_id" else None))
        if _trace_ids is not None and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = _trace_ids() or (None, None)
        return True


class TracebackAtDebug(logging.Filter):
    """A library's warning with a traceback (asyncpg's pool retrying a server that is gone) becomes one
    line naming the exception type: multi-line records break one-record-per-line logs, and tracebacks
    are for DEBUG only (the root logger at DEBUG keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not logging.getLogger().isEnabledFor(logging.DEBUG):
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()} ({type(error).__name__})", None
            record.exc_info = record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*CONTEXT_FIELDS, *TRACE_FIELDS, *ACCESS_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        doc.setdefault("request_id", "-")
        summary = getattr(record, "summary", None)
        if isinstance(summary, dict):
            doc.update(summary)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        line = super().format(record)
        extra = [f"{name}={text_value(getattr(record, name))}"
                 for name in ("ref", "session_id", "merchant_reference", "trace_id", "duration_ms", "host", "platform")
                 if getattr(record, name, None)]
        return line + (" " + " ".join(extra) if extra else "")


def text_value(value: object) -> str:
    """A field of a text line: quoted (JSON string) when it has a space, a quote or "=", so that a
    merchant's reference cannot pass for another field."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


class _Enqueue(logging.handlers.QueueHandler):
    """QueueHandler with the same record on the queue, made for less: the message is merged with
    getMessage() unless there is a traceback to add (the standard formatter's whole work then), and
    the copy copies the attributes directly (copy.copy's generic path was ~5 µs per line, on the loop)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if self.formatter is not None or record.exc_info or record.exc_text or record.stack_info:
            standard: logging.LogRecord = super().prepare(record)
            return standard
        queued = logging.LogRecord.__new__(logging.LogRecord)
        queued.__dict__.update(record.__dict__)  # other handlers of the chain keep the original
        queued.message = queued.msg = record.getMessage()
        queued.args = queued.exc_info = queued.exc_text = queued.stack_info = None
        return queued


class BatchWriter:
    """Drains the queue every FLUSH_SECONDS (and at stop): the records' lines, one write and one flush."""

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord], handler: logging.StreamHandler[Any]) -> None:
        self.records = records
        self.handler = handler
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(FLUSH_SECONDS):
            self.flush()
        self.flush()

    def flush(self) -> None:
        records = []
        while True:
            try:
                record = self.records.get_nowait()
            except queue.Empty:
                break
            if record.levelno >= self.handler.level:
                records.append(record)
        write_records(self.handler, records)


def write_records(handler: logging.StreamHandler[Any], records: list[logging.LogRecord]) -> None:
    """Format the records the handler's filters let through, then write them at once (`write_lines`)."""
    lines = []
    for record in records:
        if handler.filter(record):
            try:
                lines.append(handler.format(record))
            except Exception:
                handler.handleError(record)
    write_lines(handler, lines)


def write_lines(handler: logging.StreamHandler[Any], lines: list[str]) -> None:
    """One write and one flush for many lines, under the handler's lock; a failed write is reported,
    never raised: logging must not take the service down."""
    if not lines:
        return
    handler.acquire()
    try:
        handler.stream.write(handler.terminator.join(lines) + handler.terminator)
        handler.stream.flush()
    except Exception:  # stderr closed or full
        handler.handleError(logging.makeLogRecord({"msg": "log write failed"}))
    finally:
        handler.release()


_listener: BatchWriter | None = None


def setup(fmt: str | None = None, level: int = logging.INFO) -> str:
    """Configure this process's logging once more (workers too); returns the format used."""
    global _listener
    fmt = fmt or os.environ.get(FORMAT_ENV) or default_format()
    os.environ[FORMAT_ENV] = fmt  # uvicorn's worker processes inherit it
    # No line says where in the code it was logged from: skip finding the caller's frame for every record
    # (the logging HOWTO's "Optimization": a few µs per line, on the event loop).
    logging._srcfile = None
    if _listener is None:
        atexit.register(_stop)  # the last records are written before the process exits
    _stop()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter(fmt))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _Enqueue(records)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    _listener = BatchWriter(records, stream)
    _listener.start()
    access = logging.getLogger("uvicorn.access")  # written by router/access_log.py's thread
    for old in list(access.handlers):
        access.removeHandler(old)
    access_stream = logging.StreamHandler(sys.stderr)
    access_stream.setFormatter(formatter(fmt))
    access.addHandler(access_stream)
    access.propagate = False
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers would write a second format
        for old in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(old)
        logging.getLogger(name).propagate = True
    return fmt


def _stop() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
