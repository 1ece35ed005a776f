"""One Amazon call signed per turn of the loop: each POST leaves before the next call is signed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import uvloop

from router.amazon_pay.pacing import OnePerTurn
from tests.amazon_pay.test_client_mock_transport import SESSION, client


async def test_a_caller_with_nobody_before_it_goes_on_at_once() -> None:
    pacer = OnePerTurn()
    later: list[str] = []
    asyncio.get_running_loop().call_soon(later.append, "the loop's next turn")
    await pacer.turn()
    assert later == []  # no turn of the loop was spent


async def _order(pacer: OnePerTurn, callers: int) -> list[str]:
    """Callers that start together; each, once through, starts a task (as aiohttp does to write a body)."""
    ran: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def note(name: str) -> None:
        ran.append(name)

    async def caller(i: int) -> None:
        await pacer.turn()
        ran.append(f"caller {i}")
        tasks.append(asyncio.create_task(note(f"its task {i}")))

    await asyncio.gather(*(caller(i) for i in range(callers)))
    await asyncio.gather(*tasks)
    return ran


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_each_callers_task_runs_before_the_next_caller_goes_on(loop: str) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        ran = runner.run(_order(OnePerTurn(), 3))
    assert ran == ["caller 0", "its task 0", "caller 1", "its task 1", "caller 2", "its task 2"]


async def test_a_caller_cancelled_while_waiting_or_once_handed_its_turn_does_not_stop_the_others() -> None:
    pacer = OnePerTurn()
    first = asyncio.create_task(pacer.turn())
    waiting = [asyncio.create_task(pacer.turn()) for _ in range(4)]
    await asyncio.sleep(0)  # all started in one turn: the first went through, the four wait
    assert first.done() and not any(task.done() for task in waiting)
    waiting[0].cancel()  # cancelled before its turn: skipped
    await asyncio.sleep(0)  # the turn is handed on, past it, to waiting[1]
    waiting[1].cancel()  # handed its turn, cancelled before it resumed: the turn goes on
    await asyncio.wait_for(asyncio.gather(waiting[2], waiting[3]), 1)
    assert waiting[0].cancelled() and waiting[1].cancelled()
    await asyncio.wait_for(pacer.turn(), 1)  # and the pacer is free again


class WritesInATask(httpx.AsyncBaseTransport):
    """Writes the request in a task of its own, as aiohttp does on Python 3.11."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def write() -> None:
            self.events.append(f"write {request.url.path.split('/')[-2]}")

        await asyncio.create_task(write())
        return httpx.Response(200, json=SESSION)


async def test_concurrent_finalize_calls_are_each_written_before_the_next_is_signed() -> None:
    events: list[str] = []
    async with client(WritesInATask(events), []) as amazon:  # type: ignore[arg-type]
        sign = amazon._auth.sign_request

        def signed(request: httpx.Request) -> None:
            events.append(f"sign {request.url.path.split('/')[-2]}")
            sign(request)

        amazon._auth.sign_request = signed  # type: ignore[method-assign]
        sessions = [f"sess-{i}-0123456789abcdef" for i in range(3)]
        await asyncio.gather(*(amazon.finalize_checkout_session(sid, {"paymentIntent": "Confirm"}, f"key-{i}")
                               for i, sid in enumerate(sessions)))
    assert events == [f"{what} {sid}" for sid in sessions for what in ("sign", "write")]
