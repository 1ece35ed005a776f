"""Access lines written directly (router/access_format.py) are the formatters' own text, byte for byte."""

from __future__ import annotations

import io
import json
import logging

import pytest

from router.access_log import Entry, RedactAccessLog, _answered_id, _first, _Writer
from router.logs import JsonFormatter, TextFormatter

IPHONE_INSTAGRAM = (b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                    b"(KHTML, like Gecko) Mobile/15E148 Instagram 300.0")
SESSION = "bd504926-f659-4ad7-a1a9-9a747aaf5275"


def entry(path: str = "/.well-known/apple-app-site-association", query: bytes = b"", status: int = 200,
          duration: float = 0.000123, client: tuple[str, int] | None = ("127.0.0.1", 5555), version: str = "1.1",
          request: list[tuple[bytes, bytes]] | None = None,
          response: list[tuple[bytes, bytes]] | None = None, context: dict[str, str] | None = None) -> Entry:
    request = [(b"host", b"pay.example.com"), (b"user-agent", b"curl/8")] if request is None else request
    response = [(b"content-type", b"text/html"), (b"x-request-id", b"0123abcd")] if response is None else response
    return (1_764_640_000.987654, duration, client, "GET", path, query, version, status, _first(request, b"host"),
            _first(request, b"user-agent"), _answered_id(response), context)


ENTRIES = [
    entry(),
    entry(path="/amazon-pay/result", query=f"ref=r_{SESSION}&amazonCheckoutSessionId={SESSION}".encode()),
    entry(path=f"/x/{SESSION}/y", status=404, duration=0.0),
    entry(path='/100% "quoted" \\ päth', request=[(b"host", b'h"st\\')], client=None),
    entry(version="1.0", request=[(b"user-agent", IPHONE_INSTAGRAM)]),
    entry(response=[(b"x-request-id", b'id"with%quote'), (b"content-length", b"0")]),
    entry(response=[]),
    entry(request=[(b"host", b"pay example.com"), (b"user-agent", b'say "hi"=1')]),  # quoted in text lines
    entry(path="/amazon-pay/cancel", context={"merchant_reference": 'order "7" 100% = ½ \\ 注文'}),
    entry(path="/amazon-pay/cancel", duration=0.0, context={"merchant_reference": "plain-42"}),
    entry(path="/amazon-pay/cancel", context={"merchant_reference": ""}),
    entry(path="/amazon-pay/result", context={"merchant_reference": 'order "7"', "trace_id": "ab" * 16,
                                              "span_id": "cd" * 8}),
]


class Other(RedactAccessLog):
    """The same redaction under another type: the writer must take the LogRecord path."""


def written(filter_type: type[logging.Filter], entries: list[Entry]) -> tuple[list[str], list[str]]:
    logger = logging.Logger("uvicorn.access")  # not registered: nothing else sees it
    logger.addFilter(filter_type())
    streams = io.StringIO(), io.StringIO()
    handlers: list[logging.Handler] = []
    for stream, formatter in zip(streams, (JsonFormatter(), TextFormatter()), strict=True):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handlers.append(handler)
    writer = _Writer(logger, handlers)
    assert (writer._direct() is not None) is (filter_type is RedactAccessLog)  # which path the lines take
    for item in entries:
        writer.put(item)
    writer.write_pending()
    return streams[0].getvalue().splitlines(), streams[1].getvalue().splitlines()


def test_the_direct_lines_are_the_formatters_lines() -> None:
    direct = written(RedactAccessLog, ENTRIES)
    through_records = written(Other, ENTRIES)
    assert len(direct[0]) == len(ENTRIES) and len(direct[1]) == len(ENTRIES)
    assert direct == through_records


def test_a_second_batch_from_the_templates_is_the_same() -> None:
    twice = written(RedactAccessLog, ENTRIES + ENTRIES)
    assert twice[0][: len(ENTRIES)] == twice[0][len(ENTRIES):]


def test_a_merchant_reference_alone_takes_the_template_path() -> None:
    logger = logging.Logger("uvicorn.access")
    logger.addFilter(RedactAccessLog())
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    writer = _Writer(logger, [handler])
    direct = writer._direct()
    assert direct is not None
    lines = writer._direct_lines([ENTRIES[-4], ENTRIES[-3]], direct)[0]
    assert len(writer.templates) == 1  # both cancel lines came from one template, with their own references
    assert [json.loads(line)["merchant_reference"] for line in lines] == ['order "7" 100% = ½ \\ 注文', "plain-42"]


def test_context_fields_reach_the_line() -> None:
    json_lines, text_lines = written(RedactAccessLog, ENTRIES[-1:])
    doc = json.loads(json_lines[0])
    assert doc["merchant_reference"] == 'order "7"' and doc["trace_id"] == "ab" * 16
    assert 'merchant_reference="order \\"7\\""' in text_lines[0]


def test_the_lines_say_what_the_request_was() -> None:
    (json_lines, text_lines) = written(RedactAccessLog, ENTRIES[:3])
    docs = [json.loads(line) for line in json_lines]
    assert docs[0]["message"] == '127.0.0.1:5555 - "GET /.well-known/apple-app-site-association HTTP/1.1" 200'
    assert docs[0]["time"] == "2025-12-02T01:46:40.987Z" and docs[0]["duration_ms"] == 0.1
    assert docs[0]["request_id"] == "0123abcd" and docs[0]["host"] == "pay.example.com"
    assert docs[1]["path"] == "/amazon-pay/result?…" and SESSION not in json_lines[1] + text_lines[1]
    assert docs[2]["path"] == "/x/bd50…5275/y" and docs[2]["status"] == 404
    assert "duration_ms" not in text_lines[2] and "duration_ms=0.1" in text_lines[0]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_another_formatter_takes_the_record_path(formatter: logging.Formatter) -> None:
    class Custom(type(formatter)):  # type: ignore[misc]
        def format(self, record: logging.LogRecord) -> str:
            return "custom " + super().format(record)

    logger = logging.Logger("uvicorn.access")
    logger.addFilter(RedactAccessLog())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Custom())
    writer = _Writer(logger, [handler])
    writer.put(ENTRIES[1])
    writer.write_pending()
    assert stream.getvalue().startswith("custom ") and SESSION not in stream.getvalue()
