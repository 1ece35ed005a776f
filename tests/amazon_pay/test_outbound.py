"""router.outbound: httpx's API over aiohttp's pool, against real servers on real sockets."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.outbound import async_client
from tests.support import free_port, serve_app
from tests.support.forward_proxy import forward_proxy

TIMEOUT = httpx.Timeout(5)
seen: list[dict[str, str]] = []
order: list[int] = []


async def echo(request: Request) -> Response:
    seen.append(dict(request.headers))
    body = await request.body()
    return Response(body, headers={"set-cookie": "sid=1", "x-n": str(len(body))}, media_type="text/plain")


async def gzipped(request: Request) -> Response:
    return Response(gzip.compress(b"hello " * 100), headers={"content-encoding": "gzip"})


async def large(request: Request) -> Response:
    return Response(b"x" * 2_000_000)


async def slow(request: Request) -> Response:
    order.append(int(request.query_params["n"]))
    await asyncio.sleep(0.05)
    return Response(b"ok")


APP = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]), Route("/gzip", gzipped),
                        Route("/large", large), Route("/slow", slow)])


@pytest.fixture(scope="module")
def url() -> object:
    with serve_app(APP) as base:
        yield base


async def test_sends_httpx_headers_and_body_as_given_and_cookies_once(url: str) -> None:
    seen.clear()
    async with async_client(max_connections=2, timeout=TIMEOUT, headers={"user-agent": "rr-test"}) as client:
        first = await client.post(url + "/echo", content=b'{"a":1}', headers={"content-type": "application/json"})
        assert (await client.get(url + "/echo")).status_code == 200
    assert (first.status_code, first.content, first.headers["x-n"]) == (200, b'{"a":1}', "7")
    assert first.http_version == "HTTP/1.1" and first.reason_phrase == "OK"
    assert seen[0]["content-type"] == "application/json" and seen[0]["user-agent"] == "rr-test"
    assert "content-type" not in seen[1]  # nothing added to a GET without a body
    assert seen[1]["cookie"] == "sid=1"  # httpx's cookie jar, as before; aiohttp's keeps none to add twice


async def test_httpx_decodes_content_encoding(url: str) -> None:
    async with async_client(max_connections=1, timeout=TIMEOUT) as client:
        assert (await client.get(url + "/gzip")).text == "hello " * 100


async def test_refused_connection_is_httpx_connect_error() -> None:
    async with async_client(max_connections=1, timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/")


@pytest.mark.parametrize("refusing", [True, False])
async def test_an_egress_proxy_that_refuses_or_is_not_there_is_httpx_proxy_error(
    refusing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 407 to the CONNECT (credentials missing), or no proxy listening: the proxy's failure, not Amazon's."""
    with forward_proxy(credentials="egress:secret") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url if refusing else f"http://127.0.0.1:{free_port()}")
        async with async_client(max_connections=1, timeout=TIMEOUT, trust_env=True) as client:
            with pytest.raises(httpx.ProxyError):
                await client.get("https://pay-api.amazon.invalid/v2/x")
    assert [seen.line for seen in proxy.seen] == (["CONNECT pay-api.amazon.invalid:443 HTTP/1.1"] if refusing else [])


async def test_read_timeout_is_httpx_read_timeout(url: str) -> None:
    async with async_client(max_connections=1, timeout=httpx.Timeout(5, read=0.01)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url + "/slow?n=0")


async def test_a_partly_read_body_closes_its_connection_and_the_pool_goes_on(url: str) -> None:
    async with async_client(max_connections=1, timeout=TIMEOUT) as client:
        async with client.stream("GET", url + "/large") as response:
            async for _chunk in response.aiter_raw():
                break
        assert (await client.get(url + "/echo")).status_code == 200


async def test_requests_queued_above_the_pool_are_served_in_arrival_order(url: str) -> None:
    order.clear()
    async with async_client(max_connections=1, timeout=TIMEOUT) as client:
        async def one(n: int) -> None:
            await client.get(f"{url}/slow?n={n}")

        tasks = []
        for n in range(8):
            tasks.append(asyncio.create_task(one(n)))
            await asyncio.sleep(0.005)  # arrive in this order
        await asyncio.gather(*tasks)
    assert order == list(range(8))
