"""The garbage collector of a serving process: what start-up made set aside, young collections rarer.

What start-up made (modules, config, routes, templates) lives as long as the process: frozen, out of the
collector's sight, a collection walks only what requests made (a third of an association file's CPU).

What a request makes lives for its upstream's latency: a return waits about 100 ms on Amazon, a webhook
delivery on the merchant's server, and at Amazon's burst (10 returns) or a webhook backlog (a hundred in
flight) that state outlives the young collections and is walked by them and again by the middle
generation's. Timed with `gc.callbacks` at batch 100 (tests/bench/webhooks.py's run): at CPython's default
young threshold (700) a young collection ran every eleven deliveries or so and the collector took 60-80 µs
of a delivery's CPU; at 7,000, 4-18 µs. In the router: about 25 µs of a successful return's CPU, 3-5 µs
at 7,000.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7_000  # ten times CPython's default, as measured above


def settle_collector() -> None:
    """Freeze what exists now and collect the young generation ten times less often (the older
    generations keep their thresholds: they count young collections)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
