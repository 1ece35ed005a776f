"""An egress proxy on a real socket, as squid or tinyproxy forward: a CONNECT tunnel for an https target, an
absolute-form request (`POST http://host/path`) passed on in origin form for an http one. It runs on its own
thread and event loop, so that a router served in another thread (tests.support.serve_app) can send through it.

`hosts` is the proxy's own name resolution (a name only the proxy can reach, as Amazon's API host is for a
merchant behind one); `credentials` makes it answer 407 to a request without that Proxy-Authorization.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

T = TypeVar("T")
# Hop-by-hop headers and the proxy's own: not passed on to the target.
_NOT_FORWARDED = frozenset(("proxy-authorization", "proxy-connection", "connection", "keep-alive"))


@dataclass(frozen=True)
class Seen:
    """One request the proxy received: its request line and its headers (lower-cased names)."""

    line: str
    headers: dict[str, str]


def _head(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    line, *rest = raw.decode("latin-1").split("\r\n")[:-2]
    fields = [(name.strip(), value.strip()) for name, _, value in (item.partition(":") for item in rest)]
    return line, fields


class ForwardProxy:
    def __init__(self, hosts: Mapping[str, str] | None = None, credentials: str | None = None) -> None:
        self.hosts = dict(hosts or {})
        self._auth = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
        self.seen: list[Seen] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="forward-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        # the connections' tasks end on the aborts: let them, so that none is left pending on the closed loop
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            line, fields = _head(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.transport.abort()
            return
        headers = {name.lower(): value for name, value in fields}
        self.seen.append(Seen(line, headers))
        method, target, version = line.split(" ")
        if self._auth is not None and headers.get("proxy-authorization") != self._auth:
            await self._refuse(writer, b"407 Proxy Authentication Required", b"proxy-authenticate: Basic\r\n")
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            prelude = b""
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                await self._refuse(writer, b"400 Bad Request")
                return
            host, port = url.hostname, str(url.port or 80)
            origin_form = (url.path or "/") + (f"?{url.query}" if url.query else "")
            kept = "".join(f"{name}: {value}\r\n" for name, value in fields if name.lower() not in _NOT_FORWARDED)
            prelude = f"{method} {origin_form} {version}\r\n{kept}connection: close\r\n\r\n".encode("latin-1")
        try:
            upstream_reader, upstream = await asyncio.open_connection(self.hosts.get(host, host), int(port))
        except OSError:
            await self._refuse(writer, b"502 Bad Gateway")
            return
        self._writers.add(upstream)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream.write(prelude)
        await asyncio.gather(self._pump(reader, upstream), self._pump(upstream_reader, writer))

    @staticmethod
    async def _refuse(writer: asyncio.StreamWriter, status: bytes, extra: bytes = b"") -> None:
        writer.write(b"HTTP/1.1 " + status + b"\r\n" + extra + b"content-length: 0\r\nconnection: close\r\n\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side closed: so does the other, as a proxy's tunnel does


@contextlib.contextmanager
def forward_proxy(hosts: Mapping[str, str] | None = None, credentials: str | None = None) -> Iterator[ForwardProxy]:
    """A `ForwardProxy` listening on 127.0.0.1 (`.url`) until the block ends."""
    proxy = ForwardProxy(hosts, credentials)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def proxy_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Exactly these proxy variables (upper-case names, and any other variable given) in the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
