"""The garbage collector as a serving process sets it (router/ops/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from router.ops.collector import YOUNG_THRESHOLD, settle_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_what_exists_at_start_up_is_frozen_and_only_the_young_threshold_changes() -> None:
    before = gc.get_threshold()
    start_up = [object()]  # a container made at start-up, which a full collection moves to the oldest generation
    gc.collect()
    assert any(o is start_up for o in gc.get_objects(generation=2))
    settle_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    assert not any(o is start_up for o in gc.get_objects())  # frozen: in no generation, never walked


@pytest.mark.usefixtures("restored_collector")
def test_a_young_collection_waits_for_the_higher_threshold() -> None:
    settle_collector()
    gc.collect(0)  # the young generation's count starts at zero
    kept = [[] for _ in range(2 * 700)]  # twice CPython's default threshold, all alive
    assert len(kept) == 2 * 700
    assert gc.get_count()[0] > 700  # no young collection ran yet: at the default one would have reset the count
