"""Optional OpenTelemetry traces: `[tracing] otlp_endpoint` with the `otel` extra installed.

Off (no [tracing]), nothing of OpenTelemetry is imported and the hooks cost a global read: `span()`
hands back one shared no-op context manager, `traceparent()` None, and the request middleware and
the store and Amazon wrappers are not installed at all (router/app.py).

On, a return is one trace: the request's SERVER span (`Requests`, outermost), its store calls and
Amazon calls as children (`traced`), and the webhook delivery, made by whichever process claims the
event, as a child through the traceparent stored with it (`delivery_span`). Store and Amazon calls
outside any span (the reconciler's and the worker's polling) make no spans: no root span every
interval. Log lines carry the current span's `trace_id` and `span_id` (router.logs). Spans leave
through a BatchSpanProcessor, on its own thread, to `<otlp_endpoint>/v1/traces` (OTLP over HTTP).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import inspect
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router import logs
from router.redact import ROUTE_WORD, redact_path
from router.version import version

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

T = TypeVar("T")
SERVICE_NAME = "return-router"
EXTRA_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter")
TRACES_PATH = "/v1/traces"
_NOOP = contextlib.nullcontext()
_ID_SEGMENT = re.compile(r"[^/]{16,}")  # as redact_path masks: long segments that are not route words

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_otel: Any = None  # the OpenTelemetry names used per call, imported once by enable()


def available() -> bool:
    """The otel extra is installed (only looked up: the config check for a [tracing] section)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in EXTRA_MODULES)
    except ModuleNotFoundError:  # a parent package is missing
        return False


def enabled() -> bool:
    return _tracer is not None


def traces_url(endpoint: str) -> str:
    """The collector's base URL ("http://collector:4318") → its OTLP/HTTP traces URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def enable(endpoint: str | None, *, service_name: str = SERVICE_NAME, exporter: SpanExporter | None = None) -> None:
    """Trace this process from now on. Once per process: later calls (a reload, a second app) keep the
    first provider. `exporter` (tests: the SDK's InMemorySpanExporter) is used as is, synchronously."""
    global _tracer, _provider, _otel
    if _tracer is not None:
        return
    import opentelemetry.trace as otel_trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(resource=Resource.create({"service.name": service_name, "service.version": version()}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert endpoint is not None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
        atexit.register(disable)  # the last spans are sent before the process exits
    _otel = _Names(otel_trace, TraceContextTextMapPropagator())
    _provider, _tracer = provider, provider.get_tracer("router", version())
    logs.trace_with(_ids)


def disable() -> None:
    """Flush and stop (process exit; tests)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    logs.trace_with(None)
    if provider is not None:
        provider.shutdown()


class _Names:
    def __init__(self, trace: Any, propagator: Any) -> None:
        self.trace, self.propagator = trace, propagator
        self.server, self.client = trace.SpanKind.SERVER, trace.SpanKind.CLIENT
        self.error = trace.Status(trace.StatusCode.ERROR)


def _ids() -> tuple[str, str] | None:
    context = _otel.trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def traceparent() -> str | None:
    """The current span as a W3C traceparent (stored with a webhook event); None when off or outside a span."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _otel.propagator.inject(carrier)
    return carrier.get("traceparent")


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span around a block; the shared no-op when tracing is off."""
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name, attributes=attributes)


def note(**attributes: Any) -> None:
    """Attributes for the current span (a delivery's result); nothing when off."""
    if _tracer is not None:
        _otel.trace.get_current_span().set_attributes(attributes)


def delivery_span(parent: str | None, **attributes: Any) -> Any:
    """The webhook delivery's span, started but not current: a child of the request that caused the event
    (`parent`, its stored traceparent) in whichever process delivers it; a root span for a background
    event. `current(span)` around the attempt, `end(span)` once its result is recorded (in another task);
    None when tracing is off."""
    if _tracer is None:
        return None
    context = _otel.propagator.extract({"traceparent": parent}) if parent else None
    return _tracer.start_span("webhook.deliver", context=context, kind=_otel.client, attributes=attributes)


def current(started: Any) -> contextlib.AbstractContextManager[Any]:
    """A span from `delivery_span` as the current one inside the block (a task begun there inherits it)."""
    if started is None:
        return _NOOP
    return cast(contextlib.AbstractContextManager[Any], _otel.trace.use_span(started, end_on_exit=False))


def end(started: Any) -> None:
    if started is not None:
        started.end()


# --- the store and the Amazon Pay client ---------------------------------------------------------


def traced(target: T, kind: str, **attributes: Any) -> T:
    """`target` with a span "<kind>.<method>" around each coroutine method called within a span;
    `target` itself when tracing is off."""
    if _tracer is None:
        return target
    return cast(T, _Traced(target, kind, attributes))


class _Traced:
    def __init__(self, target: Any, kind: str, attributes: Mapping[str, Any]) -> None:
        self._target, self._kind, self._attributes = target, kind, dict(attributes)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        return _spanned(f"{self._kind}.{name}", attr, self._attributes)


def _spanned(name: str, method: Callable[..., Any], attributes: Mapping[str, Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if _tracer is None or not _otel.trace.get_current_span().get_span_context().is_valid:
            return await method(*args, **kwargs)  # background polling: no span of its own
        with _tracer.start_as_current_span(name, kind=_otel.client, attributes=attributes, record_exception=False,
                                           set_status_on_exception=False) as current:
            try:
                return await method(*args, **kwargs)
            except Exception as exc:
                _failed(current, exc)
                raise
    return call


def _failed(current: Any, exc: Exception) -> None:
    """The exception's type, and an Amazon error's status and reason code; never its message or
    traceback (an answer's text may hold ids)."""
    attributes: dict[str, str | int] = {"error.type": type(exc).__name__}
    for name in ("status", "reason_code"):
        value = getattr(exc, name, None)
        if isinstance(value, str | int):
            attributes[f"error.{name}"] = value
    current.set_attributes(attributes)
    current.set_status(_otel.error)


# --- the HTTP request ----------------------------------------------------------------------------


def route_name(path: str) -> str:
    """A span name without ids: "/v1/checkout-sessions/{id}/finalize"."""
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(s) and not ROUTE_WORD.fullmatch(s) else s for s in path.split("/"))


class Requests:
    """ASGI: one SERVER span per HTTP request (a valid incoming traceparent is continued). Installed
    outermost, and only when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _tracer is None:
            await self.app(scope, receive, send)
            return
        incoming = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                    if k in (b"traceparent", b"tracestate")}
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        attributes = {"http.request.method": scope["method"], "url.path": redact_path(scope["path"]),
                      "server.address": host}
        with _tracer.start_as_current_span(f"{scope['method']} {route_name(scope['path'])}", kind=_otel.server,
                                           context=_otel.propagator.extract(incoming) if incoming else None,
                                           attributes=attributes, record_exception=False) as current:

            async def with_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    current.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        current.set_status(_otel.error)
                await send(message)

            await self.app(scope, receive, with_status)
