"""Access lines written directly: the text `router.logs`' formatters give a `uvicorn.access` record.

The access log writer (router/access_log.py) would otherwise build a LogRecord, run the filter and
the formatter for every request: about 20 µs of CPU per line, as much as serving an association
file. Most of a line repeats (method, redacted target, status, host, platform), so each distinct
combination becomes a %-template once; a line is then one `%` with the time, the client address,
the request id, the duration and the order's merchant_reference (a return's and a cancel's lines
have one). tests/router/test_access_format.py checks the text against the formatters' own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from router.logs import JsonFormatter, TextFormatter, text_value

# (created, client address, request id, duration_ms, merchant_reference or None) → the line
Line = Callable[[float, str, str, float, "str | None"], str]
# (method, target as redacted, http version, status, host, platform) → Line
Template = Callable[[str, str, str, int, "str | None", str], Line]

_text = json.encoder.encode_basestring  # json.dumps(ensure_ascii=False)'s string encoder


def _inner(value: str) -> str:
    return _text(value)[1:-1]


def _literal(value: str) -> str:
    return value.replace("%", "%%")


class _PerSecond:
    """strftime once per second of log time, not once per line."""

    def __init__(self, fmt: str, convert: Callable[[float | None], time.struct_time]) -> None:
        self.fmt, self.convert = fmt, convert
        self.second, self.text = -1, ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self.second:
            self.second, self.text = second, time.strftime(self.fmt, self.convert(created))
        return self.text


def _request_line(method: str, target: str, version: str, status: int) -> str:
    return f' - "{method} {target} HTTP/{version}" {status:d}'  # ACCESS_FORMAT after the client address


def json_template() -> Template:
    stamp = _PerSecond("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def template(method: str, target: str, version: str, status: int, host: str | None, platform: str) -> Line:
        fields = f'"method": {_text(method)}, "path": {_text(target)}, "status": {status!r}, "duration_ms": '
        rest = (f', "host": {_text(host)}' if host is not None else "") + f', "platform": {_text(platform)}}}'
        form = ('{"time": "%s.%03dZ", "level": "INFO", "logger": "uvicorn.access", "message": "%s'
                + _literal(_inner(_request_line(method, target, version, status))) + '", "request_id": %s, %s'
                + _literal(fields) + "%r" + _literal(rest))

        def line(created: float, address: str, request_id: str, duration_ms: float, reference: str | None) -> str:
            order = f'"merchant_reference": {_text(reference)}, ' if reference is not None else ""
            return form % (stamp(created), (created - int(created)) * 1000, _inner(address), _text(request_id),
                           order, duration_ms)

        return line

    return template


def text_template(formatter: TextFormatter) -> Template:
    stamp = _PerSecond(formatter.default_time_format, formatter.converter)

    def template(method: str, target: str, version: str, status: int, host: str | None, platform: str) -> Line:
        rest = "".join(f" {name}={text_value(value)}" for name, value in (("host", host), ("platform", platform))
                       if value)
        form = ("%s,%03d INFO uvicorn.access [%s]: %s" + _literal(_request_line(method, target, version, status))
                + "%s" + _literal(rest))

        def line(created: float, address: str, request_id: str, duration_ms: float, reference: str | None) -> str:
            took = f" merchant_reference={text_value(reference)}" if reference else ""
            took += f" duration_ms={duration_ms}" if duration_ms else ""
            return form % (stamp(created), (created - int(created)) * 1000, request_id, address, took)

        return line

    return template


def template_for(formatter: logging.Formatter | None) -> Template | None:
    """The direct form of exactly these formatters (a subclass may format differently), else None."""
    if type(formatter) is JsonFormatter:
        return json_template()
    if type(formatter) is TextFormatter:
        return text_template(formatter)
    return None
