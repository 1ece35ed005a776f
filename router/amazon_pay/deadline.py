"""One deadline for several Amazon Pay calls: a buyer's return may finalize, then read the session, then
the charge, and waits for Amazon up to `[amazon_pay] deadline` in all, not once per call (the proxies in
front give up at 75 s; past that the buyer would see their 504 instead of our honest page)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_SHARED: ContextVar[list[float] | None] = ContextVar("amazon_pay_shared_deadline", default=None)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """The calls made inside (in this task) share the deadline that the first of them sets."""
    token = _SHARED.set([])
    try:
        yield
    finally:
        _SHARED.reset(token)


def deadline_for(seconds: float) -> float:
    """The monotonic deadline of a call allowed `seconds`: its own, or the shared one once set."""
    held = _SHARED.get()
    if held:
        return held[0]
    deadline = time.monotonic() + seconds
    if held is not None:
        held.append(deadline)
    return deadline
