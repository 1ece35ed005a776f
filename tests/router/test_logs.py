"""router.logs in-process: the request id rule, the handler the loop writes to, both formats."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys

import pytest

from router import logs
from router.web.server import MaskIds


def test_a_valid_incoming_request_id_is_kept_else_a_new_one() -> None:
    assert logs.request_id_from(b"abc-DEF_1.2") == "abc-DEF_1.2"
    for bad in (b"", b"a b", b"x" * 129, b"\xff", None):
        made = logs.request_id_from(bad)
        assert logs.REQUEST_ID.fullmatch(made) and made != (bad or b"").decode("latin-1")


def test_the_root_logger_only_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        assert logs.setup("json") == "json"
        assert len(root.handlers) == 1 and isinstance(root.handlers[0], logging.handlers.QueueHandler)
    finally:
        logs._stop()
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_the_queued_record_is_the_standard_queue_handlers() -> None:
    def queued(handler_type: type[logging.handlers.QueueHandler], record: logging.LogRecord) -> dict[str, object]:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        handler_type(records).handle(record)
        found = records.get_nowait()
        assert found is not record and record.args is not None  # the original is left to other handlers
        return {k: v for k, v in vars(found).items() if k != "exc_info"} | {"exc_info": found.exc_info}

    try:
        raise ValueError("boom")
    except ValueError:
        failure = sys.exc_info()
    for exc_info in (None, failure):
        made = [logging.LogRecord("router.x", logging.WARNING, "f.py", 3, "checkout %s: %d", ("a…b", 7), exc_info)
                for _ in range(2)]
        mine, standard = queued(logs._Enqueue, made[0]), queued(logging.handlers.QueueHandler, made[1])
        assert mine == {**standard, "created": mine["created"], "msecs": mine["msecs"],
                        "relativeCreated": mine["relativeCreated"]}
        assert mine["msg"] == mine["message"]
        if exc_info is None:
            assert mine["msg"] == "checkout a…b: 7"
        else:
            assert str(mine["msg"]).startswith("checkout a…b: 7\nTraceback") and "ValueError: boom" in str(mine["msg"])


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("router.x", logging.INFO, "", 0, message, None, None)
    token = logs.context.set({"request_id": "r-1", "ref": "abcd…wxyz"})
    try:
        logs.ContextFilter().filter(record)
    finally:
        logs.context.reset(token)
    return record


def test_json_and_text_lines_carry_the_context() -> None:
    doc = json.loads(logs.JsonFormatter().format(_record("hello")))
    assert doc["request_id"] == "r-1" and doc["ref"] == "abcd…wxyz" and doc["message"] == "hello"
    assert doc["level"] == "INFO" and doc["logger"] == "router.x" and doc["time"].endswith("Z")
    line = logs.TextFormatter().format(_record("hello"))
    assert "[r-1]: hello" in line and "ref=abcd…wxyz" in line


class _CountingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def test_the_writer_writes_what_queued_in_one_write_and_drains_at_stop() -> None:
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = _CountingStream()
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(logs.JsonFormatter())
    handler.setLevel(logging.INFO)
    writer = logs.BatchWriter(records, handler)
    for i in range(5):
        records.put(_record(f"line {i}"))
    records.put(logging.LogRecord("router.x", logging.DEBUG, "", 0, "below the level", None, None))
    writer.flush()
    assert len(stream.writes) == 1
    assert [json.loads(line)["message"] for line in stream.writes[0].splitlines()] == [f"line {i}" for i in range(5)]
    writer.start()
    records.put(_record("the last one"))
    writer.stop()  # at once: the record queued just before is written all the same
    assert json.loads(stream.writes[-1])["message"] == "the last one"


def test_a_merchant_reference_cannot_forge_a_line_or_a_field() -> None:
    """merchant_reference is the merchant's text: printable only and bounded, quoted in text lines."""
    assert logs.clean("order-4711") == "order-4711"
    forged = 'o-1\n2026-01-01 00:00:00 ERROR router.x [-]: forged\r\u2028\x85\x1b'
    cleaned = logs.clean(forged)
    assert cleaned.isprintable() and len(cleaned.splitlines()) == 1
    assert cleaned.startswith("o-1\\u000a2026") and cleaned.endswith("\\u2028\\u0085\\u001b")
    assert len(logs.clean("x" * 500)) == logs.MAX_REFERENCE

    record = logging.LogRecord("router.x", logging.INFO, "", 0, "paid", None, None)
    token = logs.context.set({"request_id": "r-1"})
    try:
        logs.noted(_Order('A 1 level=ERROR "q"\n'))
        logs.ContextFilter().filter(record)
    finally:
        logs.context.reset(token)
    line = logs.TextFormatter().format(record)
    assert line.endswith(' merchant_reference="A 1 level=ERROR \\"q\\"\\\\u000a"')  # one quoted field
    assert "\n" not in line
    doc = json.loads(logs.JsonFormatter().format(record))
    assert doc["merchant_reference"] == 'A 1 level=ERROR "q"\\u000a'


def test_noted_needs_a_request_and_scope_ends_with_its_step() -> None:
    assert logs.noted(_Order("o-1")) is not None and logs.context.get() is None  # no request: nothing kept
    assert logs.noted(None) is None
    with logs.scope(ref="abcd…wxyz", merchant_reference="o-2", request_id=None):
        assert logs.context.get() == {"ref": "abcd…wxyz", "merchant_reference": "o-2"}
    assert logs.context.get() is None


class _Order:
    def __init__(self, merchant_reference: str) -> None:
        self.merchant_reference = merchant_reference


def test_a_library_warning_with_a_traceback_is_one_line_unless_debug(capsys: pytest.CaptureFixture[str]) -> None:
    from router.cli import quiet_logs

    quiet_logs()
    pool = logging.getLogger("asyncpg.pool")  # what asyncpg's pool logs while the server is gone
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.TextFormatter())
    pool.addHandler(handler)
    root = logging.getLogger()
    saved = root.level
    try:
        for level in (logging.INFO, logging.DEBUG):
            root.setLevel(level)
            try:
                raise ConnectionRefusedError(111, "Connect call failed")
            except ConnectionRefusedError:
                pool.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
        quiet, verbose = capsys.readouterr().err.split("retrying", 2)[1:]
    finally:
        pool.removeHandler(handler)
        root.setLevel(saved)
    assert quiet.startswith(" (ConnectionRefusedError)") and "Traceback" not in quiet
    assert "Traceback (most recent call last)" in verbose


def test_uvicorn_s_own_lines_show_ids_by_their_ends_at_every_level() -> None:
    """MaskIds (on uvicorn.error and uvicorn.asgi, router/cli.py) masks INFO lines too, not only traces:
    uvicorn's WebSocket line named the whole request target at INFO."""
    session, ref = "bd504926-f659-4ad7-a1a9-9a747aaf5275", "Zq3" + "r" * 29
    target = f"/amazon-pay/result?ref={ref}&amazonCheckoutSessionId={session}"
    for level in (logging.INFO, logging.WARNING, 5):
        record = logging.LogRecord("uvicorn.error", level, "", 0, '%s - "WebSocket %s" %d',
                                   ("127.0.0.1:36578", target, 403), None)
        assert MaskIds().filter(record)
        line = record.getMessage()
        assert session not in line and ref not in line and "bd50…5275" in line, line
        assert line.startswith('127.0.0.1:36578 - "WebSocket /amazon-pay/result?ref=') and line.endswith('" 403')
