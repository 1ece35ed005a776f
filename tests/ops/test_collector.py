"""The garbage collector as a serving process sets it (router/ops/collector.py)."""

from __future__ import annotations

import gc

from router.ops.collector import YOUNG_THRESHOLD, settle_collector
from tests.support.collector import restored_collector


def test_what_exists_at_start_up_is_frozen_and_only_the_young_threshold_changes() -> None:
    with restored_collector():
        before = gc.get_threshold()
        start_up = [object()]  # a container made at start-up, which a full collection moves to the oldest generation
        gc.collect()
        assert any(o is start_up for o in gc.get_objects(generation=2))
        settle_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        assert not any(o is start_up for o in gc.get_objects())  # frozen: in no generation, never walked


def test_a_young_collection_waits_for_the_higher_threshold() -> None:
    with restored_collector():
        settle_collector()
        gc.collect(0)  # the young generation's count starts at zero
        kept = [[] for _ in range(2 * 700)]  # twice CPython's default threshold, all alive
        assert gc.get_count()[0] > 700  # no young collection ran yet: at the default one would have reset the count
        del kept  # alive until the count was read
