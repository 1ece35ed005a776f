"""A TCP forwarder the tests can cut, freeze and restore, to simulate a database server going away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class TcpProxy:
    """`stop()` drops the listener and every open connection (a crashed server); `start()` listens on
    the same port again. `freeze()` keeps connections open but holds every byte (a hung network):
    nothing a client sends from then on reaches the server, and `stop()` discards what was held."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing: asyncio.Event | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1 (the same port as before when restarted); return the port."""
        self._flowing = self._flowing or asyncio.Event()
        self._flowing.set()  # a restarted proxy forwards again
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def freeze(self) -> None:
        """Hold all traffic from now on; connections stay open."""
        assert self._flowing is not None, "start() first"
        self._flowing.clear()

    async def stop(self) -> None:
        """Stop listening and cut every open connection, as a crashed server would."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        for pump in self._pumps(client_reader, client_writer, server_reader, server_writer):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _pumps(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
               server_reader: asyncio.StreamReader, server_writer: asyncio.StreamWriter
               ) -> tuple[Coroutine[Any, Any, None], ...]:
        """The two directions of one connection: client to server, server to client."""
        return self._pump(client_reader, server_writer), self._pump(server_reader, client_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side closed (or died): the other sees it, as on a real network


class CommitCutter(TcpProxy):
    """`cut_after_commit()`: the next COMMIT reaches the server, and that connection is cut before its answer
    comes back, so the server commits and the client never hears it (the outcome is unknown to it)."""

    COMMIT = b"Q\x00\x00\x00\x0cCOMMIT;\x00"  # asyncpg's COMMIT: a simple Query message

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._armed = False
        self.cuts = 0

    def cut_after_commit(self) -> None:
        self._armed = True

    def _pumps(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
               server_reader: asyncio.StreamReader, server_writer: asyncio.StreamWriter
               ) -> tuple[Coroutine[Any, Any, None], ...]:
        committed = asyncio.Event()  # this connection's COMMIT went out: its answer is dropped with it
        return (self._to_server(client_reader, server_writer, committed),
                self._to_client(server_reader, client_writer, committed, server_writer))

    async def _to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         committed: asyncio.Event) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self._armed and self.COMMIT in data:
                    self._armed = False
                    committed.set()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    async def _to_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         committed: asyncio.Event, server: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if committed.is_set():  # the server's answer to the COMMIT: it committed; nobody hears it
                    self.cuts += 1
                    break
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        server.transport.abort()
