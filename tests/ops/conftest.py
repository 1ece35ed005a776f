"""Ops tests use the durability harness: `serve` processes and a receiver (the emulator is the root fixture)."""

from __future__ import annotations

from tests.support.fixtures import launch, receiver  # noqa: F401  (fixtures)
