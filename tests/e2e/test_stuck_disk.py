"""The disk under the SQLite file stops answering (fsfreeze on a loop-mounted ext4: what a hung or lost
volume does to every write and fsync). Buyers and the merchant's backend get a 503 within the store's
bound instead of waiting as long as the disk does, and everything works again once it answers.

Needs root (mount, fsfreeze), as the CI machine has; elsewhere it is skipped with the reason."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from router.app import create_app
from router.config import Settings
from router.store.sqlite import STUCK_MARGIN
from tests.support import http_client, serve_app
from tests.support.concurrency import in_background
from tests.support.config import AUTH
from tests.support.emulator import Emulator
from tests.support.loop_disk import loop_mount
from tests.support.processes import page_kind, return_path
from tests.support.routers import Router

BUSY_TIMEOUT = 0.5
LEASE_SECONDS = 2


def test_a_frozen_disk_answers_503_within_the_bound_then_recovers(
    make_settings: Callable[..., Settings], emulator: Emulator, tmp_path: Path
) -> None:
    with loop_mount(tmp_path, "32M", freezable=True) as disk:
        # A write the frozen disk held may commit on thaw, the return's lease with it: that lease must
        # run out before a retry leads (as after a crash), so a short one keeps the test short.
        settings = make_settings(f"\n[checkout]\nlease_seconds = {LEASE_SECONDS}\n",
                                 db=f"sqlite:///{disk / 'rr.db'}?busy_timeout={BUSY_TIMEOUT}")
        with serve_app(create_app(settings, background=False)) as url:
            router = Router(url)
            ref = router.register()["ref"]
            session_id = emulator.create_session()
            subprocess.run(["fsfreeze", "-f", str(disk)], check=True)
            try:
                started = time.monotonic()
                buyer = in_background(lambda: router.get(return_path(ref, session_id)))
                backend = in_background(lambda: http_client().get(f"{url}/v1/checkouts/{ref}", headers=AUTH,
                                                                  timeout=60))
                page, answer = buyer(), backend()
                assert not isinstance(page, BaseException) and not isinstance(answer, BaseException)
                waited = time.monotonic() - started
            finally:
                subprocess.run(["fsfreeze", "-u", str(disk)], check=True)
            assert (page.status_code, page_kind(page)) == (503, "unavailable"), page.text[:300]
            assert answer.status_code == 503 and answer.json()["error"]["code"] == "unavailable", answer.text
            assert waited < BUSY_TIMEOUT + STUCK_MARGIN + 5, waited  # not as long as the disk stayed frozen
            assert emulator.calls(session_id) == 0  # nothing reached Amazon
            for _ in range(100):  # the buyer's page reloads itself until the result is there
                again = router.get(return_path(ref, session_id))
                if page_kind(again) == "success":
                    break
                time.sleep(0.2)
            assert page_kind(again) == "success", again.text[:300]
            assert len(emulator.charges(session_id)) == 1
