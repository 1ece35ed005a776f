"""Ops tests reuse the durability harness: the emulator on a real socket, `serve` processes, a receiver."""

from __future__ import annotations

from tests.durability.conftest import emulator, launch, receiver  # noqa: F401 - fixtures
