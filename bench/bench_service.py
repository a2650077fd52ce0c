"""`toolcrib call` of a trivial tool end to end, with and without the warm
sandbox service (issue 21, sandbox/service.py).

    .venv/bin/python bench/bench_service.py [--calls 15]

Each call is a fresh `toolcrib` process (spawn to exit), of a trivial tool
and of a `sympy` tool (its lock resolved at add through pip's cache). Without
the service every process starts its own zygote (the sympy tool's imports
sympy first); with it (TOOLCRIB_SANDBOX_SERVICE=1,
a service directory of this run's own) the first call starts the service and
is left out, the rest find it warm. Then `--loops` concurrent loops of the
trivial call for `--seconds`, each way: calls per second. Prints medians and
p90s, writes JSON to bench/out/bench_service.json. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from toolcrib.sandbox.service import stop

from toolcrib import Registry

OUT = Path(__file__).resolve().parent / "out"
TOOL = 'def double(x: int) -> int:\n    """Double."""\n    return 2 * x\n'
# A tool with packages: each process without the service starts the lock's
# zygote, which imports sympy before the first call.
SYMPY = (
    "import sympy\n\n\ndef factor_poly(expr: str) -> str:\n"
    '    """Factor a polynomial."""\n    return str(sympy.factor(sympy.sympify(expr)))\n'
)


# The CPU time (user + system) of the `toolcrib` processes `_calls` ran, per
# label: on a machine other work loads it moves much less than wall time.
CPU_MS: dict[str, list[float]] = {}


def _calls(env: dict[str, str], n: int, tool: str = "double", label: str | None = None) -> list[float]:
    toolcrib = str(Path(sys.executable).parent / "toolcrib")
    times = []
    for i in range(n):
        args = {"x": i} if tool == "double" else {"expr": f"x**2 - {i * i}"}
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [toolcrib, "call", tool, "--args", json.dumps(args), "--allow-unverified", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        times.append((time.perf_counter() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if label is not None:
            used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            CPU_MS.setdefault(label, []).append(used * 1000)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
    return times


def _throughput(env: dict[str, str], loops: int, seconds: float) -> float:
    """Calls per second from `loops` concurrent loops of `toolcrib call`."""
    import threading

    done = [0] * loops
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        while time.monotonic() < deadline:
            _calls(env, 1)
            done[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(loops)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(sum(done) / (time.monotonic() - started), 2)


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 1),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--loops", type=int, default=4, help="concurrent CLI loops for the throughput rows")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the loops run")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "r.db"
        with Registry(registry) as reg:
            reg.add(TOOL)
            reg.add(SYMPY, requires=["sympy"])  # resolved through pip's cache, as add does
        base = {**os.environ, "TOOLCRIB_REGISTRY": str(registry)}
        base.pop("TOOLCRIB_SANDBOX_SERVICE", None)
        service_dir = Path(tmp) / "svc"
        served = {**base, "TOOLCRIB_SANDBOX_SERVICE": "1", "TOOLCRIB_SERVICE_DIR": str(service_dir)}
        try:
            results = {
                "without_service": _summary(_calls(base, opts.calls, label="without_service")),
                "service_first_call": _summary(_calls(served, 1)),
                "service_warm": _summary(_calls(served, opts.calls, label="service_warm")),
                "sympy_without_service": _summary(_calls(base, max(opts.calls // 3, 2), "factor_poly")),
                "sympy_service_first_call": _summary(_calls(served, 1, "factor_poly")),
                "sympy_service_warm": _summary(_calls(served, opts.calls, "factor_poly")),
            }
            loops = {
                "without_service": _throughput(base, opts.loops, opts.seconds),
                "service_warm": _throughput(served, opts.loops, opts.seconds),
            }
        finally:
            stop(service_dir)
    OUT.mkdir(exist_ok=True)
    cpu = {label: round(statistics.median(ms), 1) for label, ms in CPU_MS.items()}
    (OUT / "bench_service.json").write_text(
        json.dumps({**results, "loops_calls_per_s": loops, "cpu_median_ms": cpu}, indent=2)
    )
    for label, numbers in results.items():
        print(f"{label:<26} median {numbers['median_ms']:8.1f} ms   p90 {numbers['p90_ms']:8.1f} ms   n={numbers['n']}")
    for label, ms in cpu.items():
        print(f"{label:<26} CPU of the toolcrib process, median {ms:8.1f} ms")
    for label, rate in loops.items():
        print(f"{opts.loops} concurrent loops, {label:<16} {rate:6.2f} calls/s")


if __name__ == "__main__":
    main(sys.argv[1:])
