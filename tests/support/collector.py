"""The process's garbage collector put back as it was: for a test or bench section that sets it as `serve` does."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def restored_collector() -> Iterator[None]:
    """Whatever the block does to the collector (thresholds, gc.freeze) is undone at its end."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
