"""How often one order may try a new session id (router/checkout/probes.py). Pure."""

from __future__ import annotations

from router.checkout.probes import PendingLooks, SessionTries


def test_free_tries_then_one_an_interval() -> None:
    tries = SessionTries(free=3, interval=10)
    assert [tries.take("a", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert tries.take("b", 0.0)  # each order counts its own
    assert not tries.take("a", 9.9)
    assert tries.take("a", 10.0) and not tries.take("a", 10.0)
    assert not tries.take("a", 19.9) and tries.take("a", 20.0)


def test_only_the_refs_tried_most_recently_are_kept() -> None:
    tries = SessionTries(free=1, interval=10, tracked=2)
    assert tries.take("a", 0.0) and tries.take("b", 0.0)
    assert not tries.take("a", 1.0)  # tried again: now the most recent
    assert tries.take("c", 1.0)  # "b", the oldest tried, is forgotten
    assert tries.take("b", 1.0)  # afresh
    assert tries.take("a", 2.0)  # and "b"'s return made "a" the oldest: forgotten, afresh too


def test_a_pending_order_may_look_once_an_interval() -> None:
    looks = PendingLooks(interval=5, tracked=2)
    assert looks.due("a", 0.0) and not looks.due("a", 4.9) and looks.due("a", 5.0)
    assert looks.due("b", 5.0) and looks.due("c", 5.0)  # "a", the oldest, is forgotten: afresh
    assert looks.due("a", 6.0) and not looks.due("c", 6.0)
