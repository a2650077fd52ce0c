"""The in-process wasm host's call from the pool, per call: wall time, and
the minor page faults and CPU of this whole process (issue 23).

The host in process is what macOS and Windows get. A trivial tool is
called through the API, 500 ms apart (the pool of pre-warmed instances has
refilled), after a few calls of warm-up in the same backend (a long-lived
process: the state in which the per-call cost showed). Page faults and CPU
per call do not depend on the machine's load the way wall time does.

``--jailed``: the jailed host instead (the Linux default; wall time only,
since its calls run in other processes).

Run: .venv/bin/python bench/bench_wasm_pool_call.py [--calls N] [--jailed]
Side by side: .venv/bin/python bench/side_by_side.py bench_wasm_pool_call.py --baseline 2aaeb1f --same-script
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

from toolcrib.sandbox import wasm
from toolcrib.sandbox.contract import Job, Limits

TRIVIAL = "def f():\n    return 1\n"


def main() -> None:
    calls = int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 20
    job = Job(source=TRIVIAL, entrypoint="f", limits=Limits(cpu=5, wall=30))
    out: dict[str, object] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    jailed = "--jailed" in sys.argv
    backend = wasm.WasmBackend(jail=jailed)
    try:
        out["image"] = wasm.status().get("image")
        for _ in range(5):  # warm-up: module load, the pool filled, a long-lived process
            assert backend.run(job).status == "ok"
        rows = []
        for _ in range(calls):
            time.sleep(0.5)
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            result = backend.run(job)
            wall = (time.perf_counter() - started) * 1000
            after = resource.getrusage(resource.RUSAGE_SELF)
            assert result.status == "ok", result
            cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
            rows.append((wall, after.ru_minflt - before.ru_minflt, cpu))
    finally:
        backend.close()
    for name, i in (("wall_ms", 0), ("page_faults", 1), ("cpu_ms", 2)):
        values = sorted(row[i] for row in rows)
        out[name] = {
            "median": round(statistics.median(values), 1),
            "p90": round(values[int(0.9 * (len(values) - 1))], 1),
            "min": round(values[0], 1),
            "max": round(values[-1], 1),
        }
    if jailed:
        del out["page_faults"], out["cpu_ms"]  # the call ran in a child of the fork server
    out["calls"] = calls
    out["host"] = "jailed" if jailed else "in process"
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
