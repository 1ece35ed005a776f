"""A process whose SQLite thread is stuck on a hung disk still exits once its stop gave up on the close
(router/store/sqlite_thread.py StoreThread.stop): nothing of the store's holds the interpreter's exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import asyncio, sys, threading
    from router.store.sqlite import SQLiteStore

    async def main():
        store = SQLiteStore(sys.argv[1], stuck_seconds=0.3)
        await store.open()
        store._run(lambda conn: threading.Event().wait(30))  # a call that does not return: a hung fsync
        try:
            await asyncio.wait_for(store.close(), 1.0)  # what the lifespan's bounded stop does
        except (asyncio.TimeoutError, Exception):
            pass
        print("stopped", flush=True)

    asyncio.run(main())
""")


def test_a_stuck_store_thread_does_not_hold_the_exit(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "s.db")], capture_output=True, text=True,
                          timeout=45, cwd=Path(__file__).resolve().parents[2])
    took = time.monotonic() - started
    assert done.returncode == 0 and "stopped" in done.stdout, done.stderr
    assert took < 20, took  # the stuck call lasts 30 s: a join in an executor thread waited for all of it
