"""A separate process racing another: `python -m tests.store._race_worker URL OWNER [REFS...]`.

Prints "ready" and waits for a line on stdin (so all racers start together). With REFS: opens its
store first, then tries to lease every ref in a random order and prints the refs it won as a JSON list.
Without: the race is the first `open()` of a fresh database; prints the schema versions it sees.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from router.store import open_store


async def race(url: str, owner: str, refs: list[str]) -> list[str] | list[int]:
    store = open_store(url)
    if not refs:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    await store.open()
    try:
        if not refs:
            return await store.schema_versions()  # type: ignore[attr-defined,no-any-return]
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        random.shuffle(refs)
        won: list[str] = []
        for ref in refs:
            if await store.try_lease(ref, owner, now=1000.0, ttl=3600.0) is not None:
                won.append(ref)
        return won
    finally:
        await store.close()


if __name__ == "__main__":
    url, owner, *refs = sys.argv[1:]
    print(json.dumps(asyncio.run(race(url, owner, refs))), flush=True)
