"""`toolcrib call` of a trivial tool end to end, with and without the warm
sandbox service (issue 21, sandbox/service.py).

    .venv/bin/python bench/bench_service.py [--calls 15]

Each call is a fresh `toolcrib` process (spawn to exit), of a trivial tool
and of a `sympy` tool (its lock resolved at add through pip's cache). Without
the service every process starts its own zygote (the sympy tool's imports
sympy first); with it (TOOLCRIB_SANDBOX_SERVICE=1,
a service directory of this run's own) the first call starts the service and
is left out, the rest find it warm. Prints medians and p90s, writes JSON to
bench/out/bench_service.json. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _calls(env: dict[str, str], n: int, tool: str = "double") -> list[float]:
    toolcrib = str(Path(sys.executable).parent / "toolcrib")
    times = []
    for i in range(n):
        args = {"x": i} if tool == "double" else {"expr": f"x**2 - {i * i}"}
        started = time.perf_counter()
        done = subprocess.run(
            [toolcrib, "call", tool, "--args", json.dumps(args), "--allow-unverified", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        times.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
    return times


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
                "without_service": _summary(_calls(base, opts.calls)),
                "service_first_call": _summary(_calls(served, 1)),
                "service_warm": _summary(_calls(served, opts.calls)),
                "sympy_without_service": _summary(_calls(base, max(opts.calls // 3, 2), "factor_poly")),
                "sympy_service_first_call": _summary(_calls(served, 1, "factor_poly")),
                "sympy_service_warm": _summary(_calls(served, opts.calls, "factor_poly")),
            }
        finally:
            stop(service_dir)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_service.json").write_text(json.dumps(results, indent=2))
    for label, numbers in results.items():
        print(f"{label:<26} median {numbers['median_ms']:8.1f} ms   p90 {numbers['p90_ms']:8.1f} ms   n={numbers['n']}")


if __name__ == "__main__":
    main(sys.argv[1:])
