"""Fixtures shared by several test areas (durability, ops, e2e); their conftests import them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import Emulator
from tests.support.processes import Launcher
from tests.support.receiver import Receiver


@pytest.fixture
def launch(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> Iterator[Launcher]:
    """Starts router processes against `emulator`; kills what is left at the end of the test."""
    launcher = Launcher(tmp_path, emulator, key_files[0])
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on its own port, not yet listening (`up()`); any off-schema body fails the test."""
    hooks = Receiver()
    try:
        yield hooks
    finally:
        hooks.down()
    assert not hooks.schema_errors, hooks.schema_errors
