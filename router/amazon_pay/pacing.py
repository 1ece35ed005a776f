"""One Amazon call signed per turn of the event loop, in the order the callers came.

aiohttp writes a request's body (with its buffered headers) in a task of its own, and on Python 3.11 a new
task runs only in the loop's next turn (3.12 starts it eagerly). Returns whose bind + lease shared a COMMIT
are resumed in one turn, and each signs its call (RSA, about 0.3 ms) before the turn ends: every POST then
waited for all of the signatures, so the first caller's call left no sooner than the last one's. Here a
caller signs only once the one before it has had its turn, and its POST leaves before the next signature
begins. A caller with nobody before it goes on at once.
"""

from __future__ import annotations

import asyncio
from collections import deque


class OnePerTurn:
    """`await turn()` before signing: the callers pass one per turn of the loop, first come first."""

    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._taken = False  # a caller passed in this turn, or is being handed the next

    async def turn(self) -> None:
        loop = asyncio.get_running_loop()
        if self._taken:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed the turn, then cancelled: pass it on
                    self._hand_on()
                raise
        else:
            self._taken = True
        loop.call_soon(self._hand_on)  # the next caller's turn is the loop's next one

    def _hand_on(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():  # a waiter cancelled before its turn is skipped
                waiter.set_result(None)
                return
        self._taken = False
