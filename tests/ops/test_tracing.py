"""[tracing]: a return is one trace (request, store, Amazon, webhook delivery) with its id on the log lines;
without [tracing] nothing of OpenTelemetry is imported; [tracing] without the extra is a config error."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from router import logs, tracing
from router.app import create_app
from router.config import ConfigError, load
from tests.support import serve_app, wait_until
from tests.support.config import AUTH, BASE_CONFIG, HOST, TOKEN, WEBHOOK_SECRET, process_config
from tests.support.emulator import Emulator
from tests.support.otlp import otlp_collector
from tests.support.processes import RouterProcess, return_path
from tests.support.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
ENV = {"RR_TEST_TOKEN": TOKEN, "RR_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET}
TRACING = '\n[tracing]\notlp_endpoint = "http://127.0.0.1:9"\n'


class Lines(logging.Handler):
    """The JSON lines an operator would read: the production filter and formatter, kept in memory."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(logs.ContextFilter())
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.enable(None, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.disable()


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler, root = Lines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_return_is_one_trace_with_its_id_on_the_log_lines(
    tmp_path: Path, key_files: tuple[Path, Path], emulator: Emulator, receiver: Receiver,
    spans: InMemorySpanExporter, lines: Lines,
) -> None:
    receiver.up()
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}",
                                  webhook_url=receiver.url) + '\n[metrics]\nlisten = ""\n' + TRACING)
    settings = load(config, env=ENV)
    assert settings.tracing is not None and settings.tracing.otlp_endpoint == "http://127.0.0.1:9"
    with serve_app(create_app(settings)) as url:
        answer = httpx.post(f"{url}/v1/checkouts", headers=AUTH, timeout=30,
                            json={"merchantReference": "order-traced", "paymentIntent": "AuthorizeWithCapture",
                                  "chargeAmount": {"amount": "14.00", "currencyCode": "USD"}})
        assert answer.status_code == 201, answer.text
        ref = answer.json()["ref"]
        returned = httpx.get(url + return_path(ref, emulator.create_session()), timeout=60,
                             headers={"host": HOST, "x-request-id": "traced.1"})
        assert returned.status_code == 200
        wait_until(lambda: len(receiver.deliveries()) == 1, "the webhook")
        wait_until(lambda: any(s.name == "webhook.deliver" and s.end_time for s in spans.get_finished_spans()),
                   "the delivery span to end")

    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.name == "GET /amazon-pay/result"]
    assert request.kind is SpanKind.SERVER and request.parent is None
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200
    trace_id, span_id = request.context.trace_id, request.context.span_id
    children = [s.name for s in finished if s.parent is not None and s.parent.span_id == span_id]
    assert {"store.bind_and_lease", "store.transition", "amazon_pay.finalize_checkout_session"} <= set(children), \
        children
    [delivery] = [s for s in finished if s.name == "webhook.deliver"]
    assert delivery.context.trace_id == trace_id  # the same trace, across the outbox
    assert delivery.parent is not None and delivery.parent.span_id == span_id
    assert delivery.attributes is not None and delivery.attributes["webhook.delivered"] is True
    assert _children_of(finished, delivery) == ["store.event_delivered"]
    # The reconciler's and the worker's polling make no spans of their own.
    assert not [s.name for s in finished if s.parent is None and s.name.startswith(("store.", "amazon_pay."))]

    of_return = [line for line in lines.lines if line["request_id"] == "traced.1"]
    assert {line["logger"] for line in of_return} >= {"router.checkout.service", "router.webhooks.worker"}
    assert all(line["trace_id"] == format(trace_id, "032x") for line in of_return), of_return
    spans_of_lines = {line["span_id"] for line in of_return}
    assert format(delivery.context.span_id, "016x") in spans_of_lines  # the delivery's line: its own span


def test_serve_sends_its_spans_to_the_otlp_collector(
    tmp_path: Path, key_files: tuple[Path, Path], emulator: Emulator
) -> None:
    """A real `serve` with [tracing] exports OTLP/HTTP (protobuf) to the configured collector."""
    with otlp_collector() as (collector, received):
        config = tmp_path / "router.toml"
        config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}")
                          + f'\n[metrics]\nlisten = ""\n[tracing]\notlp_endpoint = "{collector}/"\n'
                          + 'service_name = "shop-returns"\n')
        router = RouterProcess(config, tmp_path / "router.log").start()
        try:
            ref = router.register(reference="order-otlp")
            assert router.buyer_return(ref, emulator.create_session()).status_code == 200
        finally:
            router.stop()  # the batch is flushed on the way out
        wait_until(lambda: bool(received), "spans at the collector", timeout=20)

    found = [(resource.resource, span) for export in received for resource in export.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    names = {span.name for _, span in found}
    assert {"POST /v1/checkouts", "GET /amazon-pay/result", "store.transition",
            "amazon_pay.finalize_checkout_session"} <= names, names
    service = {a.value.string_value for resource, _ in found for a in resource.attributes if a.key == "service.name"}
    assert service == {"shop-returns"}
    logged = [json.loads(line) for line in router.log_tail(100_000).splitlines() if line.startswith("{")]
    assert [line["tracing"] for line in logged if line["logger"] == "router.start"] == [collector]
    request_trace = next(span.trace_id.hex() for _, span in found if span.name == "GET /amazon-pay/result")
    assert any(line.get("trace_id") == request_trace and line["logger"] == "uvicorn.access" for line in logged)


def _children_of(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    return [s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_tracing_off_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    """A fresh interpreter builds the app from a config without [tracing] and serves requests."""
    config = tmp_path / "router.toml"
    config.write_text(textwrap.dedent(BASE_CONFIG) + f'\n[storage]\nurl = "sqlite:///{tmp_path / "r.db"}"\n')
    script = textwrap.dedent(f"""
        import asyncio, sys
        import httpx
        from router.app import create_app
        from router.cli import main  # everything `serve` imports
        from router.config import ConfigError, load
        app = create_app(load({str(config)!r}))

        async def calls():
            async with app.router.lifespan_context(app):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
                    assert (await c.get("/healthz")).status_code == 200
                    assert (await c.get("/amazon-pay/cancel?ref=nope", headers={{"host": "pay.example.com"}})
                            ).status_code == 200

        asyncio.run(calls())
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
        print("loaded:", loaded)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout, done.stdout


def test_tracing_without_the_extra_is_a_config_error(tmp_path: Path) -> None:
    """The extra missing (its import blocked in a fresh interpreter): `check` fails, naming the key."""
    config = tmp_path / "router.toml"
    config.write_text(textwrap.dedent(BASE_CONFIG) + TRACING)
    script = ("import sys; sys.modules['opentelemetry'] = None\n"  # as if it were not installed
              "from router.cli import main; sys.exit(main(['check', '--config', sys.argv[1]]))")
    done = subprocess.run([sys.executable, "-c", script, str(config)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2  # an invalid config, as for every other problem
    assert "tracing.otlp_endpoint: needs the otel extra" in done.stderr + done.stdout
    assert "pip install 'return-router[otel]'" in done.stderr + done.stdout


@pytest.mark.parametrize(("section", "problem"), [
    ('[tracing]\n', "tracing.otlp_endpoint: is required"),
    ('[tracing]\notlp_endpoint = "collector:4318"\n', "tracing.otlp_endpoint: must be the collector's http(s) URL"),
    ('[tracing]\notlp_endpoint = "http://c:4318"\nsample = 1\n', "tracing.sample: unknown key"),
    ('[tracing]\notlp_endpoint = "http://c:4318"\nservice_name = ""\n', "tracing.service_name: must not be empty"),
])
def test_tracing_config_problems_name_the_key(tmp_path: Path, section: str, problem: str) -> None:
    config = tmp_path / "router.toml"
    config.write_text(textwrap.dedent(BASE_CONFIG) + "\n" + section)
    with pytest.raises(ConfigError) as raised:
        load(config, env={})
    assert any(problem in line for line in raised.value.problems), raised.value.problems


class _Refused(Exception):
    status, reason_code = 400, "InvalidCheckoutSessionStatus"


class _Failing:
    async def finalize(self) -> None:
        raise _Refused("session S01-1234567-1234567-C123456 refused")  # an answer's text may hold ids


async def test_a_failed_call_records_its_type_and_status_never_its_text(spans: InMemorySpanExporter) -> None:
    amazon = tracing.traced(_Failing(), "amazon_pay")
    with tracing.span("outer"), pytest.raises(_Refused):
        await amazon.finalize()
    [failed] = [s for s in spans.get_finished_spans() if s.name == "amazon_pay.finalize"]
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description is None
    assert dict(failed.attributes or {}) == {"error.type": "_Refused", "error.status": 400,
                                             "error.reason_code": "InvalidCheckoutSessionStatus"}
    assert not failed.events  # no exception event: no message, no traceback
    with pytest.raises(_Refused):  # outside any span: no span of its own
        await amazon.finalize()
    assert len([s for s in spans.get_finished_spans() if s.name == "amazon_pay.finalize"]) == 1


def test_traces_url_and_span_names_hold_no_ids() -> None:
    assert tracing.traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert tracing.traces_url("http://c:4318/v1/traces/") == "http://c:4318/v1/traces"
    assert tracing.route_name("/v1/checkout-sessions/S01-1234567-1234567-C123456/finalize") == \
        "/v1/checkout-sessions/{id}/finalize"
    assert tracing.route_name("/amazon-pay/result") == "/amazon-pay/result"
