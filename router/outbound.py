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

Per request the transport does little beyond aiohttp's own work: a small body that arrived with the head
is taken at once and handed to httpx as bytes (no stream to drive), the aiohttp timeouts and URLs are not
rebuilt or re-quoted, headers are converted once each way. httpx's URL parse (~19 µs for an Amazon URL,
which differs per checkout session) is done once per origin: a plain path, such as each Amazon URL's, is
put in as it is (`_httpx_url`, held equal to httpx.URL by tests/amazon_pay/test_outbound_urls.py).

The client, `OutboundClient` (what `async_client` returns), is an `httpx.AsyncClient` whose
`build_request` and `send` take a lean path for the calls this service makes, because at 100 in flight
httpx's own per-request work (URL merge, two header copies, cookie merge, the auth and redirect
generators, event-hook loops, the response stream wrapper and its reference cycle) was most of the
client's CPU and kept it below 0.9x of the ideal. The lean path produces the request and response httpx
would (tests/amazon_pay/test_outbound_lean.py compares the raw bytes on a socket, the responses and the
exceptions with a plain `httpx.AsyncClient` over the same transport):
- `build_request` is lean for an absolute `str` URL, `bytes` content (or none), a `dict` of `str` headers
  and at most a timeout, on a client without params or cookies. It skips only the merging of what is
  absent (no base URL applies to an absolute URL, no params, no cookies) and builds the headers list in
  the order httpx does: Host, (Content-Length: 0), the client's headers less those the call replaces
  (case-insensitively), the call's, then Content-Length. Anything else (params, json, files, str or
  streamed content, cookies in the jar, a relative URL, list headers) is httpx's own `build_request`.
- `send` is lean when nothing it skips could act: no redirects to follow, no event hooks, no mounts
  (httpx reads proxy variables only when it builds the transport itself, which it never does here:
  `async_client` hands `trust_env` to the aiohttp transport, which applies them), a body already read,
  and an auth that is either none (and no credentials in the URL) or an `InPlaceAuth` whose flow is
  "change the request, send once" and needs no response body (`AmazonPayAuth`): its `sign_request` is
  called directly instead of driving httpx's auth generators, which would call it the same way. A 3xx
  still gets `next_request`; cookies are extracted when the response sets any (so the next request is
  built by httpx with them); httpx's log line is written; a small eager body without Content-Encoding
  becomes the content as it is (httpx would join its one chunk through the identity decoder). Anything
  else is httpx's own `send`.
- The response stream holds its response weakly: httpx's wrapper holds it strongly, a cycle per response
  that only the garbage collector frees; at 100 in flight those collections cost as much as the rest.
The lean path uses a few of httpx's private names (checked by those tests); it is on only for the httpx
minor it was checked on (`LEAN_HTTPX`), else everything is httpx's own code.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import re
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, TypeGuard

import aiohttp
import httpx
import yarl
from httpx._client import BoundAsyncStream, ClientState, UseClientDefault

from router.env_proxy import EnvProxies

_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (  # most specific first
    # The egress proxy refused (a 407 to CONNECT: wrong credentials) or could not be reached: named as the
    # proxy's failure in the logs, not as the target's.
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
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


def _httpx_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(type(exc).__name__, request=request)
    raise AssertionError("unreachable: ClientError is the last entry")


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        raise _httpx_error(exc, request) from exc


# httpx's private names used below and in OutboundClient (the client's state, mounts, transport and default
# encoding; the headers' list; a response's content and byte count) are used only on the httpx minors they
# were checked on; on any other the code takes httpx's public (slower) way. 0.29.0 differs from 0.28.1 only
# in error messages and a new export (FunctionAuth); pyproject keeps installs on these two.
LEAN_HTTPX = httpx.__version__.startswith(("0.28.", "0.29."))


def _wire_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """`headers.multi_items()`: lower-cased names, in order, repeats kept (decoded once per call)."""
    if not LEAN_HTTPX or headers._encoding not in (None, "ascii"):  # an encoding set by hand: httpx's way
        return headers.multi_items()
    try:  # what `headers.encoding` finds when every name and value is ASCII, as they almost always are
        items = [(lower.decode("ascii"), value.decode("ascii")) for _, lower, value in headers._list]
    except UnicodeDecodeError:
        return headers.multi_items()
    headers.encoding = "ascii"  # as httpx's `encoding` property would have remembered it
    return items


def set_headers(headers: httpx.Headers, defaults: Mapping[str, str], replace: Mapping[str, str]) -> None:
    """`headers.setdefault(name, value)` for each default, then `headers[name] = value` for each replacement;
    names given lower-cased. One pass over httpx's list when the headers are ASCII, as they are: httpx's calls
    scan it and encode once each (with `header_values`, ~30 µs of a signed request's ~50 µs of Python)."""
    # setdefault reads first, which fixes the headers' encoding; a plain set uses the one fixed, else UTF-8
    if not LEAN_HTTPX or (fixed := headers.encoding if defaults else headers._encoding) not in (None, "ascii"):
        for name, value in defaults.items():
            headers.setdefault(name, value)
        for name, value in replace.items():
            headers[name] = value
        return
    codec = fixed or "utf-8"
    items = headers._list  # (name as given, lower-cased, value)
    present = {lower for _, lower, _ in items}
    for name, value in defaults.items():
        key = name.encode(codec)
        if key not in present:
            items.append((key, key, value.encode(codec)))
            present.add(key)
    for name, value in replace.items():
        key = name.encode(codec)
        entry = (key, key, value.encode(codec))
        if key not in present:
            items.append(entry)
            present.add(key)
            continue
        found = [index for index, (_, lower, _) in enumerate(items) if lower == key]
        for index in reversed(found[1:]):  # as httpx: the first keeps its place, the repeats go
            del items[index]
        items[found[0]] = entry


def header_values(headers: httpx.Headers) -> dict[str, str]:
    """`dict(headers.items())`: lower-cased names, a repeated header's values joined with ", "."""
    if not LEAN_HTTPX or headers.encoding != "ascii":
        return dict(headers.items())
    values: dict[str, str] = {}
    for _, lower, raw in headers._list:
        name, text = lower.decode("ascii"), raw.decode("ascii")
        values[name] = f"{values[name]}, {text}" if name in values else text
    return values


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> httpx.Headers:
    """`httpx.Headers(raw)` for byte pairs, without coercing each one again."""
    if not LEAN_HTTPX:
        return httpx.Headers(list(raw))
    headers = httpx.Headers()
    headers._list = [(name, name.lower(), value) for name, value in raw]
    return headers


_URLS_KEPT = 256  # parsed URLs remembered: the webhook worker posts to one, Amazon's differ per session
# Both URL types are immutable, so a parse is remembered like the pages' memos (router/web/links.py).
_parsed = functools.lru_cache(maxsize=_URLS_KEPT)(httpx.URL)
_yarl_url = functools.lru_cache(maxsize=_URLS_KEPT)(functools.partial(yarl.URL, encoded=True))  # httpx quoted it
EAGER_BYTES = 64 * 1024  # a body up to this that arrived with the head is taken with it
# An http(s) URL of a name or address, maybe a port, and a path that httpx's parse keeps as it is: non-empty
# segments of unreserved characters (nothing to percent-encode), none of them "." or ".." (nothing to remove),
# no query or fragment. Amazon's URLs are this, one per checkout session, so the remembered parses miss.
_PLAIN_URL = re.compile(r"(https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?)((?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+/?)")
_PLAIN_URL_MAX = 2048  # longer ones take httpx's parse, which also enforces its length limit


def _httpx_url(url: str) -> httpx.URL:
    """`httpx.URL(url)`. For a plain URL (`_PLAIN_URL`) only its origin is parsed (and remembered), and the
    path is put in as it is, which is what httpx's parse would make of it (~3 µs instead of ~19)."""
    match = _PLAIN_URL.fullmatch(url) if LEAN_HTTPX and len(url) <= _PLAIN_URL_MAX else None
    if match is None:
        return _parsed(url)
    origin = _parsed(match[1])
    target = httpx.URL.__new__(httpx.URL)
    target._uri_reference = origin._uri_reference._replace(path=match[2])
    return target


# What aiohttp adds to a request that lacks it (its defaults, a body's or a POST's Content-Type): httpx sent
# the headers it means to send, so each one the request lacks is skipped.
_AUTO_HEADERS = (("accept", "Accept"), ("accept-encoding", "Accept-Encoding"), ("user-agent", "User-Agent"),
                 ("content-type", "Content-Type"))


def _not_given(headers: list[tuple[str, str]]) -> tuple[str, ...] | None:
    """aiohttp's `skip_auto_headers` for these (lower-cased) headers: None when they have all of them, as
    httpx's requests do, which spares aiohttp merging a skip list into a copy of the headers per request."""
    names = {name for name, _ in headers}
    skipped = tuple(title for lower, title in _AUTO_HEADERS if lower not in names)
    return skipped or None


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


class _Eager(httpx.ByteStream):
    """A body read with the head; `identity` when it has no Content-Encoding (httpx's decoding is a no-op)."""

    def __init__(self, body: bytes, identity: bool) -> None:
        super().__init__(body)
        self.body = body
        self.identity = identity


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport sending through one aiohttp session of at most `max_connections` connections."""

    def __init__(self, max_connections: int, ssl_context: ssl.SSLContext | None = None,
                 trust_env: bool = False) -> None:
        self._limit = max_connections
        self._proxies = EnvProxies() if trust_env else None  # read once, not by aiohttp at each request
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
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        headers = _wire_headers(request.headers)
        url = _yarl_url(str(request.url))
        proxy = self._proxies.for_url(url) if self._proxies else None
        try:
            response = await self._client().request(
                request.method,
                url,
                headers=headers,
                skip_auto_headers=_not_given(headers),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
                proxy=proxy,
            )
            stream: httpx.AsyncByteStream
            if response.content.is_eof() and (response.content_length or 0) <= EAGER_BYTES:
                # The whole body came with the head: read() returns it at once and releases the connection.
                # A body still on its way is streamed: a caller that reads only the status line (a webhook)
                # must not wait for, or fail on, a slow or cut-off body.
                stream = _Eager(await response.read(), "Content-Encoding" not in response.headers)
            else:
                stream = _Body(response, request)
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=_headers(response.raw_headers),
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()




# --- the client: httpx's AsyncClient with a lean path for the calls this service makes ----------------


class InPlaceAuth(httpx.Auth):
    """An `httpx.Auth` whose whole flow is "change the request, send it once": `sign_request` does the change.

    Its `auth_flow` works with any httpx client; `OutboundClient` calls `sign_request` directly instead of
    driving the flow's generators (a subclass overriding `auth_flow` or `async_auth_flow` loses that).
    """

    def sign_request(self, request: httpx.Request) -> None:
        raise NotImplementedError

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign_request(request)
        yield request


def _signs_in_place(auth: object) -> TypeGuard[InPlaceAuth]:
    if not isinstance(auth, InPlaceAuth):
        return False
    kind = type(auth)
    return kind.auth_flow is InPlaceAuth.auth_flow and kind.async_auth_flow is httpx.Auth.async_auth_flow


_LOG = logging.getLogger("httpx")  # httpx's own logger: the lean path logs each request as httpx does
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_COOKIE_HEADERS = (b"set-cookie", b"set-cookie2")
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_NO_AUTH: Callable[[httpx.Request], None] = lambda request: None  # noqa: E731


class _Bound(BoundAsyncStream):
    """httpx's stream that sets `response.elapsed` on close, holding its response weakly: httpx's holds it
    strongly, a reference cycle per response that only the garbage collector frees (at 100 in flight its
    collections cost about as much CPU as the rest of httpx's work)."""

    def __init__(self, stream: httpx.AsyncByteStream, response: httpx.Response, start: float) -> None:
        self._stream = stream
        self._owner = weakref.ref(response)
        self.start = start

    async def aclose(self) -> None:
        response = self._owner()
        if response is not None:
            response.elapsed = datetime.timedelta(seconds=time.perf_counter() - self.start)
        await self._stream.aclose()


class OutboundClient(httpx.AsyncClient):
    """httpx.AsyncClient whose `build_request` and `send` take a lean path when it gives the same result.

    See the module docstring for what the lean path skips and when; anything else is httpx's own code.
    """

    # --- requests ---

    def build_request(  # the same signature as httpx's, its types spelled loosely
        self, method: str, url: httpx.URL | str, *, content: Any = None, data: Any = None, files: Any = None,
        json: Any = None, params: Any = None, headers: Any = None, cookies: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT, extensions: Any = None,
    ) -> httpx.Request:
        if (LEAN_HTTPX and type(url) is str and (content is None or type(content) is bytes)
                and data is None and files is None and json is None and params is None and cookies is None
                and extensions is None and (headers is None or type(headers) is dict)
                and not self.params and not self.cookies):
            request = self._lean_request(method, url, content or b"", headers, timeout)
            if request is not None:
                return request
        return super().build_request(
            method, url, content=content, data=data, files=files, json=json, params=params, headers=headers,
            cookies=cookies, timeout=timeout, extensions=extensions,
        )

    def _lean_request(
        self, method: str, url: str, body: bytes, headers: dict[str, str] | None, timeout: Any
    ) -> httpx.Request | None:
        """httpx's request for an absolute URL, bytes and a dict of str headers; None when it is not that."""
        target = _httpx_url(url)
        if not target.is_absolute_url:
            return None
        merged = list(self.headers._list)  # (name as given, lower-cased, value)
        if headers:
            extra = []
            for key, value in headers.items():
                if type(key) is not str or type(value) is not str:
                    return None
                raw = key.encode("ascii")  # as httpx: a non-ASCII name or value raises UnicodeEncodeError
                extra.append((raw, raw.lower(), value.encode("ascii")))
            replaced = {lower for _, lower, _ in extra}  # httpx: the call's headers replace the client's
            merged = [item for item in merged if item[1] not in replaced] + extra
        method = method.upper()
        present = {lower for _, lower, _ in merged}
        if body and b"content-length" not in present:
            merged.append((b"Content-Length", b"content-length", str(len(body)).encode("ascii")))
            present.add(b"content-length")
        auto: list[tuple[bytes, bytes, bytes]] = []  # what httpx puts first
        if b"host" not in present and target.host:
            auto.append((b"Host", b"host", target.netloc))
        if b"content-length" not in present and b"transfer-encoding" not in present and method in _BODY_METHODS:
            auto.append((b"Content-Length", b"content-length", b"0"))
        chosen = self.timeout if isinstance(timeout, UseClientDefault) else httpx.Timeout(timeout)
        request = httpx.Request(method, target, stream=httpx.ByteStream(body), extensions={"timeout": chosen.as_dict()})
        request.headers._list = auto + merged
        request._content = body  # what request.read() sets: its one chunk joined, which is the same bytes
        return request

    # --- sending ---

    async def send(
        self, request: httpx.Request, *, stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        sign = self._lean_signer(request, auth, follow_redirects)
        if sign is None:
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        self._state = ClientState.OPENED
        self._set_timeout(request)
        sign(request)
        response = await self._lean_send(request)
        try:
            if response.status_code in _REDIRECTS and response.has_redirect_location:
                response.next_request = self._build_redirect_request(request, response)  # not followed
            if not stream:
                await self._lean_read(response)
        except BaseException:
            await response.aclose()
            raise
        return response

    def _lean_signer(
        self, request: httpx.Request, auth: object, follow_redirects: object
    ) -> Callable[[httpx.Request], None] | None:
        """What the auth does to `request` when the lean path applies (no redirects to follow, no hooks, no
        mounts, a body already read, an auth that only changes the request); None otherwise."""
        if not LEAN_HTTPX or self._state is ClientState.CLOSED:
            return None
        follow = self.follow_redirects if isinstance(follow_redirects, UseClientDefault) \
            else follow_redirects
        hooks = self._event_hooks
        if follow or hooks["request"] or hooks["response"] or self._mounts:
            return None
        if not isinstance(request.stream, httpx.ByteStream) or "_content" not in request.__dict__:
            return None
        chosen = self._auth if isinstance(auth, UseClientDefault) else auth
        if chosen is None:
            if request.url.userinfo:  # httpx would send BasicAuth from the URL
                return None
            return _NO_AUTH
        if _signs_in_place(chosen) and not chosen.requires_response_body:
            return chosen.sign_request
        return None

    async def _lean_send(self, request: httpx.Request) -> httpx.Response:
        """httpx's `_send_single_request` without a mount lookup; cookies parsed only when some are set."""
        start = time.perf_counter()
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.RequestError as exc:  # as httpx's request_context
            exc.request = request
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.request = request
        response.stream = _Bound(response.stream, response, start)
        if any(lower in _COOKIE_HEADERS for _, lower, _ in response.headers._list):
            self.cookies.extract_cookies(response)
        response.default_encoding = self._default_encoding
        _LOG.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url, response.http_version,
                  response.status_code, response.reason_phrase)
        return response

    @staticmethod
    async def _lean_read(response: httpx.Response) -> None:
        """`response.aread()`; a body our transport read with the head and that needs no decoding is taken
        as it is (httpx would join its one chunk through an identity decoder)."""
        bound = response.stream
        inner = bound._stream if isinstance(bound, BoundAsyncStream) else None  # always one: _lean_send
        if type(inner) is _Eager and inner.identity and isinstance(bound, _Bound):
            response._content = inner.body
            response.is_stream_consumed = True
            response._num_bytes_downloaded = len(inner.body)
            response.is_closed = True  # what aclose() does: _Bound sets elapsed, a ByteStream closes as a no-op
            response.elapsed = datetime.timedelta(seconds=time.perf_counter() - bound.start)
        else:
            await response.aread()


def async_client(
    *,
    max_connections: int,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    trust_env: bool = False,
) -> httpx.AsyncClient:
    """The outbound client: never follows redirects; `trust_env`: the proxy variables (HTTP_PROXY,
    HTTPS_PROXY, NO_PROXY) apply, read once by the transport, which is what sends (router.env_proxy)."""
    return OutboundClient(
        transport=transport or AiohttpTransport(max_connections, trust_env=trust_env),
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        trust_env=trust_env,
    )
