"""Buyer details are purged after the retention period; the checkout and its state stay. Files are private."""

from __future__ import annotations

import stat
from pathlib import Path

from router.checkout.model import State
from router.store.base import Store
from tests.support.stores import Backend, checkout

BUYER = {"buyerName": "Hanako Yamada", "maskedEmail": "h***@example.com", "address": {"countryCode": "JP"}}


async def test_purge_drops_buyer_details_of_old_checkouts_only(store: Store) -> None:
    for ref, when in (("old", 2000.0), ("new", 9000.0)):
        await store.create_checkout(checkout(ref))
        await store.transition(ref, owner=None, now=when, state=State.COMPLETED,
                               changes={"result": BUYER, "charge_id": f"C-{ref}"})
    await store.create_checkout(checkout("none"))  # never got buyer details: nothing to purge

    assert await store.purge_buyer_details(5000.0) == 1
    old, new = await store.get_checkout("old"), await store.get_checkout("new")
    assert old is not None and new is not None
    assert old.result is None and (old.state, old.charge_id, old.updated_at) == (State.COMPLETED, "C-old", 2000.0)
    assert new.result == BUYER
    assert await store.purge_buyer_details(5000.0) == 0  # idempotent


async def test_sqlite_files_are_created_owner_only(tmp_path: Path) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'private' / 'rr.db'}")
    store = await backend.opened()
    try:
        await store.create_checkout(checkout("x"))  # a write: the -wal file exists now
        files = sorted(tmp_path.joinpath("private").iterdir())
        assert [f.name for f in files] == ["rr.db", "rr.db-shm", "rr.db-wal"]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        await store.close()


async def test_drop_oldest_checkouts_keeps_the_newest(store: Store) -> None:
    from tests.support.stores import event

    for n in range(5):
        await store.create_checkout(checkout(f"r{n}", created_at=1000.0 + n))
    await store.transition("r0", owner=None, now=2000.0, state=State.COMPLETED, events=[event("e0")])
    assert await store.drop_oldest_checkouts(3) == 2
    kept = [ref for ref in ("r0", "r1", "r2", "r3", "r4") if await store.get_checkout(ref) is not None]
    assert kept == ["r2", "r3", "r4"]
    assert await store.get_event("e0") is None  # its outbox event went with it
    assert await store.drop_oldest_checkouts(3) == 0
