"""A few process-local counters in the Prometheus text format (enough for /metrics without a dependency)."""

from __future__ import annotations

from collections import Counter
from threading import Lock
from typing import ClassVar


class Metrics:
    HELP: ClassVar[dict[str, str]] = {
        "return_router_returns_total": "Buyer returns served, by flow and the page shown.",
        "return_router_finalize_total": "Finalize outcomes, by resulting state or error.",
        "return_router_api_requests_total": "App and merchant API requests, by endpoint and status.",
    }

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = Lock()

    def inc(self, name: str, **labels: str) -> None:
        with self._lock:
            self._counts[(name, tuple(sorted(labels.items())))] += 1

    def value(self, name: str, **labels: str) -> int:
        return self._counts[(name, tuple(sorted(labels.items())))]

    def render(self) -> str:
        lines = []
        with self._lock:
            items = sorted(self._counts.items())
        for name, help_text in self.HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            for (metric, labels), count in items:
                if metric == name:
                    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{rendered}}} {count}" if rendered else f"{name} {count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = Metrics()
