"""A stand-in upstream for the outbound benchmarks: answers every request after a fixed latency.

A bare asyncio protocol (uvloop when installed), not an ASGI app under uvicorn: it spends about a
tenth of uvicorn's CPU per request, so at 1,000 requests/s it is not what limits the client being
measured (the benchmarks print its CPU per request to show it). HTTP/1.1 with Content-Length
bodies and keep-alive, which is what httpx and aiohttp send; each answer is 200 with a small JSON body.

    python -m tests.bench._upstream --port P [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re

BODY = b'{"ok":true}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
CLOSE = ANSWER.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CLOSING = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)


class Delayed(asyncio.Protocol):
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            length = LENGTH.search(head)
            total = end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < total:
                return  # the body is still coming
            self.buffer = self.buffer[total:]
            closing = CLOSING.search(head) is not None
            asyncio.get_running_loop().call_later(self.latency, self.answer, closing)

    def answer(self, closing: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(CLOSE if closing else ANSWER)
        if closing:
            self.transport.close()


async def serve(port: int, latency: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Delayed(latency), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def run(port: int, latency: float) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port, latency))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=100)
    args = parser.parse_args()
    run(args.port, args.latency_ms / 1000)


if __name__ == "__main__":
    main()
