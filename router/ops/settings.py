"""The [metrics] and [server] sections: where the metrics listener binds and how long a stop may take."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_METRICS_LISTEN = "127.0.0.1:9100"


@dataclass(frozen=True)
class OpsSettings:
    metrics_listen: tuple[str, int] | None = ("127.0.0.1", 9100)  # None: no metrics listener
    graceful_seconds: int = 10  # SIGTERM: how long in-flight requests may still run


def parse_listen(value: str) -> tuple[str, int] | None:
    """"host:port" (IPv6 as "[::1]:9100") → (host, port); ValueError when malformed."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(value)
    return host, int(port)


def read_ops(data: Mapping[str, Any], fail: Callable[[str, str], None]) -> OpsSettings:
    """Read both sections from the TOML document; `fail(key, message)` reports a problem."""
    listen: tuple[str, int] | None = OpsSettings.metrics_listen
    graceful = OpsSettings.graceful_seconds
    # [server]'s other keys (client limits) are read by the config reader itself, which checks that section.
    for name, allowed in (("metrics", {"listen"}),):
        section = data.get(name, {})
        if not isinstance(section, dict):
            fail(name, "must be a table")
            continue
        for unknown in sorted(set(section) - allowed):
            fail(f"{name}.{unknown}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    metrics, server = data.get("metrics"), data.get("server")
    if isinstance(metrics, dict) and "listen" in metrics:
        raw = metrics["listen"]
        try:
            listen = None if raw == "" else parse_listen(raw if isinstance(raw, str) else "")
        except ValueError:
            fail("metrics.listen", f'must be "host:port" like "{DEFAULT_METRICS_LISTEN}", or "" to turn it off')
    if isinstance(server, dict) and "graceful_seconds" in server:
        raw = server["graceful_seconds"]
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 3600:
            fail("server.graceful_seconds", "must be a whole number of seconds from 0 to 3600")
        else:
            graceful = raw
    return OpsSettings(listen, graceful)
