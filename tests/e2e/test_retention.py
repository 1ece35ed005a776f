"""Buyer details leave the store after [checkout] retain_days: the reconciler's pass purges them and the
app API stops answering them; the checkout and its state stay. A delivered webhook event leaves after
[checkout] delivered_events_retain_days, in the same pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from router.app import create_app
from router.checkout.reconciler import Reconciler
from router.checkout.service import CheckoutService
from router.config import Settings
from router.store import open_store
from tests.support import serve_app
from tests.support.config import TOKEN
from tests.support.emulator import Emulator
from tests.support.routers import Router


async def test_reconciler_purges_buyer_details_after_retain_days(
    make_settings: Callable[..., Settings], emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_settings("\n[checkout]\nretain_days = 2\ndelivered_events_retain_days = 2\n")
    assert settings.checkout.retain_seconds == settings.checkout.events_retain_seconds == 2 * 86400
    wired = create_app(settings).state.runtime.reconciler  # what `serve` runs
    assert (wired.retain_seconds, wired.events_retain_seconds) == (2 * 86400, 2 * 86400)
    with serve_app(create_app(settings, background=False)) as url:
        router = Router(url)
        ref = router.register()["ref"]
        session_id = emulator.create_session()
        finalize = f"{url}/v1/checkout-sessions/{session_id}/finalize"
        first = httpx.post(finalize, json={"ref": ref}, timeout=60).json()
        assert first["state"] == "completed" and first["buyer"]["maskedEmail"]

        store = open_store(settings.storage.url)  # the same SQLite file, from the test's event loop
        await store.open()
        try:
            service = CheckoutService(store, create_app(settings, background=False).state.runtime.amazon)
            now = time.time()
            [completed] = await store.claim_events("test", now=now, lease_ttl=30.0, limit=10)
            await store.event_delivered(completed.id, "test", now)  # as the webhook worker would
            for days, kept in ((1, True), (3, False)):  # a pass one day later keeps them, three days later not
                reconciler = Reconciler(service, retain_seconds=settings.checkout.retain_seconds,
                                        events_retain_seconds=settings.checkout.events_retain_seconds,
                                        clock=lambda d=days: now + d * 86400)
                await reconciler.run_once()
                again = httpx.post(finalize, json={"ref": ref}, timeout=60).json()
                assert (again["buyer"] is not None) is kept, again
                assert again["state"] == "completed" and again["chargeId"] == first["chargeId"]
                assert (await store.get_event(completed.id) is not None) is kept
        finally:
            await store.close()
        merchant = httpx.get(f"{url}/v1/checkouts/{ref}", headers={"authorization": f"Bearer {TOKEN}"}).json()
        assert merchant["buyer"] is None and merchant["state"] == "completed"
