"""How often one order may make us call Amazon for whoever holds its ref: each call is from the quota
every buyer shares. Pure.

New session ids (SessionTries): each costs Amazon a finalize call.

A return binds the session id it carries to the order and finalizes it. A genuine order tries one id
(its buyer's) and is done; whoever holds a ref (their own order's, or one they saw) can send made-up ids
or other orders' sessions, each a finalize taken from the merchant's quota, which every buyer shares.
A known bad pair costs nothing (the store remembers it); a new id is a new call. So each ref gets
FREE_TRIES new ids, then one every TRY_INTERVAL seconds, and a flood from one ref costs Amazon one call
in TRY_INTERVAL. A new id after an order's first is a probe for the quota too (quota.probing(), in
service.py): it takes only tokens no buyer reserved, so many orders' floods together cannot spend the
tokens of buyers who bring their order's first id. A buyer behind someone else's tries waits (the
page says the payment is being confirmed and refreshes) and pays once they stop; while a flood of new
ids on the buyer's own ref goes on, the flood takes most turns: the buyer waits, charged nothing, as
long as it lasts. Kept per process, for the refs tried most recently.
"""

from __future__ import annotations

FREE_TRIES = 3  # new session ids an order may try at once: the buyer's own, and room for a stale link
TRY_INTERVAL = 10.0  # seconds between further tries of one order
MAX_TRACKED = 10_000  # refs remembered; the oldest tried is forgotten first (it starts afresh)
# Seconds between the reads of a pending order its page or app can cause (PendingLooks): under the 5 s the
# pending page's refresh and the app API's Retry-After ask for, so a client that waits as told always looks.
LOOK_INTERVAL = 4.0


class SessionTries:
    """`take(ref, now)`: whether a new session id may be tried for `ref` now (and counts it if so);
    `open(ref, now)`: the same question, counting nothing; `tried(ref)`: how many it has tried."""

    def __init__(self, free: int = FREE_TRIES, interval: float = TRY_INTERVAL, tracked: int = MAX_TRACKED) -> None:
        self.free, self.interval, self.tracked = free, interval, tracked
        self._tries: dict[str, tuple[int, float]] = {}  # ref → (tries so far, the earliest time of the next)

    def tried(self, ref: str) -> int:
        """How many new session ids `ref` has tried (as far as this process remembers)."""
        return self._tries.get(ref, (0, 0.0))[0]

    def open(self, ref: str, now: float) -> bool:
        """Whether a new session id could be tried for `ref` now (nothing counted)."""
        tries, next_at = self._tries.get(ref, (0, now))
        return tries < self.free or now >= next_at

    def take(self, ref: str, now: float) -> bool:
        allowed = self.open(ref, now)
        tries, next_at = self._tries.pop(ref, (0, now))
        if allowed:
            tries += 1
            next_at = now + self.interval if tries >= self.free else now
        self._tries[ref] = (tries, next_at)  # last in the dict: the most recently tried
        if len(self._tries) > self.tracked:
            del self._tries[next(iter(self._tries))]
        return allowed


class PendingLooks:
    """`due(ref, now)`: whether a buyer's page or app asking about pending `ref` may ask Amazon now (and
    counts it if so): a reload loop on one's own pending order would spend getCharge tokens every buyer
    shares. Between looks it gets the stored state; the reconciler polls every pending order on its own."""

    def __init__(self, interval: float = LOOK_INTERVAL, tracked: int = MAX_TRACKED) -> None:
        self.interval, self.tracked = interval, tracked
        self._last: dict[str, float] = {}  # ref → when it last asked, the most recent last

    def due(self, ref: str, now: float) -> bool:
        last = self._last.pop(ref, None)
        if last is not None and now - last < self.interval:
            self._last[ref] = last
            return False
        self._last[ref] = now
        if len(self._last) > self.tracked:
            del self._last[next(iter(self._last))]
        return True
