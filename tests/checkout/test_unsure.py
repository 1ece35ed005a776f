"""UnsureLeases: which lease attempt may take this instance's own lease back. Pure, on a test clock."""

from __future__ import annotations

import pytest

from router.checkout.unsure import UnsureLeases
from router.store.base import StoreUnavailable

LEASE = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_an_unsure_ref_is_taken_back_and_only_once_answered() -> None:
    unsure = UnsureLeases(LEASE, Clock())
    with unsure.taking("a", leading=False) as reclaim:
        assert not reclaim  # nothing unanswered: the lease is not re-entrant
    unsure.unsure("a")
    with unsure.taking("b", leading=False) as reclaim:
        assert not reclaim
    with unsure.taking("a", leading=False) as reclaim:
        assert reclaim
    unsure.settled("a")
    with unsure.taking("a", leading=False) as reclaim:
        assert not reclaim


def test_never_while_another_local_caller_leads_takes_or_holds_the_lease() -> None:
    unsure = UnsureLeases(LEASE, Clock())
    unsure.unsure("a")
    with unsure.taking("a", leading=True) as reclaim:
        assert not reclaim  # a local leader's lease
    with unsure.taking("a", leading=False) as first:
        with unsure.taking("a", leading=False) as second:
            assert first and not second  # one attempt at a time takes it back
    with unsure.holding("a"), unsure.taking("a", leading=False) as reclaim:
        assert not reclaim  # a lease held outside a leader (an unbind under way)
    with unsure.taking("a", leading=False) as reclaim:
        assert reclaim  # still unsure: nobody was answered yet


def test_an_unanswered_attempt_leaves_the_ref_unsure_for_lease_seconds() -> None:
    clock = Clock()
    unsure = UnsureLeases(LEASE, clock)
    with pytest.raises(StoreUnavailable), unsure.taking("a", leading=False):
        raise StoreUnavailable("the connection went during COMMIT")
    with pytest.raises(ValueError), unsure.taking("b", leading=False):
        raise ValueError("not a store outage")
    clock.now += LEASE - 1
    with unsure.taking("a", leading=False) as reclaim, unsure.taking("b", leading=False) as other:
        assert reclaim and not other
    clock.now += 1  # our lease, if it was written, has run out by itself
    with unsure.taking("a", leading=False) as reclaim:
        assert not reclaim
    unsure.unsure("c")  # marking prunes the refs of more than lease_seconds ago
    assert set(unsure._since) == {"c"}
