"""tests.store.tcp_proxy.TcpProxy on its own thread and event loop, driven by blocking calls, so
synchronous tests can cut a router (a separate process) off its database."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tests.store.tcp_proxy import TcpProxy

T = TypeVar("T")


class ThreadedProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._proxy = TcpProxy(target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._proxy.port

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> int:
        """Listen on 127.0.0.1 (the same port as before when restarted); return the port."""
        return self._call(self._proxy.start())

    def stop(self) -> None:
        self._call(self._proxy.stop())

    def freeze(self) -> None:
        """Hold all traffic from now on; connections stay open."""
        self._call(self._proxy.freeze())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def via_proxy(url: str, proxy: ThreadedProxy) -> str:
    """The PostgreSQL URL `url`, reaching the server through `proxy`."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
