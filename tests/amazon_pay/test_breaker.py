"""The circuit breaker: opens on repeated outage answers within a window, half-opens after a cool-down."""

from __future__ import annotations

import pytest

from router.amazon_pay.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(threshold=3, window=10.0, cooldown=30.0, clock=clock)


@pytest.mark.parametrize("status", [None, 429, 500, 503])
def test_repeated_outage_answers_open_it(status: int | None) -> None:
    breaker = make(Clock())
    for _ in range(2):
        breaker.record(status)
    assert breaker.state == "closed" and breaker.allow_background()
    breaker.record(status)
    assert breaker.state == "open"
    assert not breaker.allow_background()


@pytest.mark.parametrize("status", [200, 202, 400, 404, 409])
def test_answers_showing_amazon_is_up_reset_the_count(status: int) -> None:
    breaker = make(Clock())
    breaker.record(503)
    breaker.record(503)
    breaker.record(status)
    breaker.record(503)
    breaker.record(503)
    assert breaker.state == "closed"


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(2):
        breaker.record(None)
        clock.now += 6.0
    breaker.record(None)  # the first is 12 s old by now
    assert breaker.state == "closed"
    breaker.record(None)
    assert breaker.state == "open"


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record(503)
    clock.now += 29.0
    assert breaker.state == "open"
    clock.now += 1.0
    assert breaker.state == "half_open"
    assert breaker.allow_background()
    assert not breaker.allow_background()  # one probe at a time
    breaker.record(200)
    assert breaker.state == "closed" and breaker.allow_background()


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record(503)
    clock.now += 30.0
    assert breaker.allow_background()
    breaker.record(None)
    assert breaker.state == "open"
    clock.now += 29.0
    assert breaker.state == "open"
    clock.now += 1.0
    assert breaker.state == "half_open" and breaker.allow_background()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)


def test_a_probe_that_was_not_sent_frees_the_slot_at_once() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record(503)
    clock.now += 30.0
    assert breaker.allow_background()
    breaker.probe_not_sent()  # e.g. the quota refused it: Amazon never saw it
    assert breaker.allow_background()


def test_a_probe_whose_outcome_never_comes_is_given_up_after_a_cool_down() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record(503)
    clock.now += 30.0
    assert breaker.allow_background()  # its task then ends without recording anything
    clock.now += 29.0
    assert not breaker.allow_background()
    clock.now += 1.0
    assert breaker.allow_background()
