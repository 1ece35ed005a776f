"""The garbage collector of a serving process: what start-up made set aside, young collections rarer.

What start-up made (modules, config, routes, templates) lives as long as the process: frozen, out of the
collector's sight, a collection walks only what requests made (a third of an association file's CPU).

What a request makes lives for its upstream's latency: a return waits about 100 ms on Amazon, a webhook
delivery on the merchant's server, and at Amazon's burst (10 returns) or a webhook backlog (a hundred in
flight) that state outlives a young collection. With CPython's default threshold (700 more container
objects than were freed) a young collection ran every dozen deliveries and walked the state of every one
in flight each time: 40-50 µs of a webhook delivery's CPU went to young collections, 20 µs of a return's.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7_000  # 40-50 µs → about 5 µs of young collections a delivery (tests/bench/webhooks.py)


def settle_collector() -> None:
    """Freeze what exists now and collect the young generation ten times less often (the older
    generations keep their thresholds: they count young collections)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
