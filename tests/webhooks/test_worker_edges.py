"""The delivery worker against raw sockets that behave as real receivers and proxies do at their edges:
a 2xx whose body trickles in or is cut off, and an egress proxy named by HTTP_PROXY (with credentials, or
bypassed by NO_PROXY)."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from router.store.base import Store
from router.webhooks.schedule import RetrySchedule
from router.webhooks.worker import WebhookWorker
from tests.support.forward_proxy import proxy_env
from tests.webhooks.outbox import SECRET, Clock, add_event

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> list[bytes]:
    """The request line and the header lines; the body is read and dropped."""
    lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[:-2]
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return lines


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The request line; the head and body are read and dropped."""
    return (await read_head(reader))[0]


def header(lines: list[bytes], name: bytes) -> bytes | None:
    return next((line.split(b":", 1)[1].strip() for line in lines[1:] if line.lower().startswith(name + b":")), None)


def answering_204(heads: list[list[bytes]]) -> Handler:
    """A receiver, or an HTTP proxy, that keeps each request's head and answers 204."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_head(reader))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
    return answer


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()


def worker(store: Store, url: str, clock: Clock, timeout: float) -> WebhookWorker:
    return WebhookWorker(store, url, SECRET, clock=clock, rng=random.Random(0), timeout=timeout,
                         lease_seconds=timeout + 5, schedule=RetrySchedule(jitter=0))


async def trickle_chunked(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for _ in range(20):  # "ok" a byte every 0.1 s: two seconds against a one-second timeout
        writer.write(b"1\r\nk\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
    writer.write(b"0\r\n\r\n")


async def trickle_sized(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n")
    for _ in range(20):  # the same pace, with the length announced
        writer.write(b"k")
        await writer.drain()
        await asyncio.sleep(0.1)


async def cut_off(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")  # then the connection closes
    await writer.drain()


@pytest.mark.parametrize("body", [trickle_chunked, trickle_sized, cut_off])
async def test_a_2xx_whose_body_trickles_or_is_cut_off_is_delivered(
    store: Store, clock: Clock, raw_server: Callable[[Handler], Awaitable[int]],
    body: Callable[[asyncio.StreamWriter], Awaitable[None]],
) -> None:
    """The status line is the answer (docs/backend.md): sending the event again would be a duplicate."""
    requests: list[bytes] = []

    async def acknowledge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        await body(writer)
        writer.close()

    port = await raw_server(acknowledge)
    event = await add_event(store, clock(), "completed")
    async with worker(store, f"http://127.0.0.1:{port}/hooks", clock, timeout=1.0) as sender:
        started = asyncio.get_running_loop().time()
        assert await sender.run_once() == 1
        assert asyncio.get_running_loop().time() - started < 1.8  # still within the timeout, not the body's pace
    stored = await store.get_event(event.id)
    assert stored is not None and stored.status == "delivered" and stored.attempts == 1, stored
    assert requests == [b"POST /hooks HTTP/1.1"]


async def test_a_status_that_never_comes_is_still_a_timeout(
    store: Store, clock: Clock, raw_server: Callable[[Handler], Awaitable[int]]
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(3)
        writer.close()

    port = await raw_server(never_answer)
    event = await add_event(store, clock(), "completed")
    async with worker(store, f"http://127.0.0.1:{port}/hooks", clock, timeout=0.5) as sender:
        assert await sender.run_once() == 0
    stored = await store.get_event(event.id)
    assert stored is not None and stored.status == "pending" and stored.last_error in {"Timeout", "ReadTimeout"}


async def test_deliveries_go_through_the_proxy_that_http_proxy_names(
    store: Store, clock: Clock, raw_server: Callable[[Handler], Awaitable[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    heads: list[list[bytes]] = []
    port = await raw_server(answering_204(heads))
    proxy_env(monkeypatch, HTTP_PROXY=f"http://127.0.0.1:{port}")
    event = await add_event(store, clock(), "completed")
    async with worker(store, "http://backend.invalid/hooks", clock, timeout=3.0) as sender:  # no such host
        assert await sender.run_once() == 1
    assert [head[0] for head in heads] == [b"POST http://backend.invalid/hooks HTTP/1.1"]  # the form a proxy gets
    stored = await store.get_event(event.id)
    assert stored is not None and stored.status == "delivered"


async def test_the_proxy_urls_credentials_go_to_the_proxy_only(
    store: Store, clock: Clock, raw_server: Callable[[Handler], Awaitable[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    heads: list[list[bytes]] = []
    port = await raw_server(answering_204(heads))
    proxy_env(monkeypatch, HTTP_PROXY=f"http://egress:s3cr%40t@127.0.0.1:{port}")  # the password is "s3cr@t"
    await add_event(store, clock(), "completed")
    async with worker(store, "http://backend.invalid/hooks", clock, timeout=3.0) as sender:
        assert await sender.run_once() == 1
    [head] = heads
    assert head[0] == b"POST http://backend.invalid/hooks HTTP/1.1"
    assert header(head, b"proxy-authorization") == b"Basic " + base64.b64encode(b"egress:s3cr@t")
    assert header(head, b"authorization") is None


async def test_a_host_no_proxy_names_is_reached_directly(
    store: Store, clock: Clock, raw_server: Callable[[Handler], Awaitable[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    through_proxy: list[list[bytes]] = []
    direct: list[list[bytes]] = []
    proxy_port, receiver_port = await raw_server(answering_204(through_proxy)), await raw_server(answering_204(direct))
    proxy_env(monkeypatch, HTTP_PROXY=f"http://127.0.0.1:{proxy_port}", NO_PROXY="localhost,127.0.0.1")
    await add_event(store, clock(), "completed")
    async with worker(store, f"http://127.0.0.1:{receiver_port}/hooks", clock, timeout=3.0) as sender:
        assert await sender.run_once() == 1
    assert through_proxy == [] and [head[0] for head in direct] == [b"POST /hooks HTTP/1.1"]


async def test_a_netrc_entry_for_the_receiver_is_not_sent_to_it(
    store: Store, clock: Clock, raw_server: Callable[[Handler], Awaitable[int]], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """aiohttp's trust_env sends ~/.netrc's entry for the target host as Basic auth; the worker reads only
    the proxy variables (router.env_proxy)."""
    heads: list[list[bytes]] = []
    port = await raw_server(answering_204(heads))
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login operator password not-for-the-merchant\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    proxy_env(monkeypatch)
    await add_event(store, clock(), "completed")
    async with worker(store, f"http://127.0.0.1:{port}/hooks", clock, timeout=3.0) as sender:
        assert await sender.run_once() == 1
    [head] = heads
    assert head[0] == b"POST /hooks HTTP/1.1" and header(head, b"authorization") is None
