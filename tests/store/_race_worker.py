"""A separate process racing for finalize leases: `python -m tests.store._race_worker URL OWNER REFS...`.

Opens its own store, prints "ready", waits for a line on stdin (so both racers start together), tries
to lease every ref in a random order, and prints the refs it won as a JSON list.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from router.store import open_store


async def race(url: str, owner: str, refs: list[str]) -> list[str]:
    store = open_store(url)
    await store.open()
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        random.shuffle(refs)
        won = []
        for ref in refs:
            if await store.try_lease(ref, owner, now=1000.0, ttl=3600.0) is not None:
                won.append(ref)
        return won
    finally:
        await store.close()


if __name__ == "__main__":
    url, owner, *refs = sys.argv[1:]
    print(json.dumps(asyncio.run(race(url, owner, refs))), flush=True)
