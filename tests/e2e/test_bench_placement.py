"""The return benches' CPU placement: the router on a core of its own, the emulator and the client on the rest."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.bench._returns import SHARED, Placement, own_core

AFFINITY = "import os; print(sorted(os.sched_getaffinity(0)))"


@pytest.fixture
def split() -> tuple[Placement, frozenset[int], frozenset[int]]:
    """own_core() with its two sets of cores; skips with fewer than two cores or without taskset."""
    placement = own_core()
    if placement is None:
        pytest.skip("needs two cores and taskset")
    assert placement.router is not None and placement.others is not None
    return placement, placement.router, placement.others


def test_the_router_and_the_others_split_the_cores(split: tuple[Placement, frozenset[int], frozenset[int]]) -> None:
    _, router, others = split
    assert len(router) == 1
    assert not router & others
    assert router | others == os.sched_getaffinity(0)


def test_a_process_started_through_the_wrapper_runs_on_its_cores_only(
    split: tuple[Placement, frozenset[int], frozenset[int]],
) -> None:
    placement, router, others = split
    for cpus in (router, others):
        out = subprocess.run([*placement.wrapper(cpus), sys.executable, "-c", AFFINITY],
                             check=True, capture_output=True, text=True).stdout
        assert out.strip() == str(sorted(cpus))


def test_the_client_runs_on_the_others_and_gets_its_cores_back(
    split: tuple[Placement, frozenset[int], frozenset[int]],
) -> None:
    placement, _, others = split
    before = os.sched_getaffinity(0)
    with placement.client():
        assert os.sched_getaffinity(0) == others
    assert os.sched_getaffinity(0) == before


def test_shared_changes_nothing() -> None:
    before = os.sched_getaffinity(0)
    assert SHARED.wrapper(SHARED.router) == []
    with SHARED.client():
        assert os.sched_getaffinity(0) == before
