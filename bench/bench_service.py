"""`toolcrib call` of a trivial tool end to end, with and without the warm
sandbox service (issue 21, sandbox/service.py).

    .venv/bin/python bench/bench_service.py [--calls 15]

Each call is a fresh `toolcrib` process (spawn to exit), of a trivial tool
and of a `sympy` tool (its lock resolved at add through pip's cache). Without
the service every process starts its own zygote (the sympy tool's imports
sympy first); with it (TOOLCRIB_SANDBOX_SERVICE=1,
a service directory of this run's own) the first call starts the service and
is left out, the rest find it warm. Then `--loops` concurrent loops of the
trivial call for `--seconds`, each way: calls per second, with the CPU each
call cost the `toolcrib` processes and the service (its process and every
process under it: zygotes, their sandboxes), so that the rate can be read
against the 2 cores it had. The load average is recorded before and after.
Prints medians and p90s, writes JSON to bench/out/bench_service.json.
Asserts nothing.

On a toolcrib with toolcrib/console.py (issue 21) a warm-service call is
served whole by the service; the run says whether its service serves
``call`` (`status()["serves"]`), so the same script measures either side.
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

from toolcrib.sandbox.service import status, stop

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


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, its reaped children's included) of a
    process and of every process under it now."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    total += sum(int(f) for f in fields[11:15]) / ticks
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        total += sum(_tree_cpu_s(int(child)) for child in children)
    return total


def _throughput(env: dict[str, str], loops: int, seconds: float) -> dict[str, float]:
    """Calls per second from `loops` concurrent loops of `toolcrib call`,
    and the CPU per call of the `toolcrib` processes and of the service."""
    import threading

    done = [0] * loops
    deadline = time.monotonic() + seconds
    service = status(Path(env["TOOLCRIB_SERVICE_DIR"])) if "TOOLCRIB_SERVICE_DIR" in env else {}
    pid = service.get("pid")

    def loop(index: int) -> None:
        while time.monotonic() < deadline:
            _calls(env, 1)
            done[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(loops)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served_before = _tree_cpu_s(pid) if pid else 0.0
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    calls = max(1, sum(done))
    client = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {
        "calls_per_s": round(sum(done) / elapsed, 2),
        "client_cpu_ms_per_call": round(client / calls * 1000, 1),
        "service_cpu_ms_per_call": round(((_tree_cpu_s(pid) if pid else 0.0) - served_before) / calls * 1000, 1),
    }


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
    load = {"before": [round(x, 2) for x in os.getloadavg()]}
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
            serves = status(service_dir).get("serves", [])
            loops = {
                "without_service": _throughput(base, opts.loops, opts.seconds),
                "service_warm": _throughput(served, opts.loops, opts.seconds),
            }
        finally:
            stop(service_dir)
    load["after"] = [round(x, 2) for x in os.getloadavg()]
    OUT.mkdir(exist_ok=True)
    cpu = {label: round(statistics.median(ms), 1) for label, ms in CPU_MS.items()}
    (OUT / "bench_service.json").write_text(
        json.dumps(
            {**results, "loops": loops, "cpu_median_ms": cpu, "service_serves": serves, "loadavg": load}, indent=2
        )
    )
    print(f"load average before {load['before']}, after {load['after']}; the service serves {serves or 'jobs only'}")
    for label, numbers in results.items():
        print(f"{label:<26} median {numbers['median_ms']:8.1f} ms   p90 {numbers['p90_ms']:8.1f} ms   n={numbers['n']}")
    for label, ms in cpu.items():
        print(f"{label:<26} CPU of the toolcrib process, median {ms:8.1f} ms")
    for label, rate in loops.items():
        print(
            f"{opts.loops} concurrent loops, {label:<16} {rate['calls_per_s']:6.2f} calls/s   CPU per call: "
            f"toolcrib {rate['client_cpu_ms_per_call']:.1f} ms, service {rate['service_cpu_ms_per_call']:.1f} ms"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
