"""router.logs in-process: the request id rule, the handler the loop writes to, both formats."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue

import pytest

from router import logs


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
        assert [type(h) for h in root.handlers] == [logging.handlers.QueueHandler]
    finally:
        logs._stop()
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


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
