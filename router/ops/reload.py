"""SIGHUP: read the config file again and swap what requests see, without dropping one.

The holder is the ASGI app the server calls; each request reads `current` once, so a request in
flight finishes on the app it started with, and the next one gets the new routes, apps, pages and
merchant settings. What lives longer than a request (the store, the Amazon Pay client, the
listeners) is kept: a change there is logged as needing a restart.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from router.config import ConfigError, Settings, load

log = logging.getLogger("router.ops.reload")

# Settings a reload cannot apply: the process holds them (connections, clients, sockets, timers).
RESTART_ONLY = {"storage": "the storage URL", "amazon_pay": "[amazon_pay]", "checkout": "[checkout] timings",
                "ops": "the listeners and [server]", "tracing": "[tracing]"}


class ConfigHolder:
    """An ASGI app that forwards to the app built from the current settings."""

    def __init__(self, settings: Settings, build: Callable[[Settings], ASGIApp],
                 on_swap: Callable[[Settings], None] | None = None) -> None:
        self.settings = settings
        self.current = build(settings)
        self._build = build
        self._on_swap = on_swap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.current(scope, receive, send)

    def reload(self) -> bool:
        """Load the file the settings came from; swap on success, else log every problem and keep the old."""
        try:
            new = load(self.settings.source)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config: %s", problem)
            return False
        for field, what in RESTART_ONLY.items():
            if getattr(new, field) != getattr(self.settings, field):
                log.warning("reload: %s changed; it takes effect after a restart", what)
        kept = dataclasses.replace(new, **{f: getattr(self.settings, f) for f in RESTART_ONLY})
        app = self._build(kept)  # build first: a failure here leaves the old app in place
        self.settings, self.current = kept, app
        if self._on_swap is not None:
            self._on_swap(kept)
        log.info("reloaded %s: %d routes", kept.source, len(kept.routes))
        return True
