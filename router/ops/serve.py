"""Around `uvicorn.run` in `serve`: the metrics listener and the signal behaviour of the process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from router.config import Settings
from router.ops import lifecycle
from router.ops.metrics_server import metrics_listener


@contextlib.contextmanager
def serving(settings: Settings, workers: int) -> Iterator[int]:
    """While inside: metrics listener up, SIGHUP reaches every worker (SIGTERM's exit 0 is set by `serve`
    from its start, before the wait for the store).

    Yields `[server] graceful_seconds` for uvicorn's `timeout_graceful_shutdown`.
    """
    if workers > 1:
        lifecycle.patch_supervisor()
    with metrics_listener(settings.ops.metrics_listen, webhook_gauges_store(settings), workers):
        yield settings.ops.graceful_seconds


def webhook_gauges_store(settings: Settings) -> str | None:
    """Where the metrics listener reads the webhook gauges: the store while webhooks are on, else nowhere
    (events wait in the outbox then, and their age would only raise the backlog alert)."""
    merchant = settings.merchant
    return settings.storage.url if merchant.webhook_url and merchant.webhook_secret else None  # as create_app
