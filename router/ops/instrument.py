"""Counting wrappers that need no edit of what they wrap: store errors by method, API requests by route."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import router.metrics as metrics
from router.store.base import Store, StoreError


class _CountingStore:
    """Forwards every call to the store; a StoreError is counted under the method's name and re-raised."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        counted = _counted(name, attr)
        setattr(self, name, counted)  # made once: later lookups find it without __getattr__
        return counted


def _counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except StoreError:
            metrics.store_error(name)
            raise
    return call


def count_store_errors(store: Store) -> Store:
    return cast(Store, _CountingStore(store))


class ApiMetrics:
    """ASGI middleware: counts /v1/ requests by route template (bounded labels), "other" when none matches."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = [r for r in routes if isinstance(r, Route) and r.path.startswith("/v1/")]

    def endpoint(self, scope: Scope) -> str:
        for route in self.routes:
            if route.matches(scope)[0] is not Match.NONE:  # PARTIAL: the path fits, the method not
                return route.path
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        status = 500  # an exception escaping the app becomes a 500 further out

        async def keep_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, keep_status)
        finally:
            metrics.api_request(self.endpoint(scope), status)
