"""router.outbound's lean path against httpx's own code, on real sockets: the same bytes on the wire, the same
responses, the same exceptions; and the cases where the lean path must step aside.

Each comparison sends the same call through `OutboundClient` (the lean path, counted so a test fails if it
stopped being taken) and through a plain `httpx.AsyncClient` over the same transport class.
"""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from router.amazon_pay.emulator.auth import IncomingRequest, authenticate
from router.amazon_pay.signing import AmazonPayAuth
from router.outbound import AiohttpTransport, OutboundClient, async_client
from router.store.base import OutboxEvent
from router.webhooks.worker import post_event
from tests.amazon_pay.helpers import SANDBOX_KEY_ID, KeyPair
from tests.support import free_port

TIMEOUT = httpx.Timeout(5)
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}"
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
_SIGNATURE = re.compile(rb"Signature=[A-Za-z0-9+/=]+")


class Upstream:
    """A bare HTTP/1.1 server on a real socket: records each request's raw bytes, answers `answer`."""

    def __init__(self, answer: bytes = OK) -> None:
        self.answer = answer
        self.raw: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _LENGTH.search(head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                self.raw.append(head + body)
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often OutboundClient built a request and sent one on its lean path."""
    calls = {"build": 0, "send": 0}
    build, send = OutboundClient._lean_request, OutboundClient._lean_send

    def counted_build(self: OutboundClient, *args: Any) -> httpx.Request | None:
        calls["build"] += 1
        return build(self, *args)

    async def counted_send(self: OutboundClient, request: httpx.Request) -> httpx.Response:
        calls["send"] += 1
        return await send(self, request)

    monkeypatch.setattr(OutboundClient, "_lean_request", counted_build)
    monkeypatch.setattr(OutboundClient, "_lean_send", counted_send)
    return calls


def clients(headers: Any = None) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """(the lean client, plain httpx over the same transport class), configured alike."""
    options: dict[str, Any] = {"timeout": TIMEOUT, "headers": headers, "follow_redirects": False, "trust_env": False}
    return (OutboundClient(transport=AiohttpTransport(2), **options),
            httpx.AsyncClient(transport=AiohttpTransport(2), **options))


Call = Callable[[httpx.AsyncClient, str], Awaitable[object]]


async def both(call: Call, headers: Any = None, answer: bytes = OK) -> tuple[list[Any], list[bytes]]:
    """Run `call` through each client against one upstream: (what each returned, the raw request of each)."""
    results = []
    async with Upstream(answer) as upstream:
        for client in clients(headers):
            async with client:
                results.append(await call(client, upstream.url))
    assert len(upstream.raw) == 2
    return results, upstream.raw


def post(path: str, **kwargs: Any) -> Call:
    async def call(client: httpx.AsyncClient, url: str) -> object:
        return await client.post(url + path, **kwargs)
    return call


def request(method: str, path: str, **kwargs: Any) -> Call:
    async def call(client: httpx.AsyncClient, url: str) -> object:
        return await client.request(method, url + path, **kwargs)
    return call


WIRE_CASES: dict[str, tuple[Call, Any]] = {
    "get with a repeated, encoded query": (
        request("GET", "/p/a%20b/~x;y?b=2&a=1&a=0&q=%2Fx+y&e=&%C3%A9=%E2%82%AC"), None),
    "post bytes, call headers replace client ones case-insensitively": (
        post("/hooks", content=b'{"a":1}', headers={"Accept": "text/plain", "X-One": "1"}),
        {"accept": "application/json", "user-agent": "rr-test"}),
    "post without a body": (post("/empty"), None),
    "put with the caller's own content-length": (
        request("PUT", "/put", content=b"abc", headers={"Content-Length": "3"}), None),
    "a caller's host header": (request("GET", "/h", headers={"Host": "example.test"}), None),
    "repeated client headers, one replaced by the call": (
        request("DELETE", "/d", headers={"x-other": "b"}),
        httpx.Headers([("x-rep", "1"), ("X-Rep", "2"), ("x-other", "a")])),
    "repeated client headers kept": (
        request("PATCH", "/p", content=b"z"), httpx.Headers([("x-rep", "1"), ("x-rep", "2")])),
    "a timeout per call": (request("GET", "/t", timeout=3.0), None),
}


@pytest.mark.parametrize("case", list(WIRE_CASES))
async def test_the_lean_path_sends_the_bytes_httpx_sends(case: str, lean_calls: dict[str, int]) -> None:
    call, headers = WIRE_CASES[case]
    _, (lean, plain) = await both(call, headers)
    assert lean == plain
    assert lean_calls == {"build": 1, "send": 1}


def incoming(raw: bytes) -> IncomingRequest:
    """The emulator's view of a raw HTTP/1.1 request."""
    head, _, body = raw.partition(b"\r\n\r\n")
    start, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = start.split(" ")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    path, _, query = target.partition("?")
    return IncomingRequest(method, path, query, headers, body)


async def test_signed_requests_match_but_for_the_signature_and_both_verify(keys: KeyPair,
                                                                         lean_calls: dict[str, int]) -> None:
    now = datetime.now(UTC)
    auth = AmazonPayAuth(SANDBOX_KEY_ID, keys.private_key, "us", clock=lambda: now)

    async def call(client: httpx.AsyncClient, url: str) -> object:
        built = client.build_request("POST", url + "/v2/checkoutSessions/a%2Fb~c/finalize?x=1&x=0&a=%20",
                                     content=b'{"chargeAmount":{"amount":"1.00"}}',
                                     headers={"x-amz-pay-idempotency-key": "k-1", "accept": " application/json "})
        built.headers["x-request-id"] = "req-1"  # what the Amazon client adds after building, never signed
        return await client.send(built, auth=auth)

    _, (lean, plain) = await both(call, {"user-agent": "rr-test", "content-type": "application/json"})
    assert b"authorization: AMZN-PAY-RSASSA-PSS-V2 PublicKeyId=" in lean  # PSS signatures differ per call
    assert _SIGNATURE.sub(b"Signature=-", lean) == _SIGNATURE.sub(b"Signature=-", plain)
    public = {SANDBOX_KEY_ID: keys.private_key.public_key()}
    for raw in (lean, plain):
        assert authenticate(incoming(raw), public, now, 60) == SANDBOX_KEY_ID
    assert lean_calls == {"build": 1, "send": 1}


async def test_webhook_posts_are_the_same_bytes(lean_calls: dict[str, int]) -> None:
    event = OutboxEvent(id="evt_1", ref="ref_1", type="checkout.completed", created=1.0, body=b'{"id":"evt_1"}', seq=1)

    async def call(client: httpx.AsyncClient, url: str) -> object:
        return await post_event(client, url + "/hooks", "whsec_x", event, 1_700_000_000, 5.0, request_id="r-1")

    (lean_result, plain_result), (lean, plain) = await both(call)
    assert lean == plain and lean_result == plain_result
    assert lean_calls == {"build": 1, "send": 1}


def answer(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


ANSWERS = {
    "json": answer("200 OK", [("content-type", "application/json; charset=utf-8")], b'{"a":"\xc3\xa9"}'),
    "error, repeated headers, a cookie": answer(
        "404 Not Found", [("x-rep", "1"), ("X-Rep", "2"), ("set-cookie", "sid=1; Path=/")], b"nope"),
    "redirect (not followed)": answer("302 Found", [("location", "/elsewhere?a=1")], b""),
    "gzip": answer("200 OK", [("content-encoding", "gzip")], gzip.compress(b"hello " * 50)),
    "no content": answer("204 No Content", [], b""),
}


def summary(response: httpx.Response, client: httpx.AsyncClient, read: bool = True) -> tuple[object, ...]:
    content = (response.content, response.text) if read else ()
    return (response.status_code, response.reason_phrase, response.http_version, response.headers.multi_items(),
            content, response.encoding, response.is_closed, response.is_stream_consumed,
            response.num_bytes_downloaded, type(response.elapsed), response.history,
            response.next_request and (response.next_request.method, str(response.next_request.url)),
            response.request.method, str(response.request.url), response.request.headers.multi_items(),
            dict(client.cookies))


@pytest.mark.parametrize("case", list(ANSWERS))
async def test_responses_come_back_as_httpx_builds_them(case: str, lean_calls: dict[str, int]) -> None:
    async def call(client: httpx.AsyncClient, url: str) -> object:
        return summary(await client.get(url + "/r"), client)

    (lean, plain), _ = await both(call, answer=ANSWERS[case])
    assert lean == plain
    assert lean_calls["send"] == 1


async def test_a_streamed_response_reads_the_same(lean_calls: dict[str, int]) -> None:
    async def call(client: httpx.AsyncClient, url: str) -> object:
        async with client.stream("GET", url + "/s") as response:
            before = (response.is_stream_consumed, response.is_closed)
            chunks = [chunk async for chunk in response.aiter_raw()]
            return before, chunks, summary(response, client, read=False)

    (lean, plain), _ = await both(call, answer=ANSWERS["json"])
    assert lean == plain
    assert lean_calls["send"] == 1


@pytest.mark.parametrize("which", ["lean", "plain"])
async def test_transport_errors_map_the_same_on_both_paths(which: str) -> None:
    client = clients()[0 if which == "lean" else 1]
    async with client:
        refused = client.build_request("GET", f"http://127.0.0.1:{free_port()}/")
        with pytest.raises(httpx.ConnectError) as error:
            await client.send(refused)
        assert error.value.request is refused
    async with Upstream(answer=b"") as silent:  # reads the request, never answers
        client = clients()[0 if which == "lean" else 1]
        client.timeout = httpx.Timeout(5, read=0.05)
        async with client:
            waiting = client.build_request("GET", silent.url + "/slow")
            with pytest.raises(httpx.ReadTimeout) as timeout:
                await client.send(waiting)
            assert timeout.value.request is waiting


@pytest.mark.parametrize("given", [
    {}, {"Accept": "*/*"}, {"user-agent": "rr-test", "content-type": "text/plain"},
    {"Accept": "a", "Accept-Encoding": "identity", "User-Agent": "u", "Content-Type": "application/json"},
])
@pytest.mark.parametrize(("method", "body"), [("POST", b'{"a":1}'), ("POST", b""), ("GET", b"")])
async def test_the_transport_sends_the_request_headers_and_no_others(given: dict[str, str], method: str,
                                                                     body: bytes) -> None:
    """aiohttp adds Accept, Accept-Encoding, User-Agent and a Content-Type to a request that lacks them unless
    told to skip them: what goes out is the httpx request's headers, whichever of those it has."""
    transport = AiohttpTransport(1)
    async with Upstream() as upstream:
        sent = httpx.Request(method, upstream.url + "/h", headers=given, content=body)
        response = await transport.handle_async_request(sent)
        await response.aread()
        await transport.aclose()
    head = upstream.raw[0].split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    wire = sorted((name.lower(), value) for name, _, value in (line.partition(b": ") for line in head))
    assert wire == sorted((name.lower(), value) for name, value in sent.headers.raw)


async def test_the_lean_path_steps_aside_for_what_it_does_not_do(lean_calls: dict[str, int]) -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with Upstream(answer=ANSWERS["redirect (not followed)"]) as upstream:
        async with async_client(max_connections=1, timeout=TIMEOUT) as client:
            client.event_hooks = {"request": [hook], "response": []}
            await client.get(upstream.url + "/hooked")  # built lean (hooks run at send), sent by httpx
            assert (seen, lean_calls) == (["/hooked"], {"build": 1, "send": 0})
            client.event_hooks = {"request": [], "response": []}
            with pytest.raises(httpx.TooManyRedirects):  # httpx's loop: this upstream always redirects
                await client.get(upstream.url + "/followed", follow_redirects=True, params={"n": "1"})
            assert lean_calls == {"build": 1, "send": 0}
            await client.get(upstream.url + "/basic", auth=("user", "pass"))  # built lean, httpx's BasicAuth
            assert lean_calls == {"build": 2, "send": 0}
            await client.post(upstream.url + "/text", content="str body")  # built by httpx, then sent lean
            assert lean_calls == {"build": 2, "send": 1}
    assert [raw.count(b"authorization: Basic dXNlcjpwYXNz") for raw in upstream.raw[-2:]] == [1, 0]


async def test_cookies_set_by_a_lean_response_are_sent_by_httpx_next(lean_calls: dict[str, int]) -> None:
    async with Upstream(answer=ANSWERS["error, repeated headers, a cookie"]) as upstream:
        async with async_client(max_connections=1, timeout=TIMEOUT) as client:
            await client.get(upstream.url + "/first")
            await client.get(upstream.url + "/second")
    assert lean_calls == {"build": 1, "send": 2}  # the second built by httpx: it carries the jar's cookie
    assert b"\r\ncookie: sid=1\r\n" in upstream.raw[1]



async def test_non_ascii_header_values_go_out_as_httpx_sends_them(lean_calls: dict[str, int]) -> None:
    async def call(client: httpx.AsyncClient, url: str) -> object:
        built = client.build_request("GET", url + "/utf8")
        built.headers["x-name"] = "José"  # httpx encodes it as UTF-8 (no encoding chosen yet)
        return await client.send(built)

    _, (lean, plain) = await both(call)
    assert lean == plain and "x-name: José".encode() in lean
    assert lean_calls == {"build": 1, "send": 1}
