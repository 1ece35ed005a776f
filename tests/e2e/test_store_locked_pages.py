"""What the "briefly unavailable" page says when the store cannot write (a real SQLite file, its write lock
held by another connection past busy_timeout, as a full disk or a read-only file fails writes): true for
whether the return's session was bound, and so whether anything but the page's refresh keeps checking."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from router.app import create_app
from router.config import Settings
from tests.e2e.raw import captured_logs
from tests.support import serve_app
from tests.support.config import AUTH
from tests.support.emulator import Emulator
from tests.support.processes import page_kind, return_path
from tests.support.routers import Router

NOT_BOUND = {"en": "We could not process your payment just now, so it is not complete yet.",
             "ja": "ただいまお支払いを処理できなかったため、お支払いはまだ完了していません。"}
KEEP_CHECKING = {"en": "We keep checking", "ja": "確認を続けており"}


@pytest.fixture
def locked_router(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[Router, Path]]:
    db = tmp_path / "locked.db"
    with serve_app(create_app(make_settings(db=f"sqlite:///{db}?busy_timeout=0.2"), background=False)) as url:
        yield Router(url), db


@contextlib.contextmanager
def write_locked(db: Path) -> Iterator[None]:
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock; WAL readers go on
        yield
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_return_the_store_could_not_bind_says_only_the_page_tries_again(
        locked_router: tuple[Router, Path], emulator: Emulator, lang: str) -> None:
    router, db = locked_router
    ref = router.register()["ref"]
    session_id = emulator.create_session(ref=ref)
    with write_locked(db), captured_logs() as logs:
        page = router.get(return_path(ref, session_id), **{"accept-language": lang})
    assert (page.status_code, page_kind(page)) == (503, "unavailable"), page.text[:300]
    assert NOT_BOUND[lang] in page.text and KEEP_CHECKING[lang] not in page.text
    assert "store unavailable: NotBound" in logs.text
    assert page.headers["retry-after"] and '<meta http-equiv="refresh"' in page.text  # the page's own retry
    # True: nothing was stored with the session, so nothing else resumes it.
    stored = router.get(f"/v1/checkouts/{ref}", **AUTH).json()
    assert stored["state"] == "created" and stored["checkoutSessionId"] is None
    assert router.get(return_path(ref, session_id)).status_code == 200  # the refresh, once the store writes


def test_a_bound_return_the_store_cannot_write_keeps_the_words_that_hold_for_it(
        locked_router: tuple[Router, Path], emulator: Emulator) -> None:
    """Bound, Amazon unreachable: the reconciler does keep checking it, and the page says so."""
    router, db = locked_router
    ref = router.register()["ref"]
    session_id = emulator.create_session(ref=ref, fail_first_n=4, fail_status=503)
    assert page_kind(router.get(return_path(ref, session_id))) == "unavailable"
    assert router.get(f"/v1/checkouts/{ref}", **AUTH).json()["checkoutSessionId"] == session_id
    with write_locked(db), captured_logs() as logs:
        page = router.get(return_path(ref, session_id))
    assert "store unavailable: StoreUnavailable" in logs.text  # the store's failure, not Amazon's answer
    assert (page.status_code, page_kind(page)) == (503, "unavailable"), page.text[:300]
    assert KEEP_CHECKING["en"] in page.text and NOT_BOUND["en"] not in page.text
