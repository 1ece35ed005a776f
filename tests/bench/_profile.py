"""Where a successful return's CPU goes: py-spy samples the router process during N returns.

Not a `make bench` section (it needs py-spy and ptrace rights): run it by hand,
`python -m tests.bench._profile [N] [CONCURRENCY] [result|cancel]`. One worker, SQLite, emulator answering in
100 ms, the bench's raised quotas;
prints the top functions by self and by cumulative share of the samples. py-spy's idle detection
misses waits on queues, epoll and fsync, so with PROFILE_GIL=1 only the thread holding the GIL is
sampled: where the Python CPU goes (SQLite and OpenSSL work done without the GIL then drops out).
PROFILE_RATE sets py-spy's samples per second (200).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from ._returns import RAISED_QUOTAS, cpu_seconds, expect_all, get_all, prepare, stack

LATENCY_MS = 100
TOP = 40
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")


def summarize(raw: Path) -> None:
    self_counts: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack_text.split(";")[1:]]  # the first frame names the thread
        total += count
        if frames:
            self_counts[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
    ours = Counter({k: v for k, v in cumulative.items() if "(router/" in k or "(starlette/" in k or "(httpx/" in k
                    or "(httpcore/" in k or "(jinja2/" in k or "(logging/" in k or "(sqlite3/" in k})
    for title, counts in (("self", self_counts), ("cumulative (project and its libraries)", ours)):
        print(f"\n| top by {title} | % of samples |\n|---|---:|")
        for name, n in counts.most_common(TOP):
            print(f"| {name} | {100 * n / total:.1f} |")
    print(f"\n({total} samples)")


def _name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/router/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match['func']} ({file})"


def main(n: int = 400, concurrency: int = 10, page: str = "result") -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with stack(extra=RAISED_QUOTAS) as s:
        asyncio.run(get_all(s.router, asyncio.run(prepare(s, 20, LATENCY_MS)), concurrency))  # warm-up
        paths = [p.replace("/result", f"/{page}") for p in asyncio.run(prepare(s, n, LATENCY_MS))]
        raw = s.directory / "profile.txt"
        gil = ["--gil"] if os.environ.get("PROFILE_GIL") == "1" else []
        rate = os.environ.get("PROFILE_RATE", "200")
        proc = subprocess.Popen([spy, "record", "-p", str(s.router_pid), "-r", rate, "-f", "raw", "-o", str(raw),
                                 "--threads", *gil], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # py-spy attaches
        cpu = cpu_seconds(s.router_pid)
        result = asyncio.run(get_all(s.router, paths, concurrency))
        cpu = cpu_seconds(s.router_pid) - cpu
        proc.send_signal(2)
        proc.wait(timeout=30)
        expect_all(result.statuses, 200, f"{page} pages")
        print(f"{n} {page} pages, {concurrency} in flight, emulator latency {LATENCY_MS} ms: "
              f"{1000 * cpu / n:.2f} ms server CPU per return (under py-spy), p50 {result.p(0.5):.0f} ms, "
              f"statuses {result.statuses}")
        summarize(raw)
        shutil.copy(raw, "/tmp/perf-profile-raw.txt")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]), *sys.argv[3:4])
