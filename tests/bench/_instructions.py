"""Instructions per request of the router process under callgrind: a CPU figure that does not move.

Not a `make bench` section (valgrind runs the router some fifty times slower): run it by hand to compare
two versions of the code, `python -m tests.bench._instructions [N] [result|cancel|error] [uvicorn|serve]`. On this kind
of machine the CPU time of the same work swings by ±20-30% from run to run, so a change of a few percent
is invisible in `cpu`; the instructions callgrind counts are the same from run to run (to about 0.02%)
whatever else the machine does. They are not time: RSA in OpenSSL runs many instructions per cycle, the
interpreter few, and system calls (socket writes, fsync) are not counted, so the output splits them by
library. One worker, SQLite, the emulator answering in 100 ms, the bench's raised quotas; counting is on
only while the N requests are answered, every thread of the router included.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from ._returns import RAISED_QUOTAS, expect_all, get_all, prepare, stack

LATENCY_MS = 100
# callgrind_annotate --inclusive=no lines: "  434,258,400 (40.47%)  file:function [object]", the object
# left out where it is the same as the line before's
LINE = re.compile(r"^\s*(?P<count>[\d,]+)\s+\(\s*[\d.]+%\)\s+(?P<what>.*?)(?:\s+\[(?P<object>[^\]]+)\])?\s*$")


def by_library(dump: Path) -> Counter[str]:
    """Instructions per shared object (the interpreter, cryptography's OpenSSL, SQLite, libc, …)."""
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
                               check=True, capture_output=True, text=True).stdout
    totals: Counter[str] = Counter()
    library = "?"
    for line in annotated.splitlines():
        match = LINE.match(line)
        if match is None or match["what"] == "PROGRAM TOTALS":
            continue
        library = Path(match["object"]).name if match["object"] else library
        totals[library] += int(match["count"].replace(",", ""))
    return totals


def main(n: int = 100, page: str = "result", launch: str = "uvicorn") -> None:
    """`launch`: "uvicorn" (uvicorn's CLI, no access log) or "serve" (`return-router serve`, as deployed)."""
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed")
    with tempfile.TemporaryDirectory(prefix="rr-callgrind-") as tmp, stack(extra=RAISED_QUOTAS, wrapper=[
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/callgrind.out"],
            serve=launch == "serve") as s:
        control = ["callgrind_control"]
        asyncio.run(get_all(s.router, asyncio.run(prepare(s, 20, LATENCY_MS)), 10))  # warm-up, not counted
        paths = [p.replace("/result", f"/{page}") for p in asyncio.run(prepare(s, n, LATENCY_MS))]
        subprocess.run([*control, "--instr=on", str(s.router_pid)], check=True, capture_output=True)
        result = asyncio.run(get_all(s.router, paths, 10))
        subprocess.run([*control, "--instr=off", str(s.router_pid)], check=True, capture_output=True)
        subprocess.run([*control, "--dump", str(s.router_pid)], check=True, capture_output=True)
        expect_all(result.statuses, 200, f"{page} pages")
        totals: Counter[str] = Counter()
        for dump in sorted(Path(tmp).glob("callgrind.out.*")):  # the --dump's (callgrind.out is the exit's)
            totals += by_library(dump)
    total = sum(totals.values())
    print(f"{n} {page} requests, 10 in flight: {total / n / 1e6:.3f} M instructions per request (user space, "
          "all threads)\n")
    print("| library | M instructions per request | share |\n|---|---:|---:|")
    for library, count in totals.most_common(8):
        print(f"| {library} | {count / n / 1e6:.3f} | {100 * count / total:.1f}% |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]), *sys.argv[2:4])
