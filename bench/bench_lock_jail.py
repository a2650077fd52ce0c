"""What the zygote-stage jail costs (issue 15), side by side with a baseline
revision in one run.

    .venv/bin/python bench/bench_lock_jail.py [--baseline b9526f4] [--rounds 3] [--warm 30]

A lock's packages are imported only inside a jail since issue 15 (network
namespace, unprivileged uid, no_new_privs, seccomp, a read-only Landlock), and
every call's uid comes from a machine-wide block. This measures what that
costs, against the revision before it (default b9526f4, the landed main the
issue was filed against), installed from a git worktree into its own venv
under bench/out/ (built once, not timed):

- ``sympy`` lock, cold start: a fresh `RestrictedBackend`'s first call of a
  tool that factors a polynomial (the lock's zygote starting, importing and
  warming sympy, its probe, the call). Goal: within 20 % of the baseline.
- ``sympy`` lock, warm call: the zygote running, spares forked, calls spaced
  50 ms apart so spares refill off the clock. Goal: within 10 %.
- trivial restricted call, warm (``add(a, b)``, restricted policy), beside
  the fork floor (this process forking a child that exits at once). Goal:
  at the floor, as before.

The two sides alternate round by round (baseline, new, baseline, new...),
each round in a fresh process, so drift in the machine's load hits both.
Each side has its own wheel cache (``TOOLCRIB_CACHE``), so neither reads the
other's site directories. A script, not a test: prints a table and writes
bench/out/bench_lock_jail.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"

# Run by each side's interpreter, from a temporary directory (so `toolcrib`
# is the installed one, never the checkout's).
MEASURE = r"""
import json, os, statistics, sys, time
from toolcrib.sandbox import packages
from toolcrib.sandbox.contract import Job, Limits
from toolcrib.sandbox.restricted import RestrictedBackend

warm_n, cold_n = int(sys.argv[1]), int(sys.argv[2])
SYMPY = "import sympy\n\ndef factor_poly(expr: str) -> str:\n    return str(sympy.factor(sympy.sympify(expr)))\n"
ADD = "def add(a: int, b: int) -> int:\n    return a + b\n"
lock = packages.resolve(["sympy"])
packages.materialize(lock)
sympy_job = Job(source=SYMPY, entrypoint="factor_poly", args={"expr": "x**3 - x"}, policy="plain", lock=lock,
                limits=Limits(memory=512))
add_job = Job(source=ADD, entrypoint="add", args={"a": 1, "b": 2})


def ok(result, want):
    if result.status != "ok" or result.result != want:
        raise SystemExit(f"benchmark call failed: {result.status} {result.error} {result.result!r}")


def timed(backend, job, want):
    t = time.perf_counter()
    result = backend.run(job)
    ms = (time.perf_counter() - t) * 1000
    ok(result, want)
    return ms


out = {"cold_ms": [], "warm_ms": [], "trivial_ms": [], "floor_ms": []}
for _ in range(cold_n):
    backend = RestrictedBackend()
    try:
        out["cold_ms"].append(timed(backend, sympy_job, "x*(x - 1)*(x + 1)"))
    finally:
        backend.close()
backend = RestrictedBackend()
try:
    timed(backend, sympy_job, "x*(x - 1)*(x + 1)")
    timed(backend, add_job, 3)
    for _ in range(warm_n):
        time.sleep(0.05)
        out["warm_ms"].append(timed(backend, sympy_job, "x*(x - 1)*(x + 1)"))
    for _ in range(warm_n):
        time.sleep(0.05)
        out["trivial_ms"].append(timed(backend, add_job, 3))
finally:
    backend.close()
for _ in range(warm_n):
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    out["floor_ms"].append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""


def baseline_python(rev: str) -> Path:
    """An interpreter with toolcrib at ``rev`` installed (not editable)."""
    home = OUT / f"baseline-{rev}"
    python = home / "venv" / "bin" / "python"
    if python.exists():
        return python
    tree = home / "tree"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(tree)], check=True)
    return python


def run_side(python: Path, cache: Path, warm: int, cold: int) -> dict[str, list[float]]:
    env = {**os.environ, "TOOLCRIB_CACHE": str(cache)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), "-c", MEASURE, str(warm), str(cold)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(cache.parent),
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{python}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "min_ms": round(ordered[0], 2),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="b9526f4", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--cold", type=int, default=2, help="cold starts per round")
    opts = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    sides = {"baseline": baseline_python(opts.baseline), "new": Path(sys.executable)}
    caches = {name: OUT / f"cache-{name}" for name in sides}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    for round_no in range(opts.rounds):
        for name, python in sides.items():
            print(f"round {round_no + 1}/{opts.rounds}: {name}", file=sys.stderr)
            got = run_side(python, caches[name], opts.warm, opts.cold)
            for key, values in got.items():
                samples[name].setdefault(key, []).extend(values)
    results: dict[str, Any] = {
        "baseline": opts.baseline,
        "load_average": os.getloadavg(),
        "sides": {name: {key: summary(v) for key, v in s.items()} for name, s in samples.items()},
    }
    labels = {
        "cold_ms": "sympy lock, cold start",
        "warm_ms": "sympy lock, warm call",
        "trivial_ms": "trivial restricted call, warm",
        "floor_ms": "fork floor",
    }
    print(f"{'measure':32} {'baseline median':>16} {'new median':>12} {'change':>8}")
    for key, label in labels.items():
        base = results["sides"]["baseline"][key]["median_ms"]
        new = results["sides"]["new"][key]["median_ms"]
        print(f"{label:32} {base:>14.2f}ms {new:>10.2f}ms {100 * (new - base) / base:>+7.1f}%")
    (OUT / "bench_lock_jail.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT / 'bench_lock_jail.json'}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
