"""Backoff and poll: the delays every retry loop uses (RNG, clock and sleep injected)."""

from __future__ import annotations

import asyncio

import pytest

from router.backoff import Backoff, poll


def test_doubles_from_base_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(0.02, 0.5)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5]


def test_jitter_spans_exactly_the_given_range() -> None:
    backoff = Backoff(1.0, 8.0, (0.8, 1.2))
    assert backoff.delay(3, lambda: 0.0) == pytest.approx(3.2)
    assert backoff.delay(3, lambda: 0.5) == pytest.approx(4.0)
    assert backoff.delay(3, lambda: 1.0) == pytest.approx(4.8)
    assert backoff.delay(9, lambda: 1.0) == pytest.approx(9.6)  # the jitter applies to the capped delay


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(15.0, 900.0, (0.8, 1.0)).delay(10**6, lambda: 1.0) == 900.0


@pytest.mark.parametrize("args", [(-1.0, 1.0), (1.0, -1.0), (1.0, 1.0, (1.2, 0.8)), (1.0, 1.0, (-0.1, 1.0))])
def test_rejects_nonsense(args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        Backoff(*args)  # type: ignore[arg-type]


def test_poll_sleeps_the_backoff_between_steps_until_a_result() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def step(attempt: int) -> str | None:
        return "done" if attempt == 4 else None

    result = asyncio.run(poll(step, Backoff(1.0, 3.0), 60.0, sleep=sleep, clock=lambda: 0.0))
    assert result == "done" and slept == [1.0, 2.0, 3.0]


def test_poll_gives_up_after_wait_seconds_on_its_clock() -> None:
    now = [0.0]
    steps: list[int] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def step(attempt: int) -> str | None:
        steps.append(attempt)
        return None

    assert asyncio.run(poll(step, Backoff(1.0, 1.0), 2.5, sleep=sleep, clock=lambda: now[0])) is None
    assert steps == [1, 2, 3, 4]  # at 0, 1, 2 s (within 2.5 s), and once more at 3 s before giving up
