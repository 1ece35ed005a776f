"""Outbound HTTP clients (Amazon Pay, webhooks): httpx's API over aiohttp's connection pool.

Chosen by measurement (`make bench ARGS=outbound`): at 100 in flight against a local upstream that
answers in 100 ms, httpx 0.28's own pool (httpcore) falls far below the ideal of 1,000 requests/s
with a long p99 tail (httpx issue #3215), while aiohttp's pool stays close to it. httpcore also tries
to import `sniffio` on every request and response close, which was 8% of a return's CPU in the
profile. Callers keep httpx (requests, responses, `httpx.Auth` signing, httpx exceptions); only the
transport underneath is aiohttp's. aiohttp's pool hands free connections to waiters first come first
served, so requests queued above the pool size are answered in order.

This module is small on purpose rather than the `httpx-aiohttp` package: that one maps a refused
connection to `ConnectTimeout` and keeps aiohttp's cookie jar, and our logs and the webhook outbox
record the exception class.

Per request it does little beyond aiohttp's own work (the same benchmark, client CPU per request):
a small body with a Content-Length is read at once and handed to httpx as bytes (no stream to
drive), and the aiohttp timeout and URL are not rebuilt or re-quoted.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp
import httpx
import yarl

_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (  # most specific first
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(type(exc).__name__, request=request) from exc
        raise  # unreachable: ClientError is the last entry


EAGER_BYTES = 64 * 1024  # a body with a Content-Length up to this is read with the head


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body read to the end gives the connection back to the pool; a partly read one closes it.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport sending through one aiohttp session of at most `max_connections` connections."""

    def __init__(self, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limit = max_connections
        # Built here, not on the first request: loading the trust store (httpx's own) takes a while.
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use: aiohttp binds to the running event loop
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies, if any
                auto_decompress=False,  # httpx decodes content-encoding itself
                skip_auto_headers=("Content-Type",),  # httpx already sent the headers it means to send
            )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given: Mapping[str, float | None] = request.extensions.get("timeout", {})
        key = (given.get("pool"), given.get("connect"), given.get("read"))
        found = self._timeouts.get(key)
        if found is None:
            found = aiohttp.ClientTimeout(total=None, connect=key[0], sock_connect=key[1], sock_read=key[2])
            if len(self._timeouts) < 64:
                self._timeouts[key] = found
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        with _as_httpx_errors(request):
            response = await self._client().request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # httpx has quoted it already
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            )
            stream: httpx.AsyncByteStream
            if response.content_length is not None and response.content_length <= EAGER_BYTES:
                stream = httpx.ByteStream(await response.read())  # releases the connection to the pool
            else:
                stream = _Body(response, request)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def async_client(
    *,
    max_connections: int,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    trust_env: bool = False,
) -> httpx.AsyncClient:
    """The outbound client: never follows redirects; `trust_env` as httpx's (proxy variables, netrc)."""
    return httpx.AsyncClient(
        transport=transport or AiohttpTransport(max_connections),
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        trust_env=trust_env,
    )
