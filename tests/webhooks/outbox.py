"""The webhook tests' world: a clock the test moves, and outbox events written the way the orchestrator does."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from router.checkout.events import event_for
from router.checkout.model import Checkout, State
from router.store.base import NewEvent, Store
from tests.support import serve_app

SECRET = "whsec_test_k3y_that_must_never_be_logged"
START = 1_800_000_000.0
StoreFactory = Callable[[], Store]


class Clock:
    """A clock the test advances; shared with the receiver thread, which checks signatures by it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds



def serve_on_port(app: Any, port: int) -> contextlib.AbstractContextManager[str]:
    """A receiver that was down comes back at the same address."""
    return serve_app(app, port=port, lifespan="off")


# --- writing events the way the orchestrator does -------------------------------------------------

_counter = iter(range(1, 1_000_000))


def new_ref() -> str:
    return f"ref_{next(_counter):06d}_abcdefghijklmnop"


async def add_checkout(store: Store, now: float, ref: str | None = None) -> Checkout:
    checkout = Checkout(ref=ref or new_ref(), merchant_reference="order-1", amount="14.00", currency="USD",
                        payment_intent="AuthorizeWithCapture", can_handle_pending=True, created_at=now,
                        expires_at=now + 3600, state=State.CREATED, updated_at=now)
    await store.create_checkout(checkout)
    return checkout


async def add_event(store: Store, now: float, state: str = "completed", ref: str | None = None) -> NewEvent:
    """Move a checkout (new unless `ref` is given) to `state`, writing its event in the same transaction."""
    checkout = await store.get_checkout(ref) if ref else None
    if checkout is None:
        checkout = await add_checkout(store, now, ref)
    after = replace(checkout, state=state)
    event = event_for(after, now)
    assert event is not None
    await store.transition(checkout.ref, owner=None, now=now, state=state, events=[event])
    return event
