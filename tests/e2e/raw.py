"""Byte-exact HTTP for hostile-input tests: the request target and headers go out as written."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def exchange(base_url: str, request: bytes, timeout: float = 30) -> Answer:
    """Send `request` as is on a new connection; read one response (the server closes or sends a length)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while len(body) < length or (length < 0 and "chunked" not in headers.get("transfer-encoding", "")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    if "chunked" in headers.get("transfer-encoding", ""):
        body = _dechunk(body)
    return Answer(int(lines[0].split()[1]), headers, body)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def get(base_url: str, target: str, host: str = "pay.example.com", *extra: str) -> Answer:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", *extra, "Connection: close", "", ""]
    return exchange(base_url, "\r\n".join(lines).encode("latin-1"))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":  # links a buyer follows (the icon <link> is the template's empty "data:,")
            self.hrefs.extend(value for name, value in attrs if name == "href" and value is not None)


def hrefs(html: str) -> list[str]:
    """Every <a href> in the document, HTML entities decoded (what a browser would follow)."""
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def resolved_host(page_url: str, href: str) -> str | None:
    """The host a browser goes to for `href` on `page_url`, following the WHATWG URL rules that matter
    here: tabs and newlines are removed, and a backslash counts as a slash in http(s) URLs."""
    cleaned = re.sub(r"[\t\n\r]", "", href).strip(" \x00").replace("\\", "/")
    target = urlsplit(urljoin(page_url, cleaned))
    return target.hostname if target.scheme in ("http", "https") else f"{target.scheme}:"


class LogBytes(logging.Handler):
    """Everything logged while attached, formatted as a log file would hold it (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def captured_logs(level: int = logging.INFO) -> Iterator[LogBytes]:
    """Capture the service's and uvicorn's logs at `level` (uvicorn's loggers do not reach the root)."""
    handler = LogBytes()
    handler.setLevel(level)
    outputs = [logging.getLogger(), logging.getLogger("uvicorn")]  # router.* propagates to the root
    service = logging.getLogger("router")
    old_level = service.level
    service.setLevel(level)
    for logger in outputs:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in outputs:
            logger.removeHandler(handler)
        service.setLevel(old_level)
