"""Where the metrics listener binds and how long a stop may take ([metrics] listen, [server] graceful_seconds)."""

from __future__ import annotations

from dataclasses import dataclass

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
