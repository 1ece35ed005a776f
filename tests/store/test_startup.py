"""`serve` at start: an unreachable store is one line and a bounded, backed-off wait (router.startup)."""

from __future__ import annotations

from urllib.parse import urlsplit

from router.startup import store_label, wait_for_store
from tests.store.tcp_proxy import TcpProxy
from tests.support import free_port
from tests.support.stores import postgres_backend


def test_store_label_hides_credentials_and_query() -> None:
    assert store_label("postgresql://rr:s3cret@db.internal:6432/shop?schema=x&sslmode=require") == \
        "postgresql://db.internal:6432/shop"
    assert store_label("sqlite:////var/lib/rr/rr.db") == "sqlite /var/lib/rr/rr.db"


async def test_gives_up_after_the_bound_with_growing_delays() -> None:
    said: list[str] = []
    delays: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        now[0] += seconds + 0.01  # each attempt costs a little too

    url = f"postgresql://rr@127.0.0.1:{free_port()}/rr"
    ok = await wait_for_store(url, 12, said.append, sleep=sleep, clock=lambda: now[0])
    assert ok is False
    assert len(said) == 2 and said[0].endswith("; retrying for up to 12 s") and said[1].endswith("; gave up after 12 s")
    assert all(line.startswith(f"storage: cannot reach {store_label(url)} (") for line in said)
    assert len(delays) >= 3 and delays[1] > delays[0] and delays[2] > delays[1]  # backoff
    assert sum(delays) <= 12.0 + 1e-6  # never sleeps past the bound


async def test_starts_once_the_database_answers() -> None:
    async with postgres_backend() as pg:  # a fresh schema, dropped afterwards
        target = urlsplit(pg.url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        port = await proxy.start()
        await proxy.stop()  # the database is "down": nothing listens on the proxy's port
        said: list[str] = []
        attempts = [0]

        async def sleep(seconds: float) -> None:
            attempts[0] += 1
            if attempts[0] == 2:
                await proxy.start()  # back on the same port

        url = pg.url.replace(target.netloc.rsplit("@", 1)[-1], f"127.0.0.1:{port}")
        try:
            assert await wait_for_store(url, 60, said.append, sleep=sleep) is True
        finally:
            await proxy.stop()
    assert len(said) == 2 and "cannot reach" in said[0] and said[1] == "storage: reachable again; starting"
    assert attempts[0] == 2
