"""Leases this instance may have left in the store without knowing it.

A lease write (or release) whose outcome the instance never heard (the connection lost during COMMIT) may
have committed: the row then holds the instance's own lease while the instance believes it holds none, and
the lease is not re-entrant, so the buyer's next return would wait for it to run out (`lease_seconds`).
Such a ref is remembered here; the next lease attempt on it takes that lease back (the store's `reclaim`),
but only when no other caller of this instance leads or is taking the lease of that ref: between this
instance's own callers the lease must stay exclusive. Kept per process (another instance's lease has
another owner id), for the refs of the last `lease_seconds` (an older lease has run out by itself).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from router.store.base import StoreUnavailable


class UnsureLeases:
    def __init__(self, lease_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._since: dict[str, float] = {}  # ref → when its lease write went unanswered
        self._taking: Counter[str] = Counter()  # lease attempts (and held leases outside a leader) per ref

    def unsure(self, ref: str) -> None:
        """The outcome of a lease write or release on `ref` is unknown."""
        now = self.clock()
        for old in [ref for ref, since in self._since.items() if now - since >= self.lease_seconds]:
            del self._since[old]
        self._since[ref] = now

    def settled(self, ref: str) -> None:
        """A lease attempt on `ref` was answered with the lease, or after trying to take it back."""
        self._since.pop(ref, None)

    @contextmanager
    def holding(self, ref: str) -> Iterator[None]:
        """A lease of `ref` this instance holds (or may be taking) outside a leader: never taken back meanwhile."""
        self._taking[ref] += 1
        try:
            yield
        finally:
            self._taking[ref] -= 1
            if not self._taking[ref]:
                del self._taking[ref]

    @contextmanager
    def taking(self, ref: str, *, leading: bool) -> Iterator[bool]:
        """Around one lease attempt on `ref`: yields whether it may take this instance's own lease back
        (`leading`: a caller of this instance leads `ref` now, so its lease is that leader's); an attempt
        that ends in StoreUnavailable leaves the ref unsure."""
        since = self._since.get(ref)
        fresh = since is not None and self.clock() - since < self.lease_seconds
        reclaim = fresh and not leading and not self._taking[ref]
        with self.holding(ref):
            try:
                yield reclaim
            except StoreUnavailable:
                self.unsure(ref)
                raise
