"""How `serve` runs uvicorn: bounded headers, a deadline for each request head, bounded concurrency.

uvicorn's default parser (httptools) buffers unfinished headers without limit, and uvicorn has no
timeout for a request head sent one byte at a time (its keep-alive timer only runs between
requests). So `serve` uses uvicorn's h11 protocol, whose receive buffer is bounded, with one
addition: a deadline from a connection's first byte (or its opening) to the end of each request's
headers. A client that misses it gets a 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from router.config import ServerSettings
from router.redact import mask

log = logging.getLogger("router.web.server")

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_header_timeout = ServerSettings.header_timeout_seconds


def set_header_timeout(seconds: float) -> None:
    """Set by the app factory in each worker process, from the config it loaded."""
    global _header_timeout
    _header_timeout = seconds


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_timer is None:
            self._arm()  # the next request on a kept-alive connection starts its own deadline
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is complete: the app now has the request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(_header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.debug("closing a connection that sent no complete request head within %ss", _header_timeout)
        self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


# What a session id or a ref looks like in a log line: 16 or more id characters, at least one a digit.
_ID_LIKE = re.compile(r"(?<![A-Za-z0-9_-])(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])", re.ASCII)


class MaskIds(logging.Filter):
    """uvicorn's trace lines (each ASGI scope, path and query included) with ids shown by their ends only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.DEBUG:
            record.msg = _ID_LIKE.sub(lambda m: mask(m.group()), record.getMessage())
            record.args = None
        return True


def uvicorn_options(server: ServerSettings) -> dict[str, Any]:
    """The keyword arguments `serve` gives uvicorn.run for [server]."""
    return {
        "http": HeaderDeadlineProtocol,
        "h11_max_incomplete_event_size": server.max_header_bytes,
        "limit_concurrency": server.limit_concurrency,
        "timeout_keep_alive": server.keep_alive_seconds,
    }
