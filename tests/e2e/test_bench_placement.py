"""The return benches' CPU placement: the router on a core of its own, the emulator and the client on the rest."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.bench._returns import SHARED, own_core

AFFINITY = "import os; print(sorted(os.sched_getaffinity(0)))"


def two_cores() -> None:
    if own_core() is None:
        pytest.skip("needs two cores and taskset")


def test_the_router_and_the_others_split_the_cores() -> None:
    two_cores()
    placement = own_core()
    assert placement is not None and placement.router is not None and placement.others is not None
    assert len(placement.router) == 1
    assert not placement.router & placement.others
    assert placement.router | placement.others == os.sched_getaffinity(0)


def test_a_process_started_through_the_wrapper_runs_on_its_cores_only() -> None:
    two_cores()
    placement = own_core()
    assert placement is not None and placement.router is not None and placement.others is not None
    for cpus in (placement.router, placement.others):
        out = subprocess.run([*placement.wrapper(cpus), sys.executable, "-c", AFFINITY],
                             check=True, capture_output=True, text=True).stdout
        assert out.strip() == str(sorted(cpus))


def test_the_client_runs_on_the_others_and_gets_its_cores_back() -> None:
    two_cores()
    placement = own_core()
    assert placement is not None and placement.others is not None
    before = os.sched_getaffinity(0)
    with placement.client():
        assert os.sched_getaffinity(0) == placement.others
    assert os.sched_getaffinity(0) == before


def test_shared_changes_nothing() -> None:
    before = os.sched_getaffinity(0)
    assert SHARED.wrapper(SHARED.router) == []
    with SHARED.client():
        assert os.sched_getaffinity(0) == before
