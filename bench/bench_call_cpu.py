"""Where an isolated call's CPU goes (issue 19): the host, the zygotes and
the forked children, per call, on the restricted backend.

    .venv/bin/python bench/bench_call_cpu.py [--calls 400] [--reps 3] [--zygotes 2] [--threads 2]
    .venv/bin/python bench/side_by_side.py bench_call_cpu.py --baseline REV --same-script

Calls back to back from ``--threads`` threads (as a verification's cases
run), the backend warmed up first. CPU time is read from the kernel's
accounting (``os.times`` for the host; utime/stime and the reaped
children's cutime/cstime in /proc/<zygote>/stat), so unlike calls per
second it holds up fairly well on a machine other work keeps busy: on two
cores, 600 calls/s needs at most 3.3 ms of CPU per call in all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from toolcrib.sandbox.contract import Job
from toolcrib.sandbox.restricted import RestrictedBackend

JOB = Job(source="def add(a, b):\n    return a + b\n", entrypoint="add", args={"a": 1, "b": 2})


def _zygote_ticks(backend: RestrictedBackend) -> list[int]:
    """utime, stime, cutime, cstime of every running zygote, summed."""
    total = [0, 0, 0, 0]
    for zygote in [backend._zygote, *getattr(backend, "_others", [])]:
        if zygote is None:
            continue
        with open(f"/proc/{zygote.proc.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        for i, at in enumerate((11, 12, 13, 14)):
            total[i] += int(fields[at])
    return total


def one_round(backend: RestrictedBackend, calls: int, threads: int) -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    host0, zyg0, started = os.times(), _zygote_ticks(backend), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: backend.run(JOB), range(calls)))
    wall, host1, zyg1 = time.perf_counter() - started, os.times(), _zygote_ticks(backend)
    assert all(r.status == "ok" and r.result == 3 for r in results), results[:3]
    per = [(b - a) / tick / calls * 1000 for a, b in zip(zyg0, zyg1, strict=True)]
    host = (host1.user - host0.user + host1.system - host0.system) / calls * 1000
    return {
        "calls_per_s": calls / wall,
        "host_ms": host,
        "zygote_ms": per[0] + per[1],
        "children_ms": per[2] + per[3],
        "children_user_ms": per[2],
        "children_sys_ms": per[3],
        "total_ms": host + sum(per),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--zygotes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spares", type=int, default=0, help="spares per zygote (default: the backend's)")
    opts = parser.parse_args()
    backend = RestrictedBackend(zygotes=opts.zygotes, **({"spares": opts.spares} if opts.spares else {}))
    try:
        one_round(backend, 40, opts.threads)  # warm: every zygote started, spares forked
        rounds = [one_round(backend, opts.calls, opts.threads) for _ in range(opts.reps)]
    finally:
        backend.close()
    out: dict[str, Any] = {"calls": opts.calls, "zygotes": opts.zygotes, "threads": opts.threads}
    for key in rounds[0]:
        out[key] = round(statistics.median(r[key] for r in rounds), 2)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
