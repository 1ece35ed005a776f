"""Run every benchmark section, or the ones named on the command line."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def sections() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    wanted = argv or sections()
    unknown = [name for name in wanted if name not in sections()]
    if unknown:
        print(f"unknown bench section(s): {', '.join(unknown)}; known: {', '.join(sections())}")
        return 2
    for name in wanted:
        print(f"\n## {name}\n", flush=True)
        importlib.import_module(f"tests.bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
