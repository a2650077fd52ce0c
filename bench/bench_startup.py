"""Start-up cost of the CLI, side by side with the same call through the API.

Each CLI measure is a fresh process, spawned the way a shell or an agent's
tool runner spawns it, repeated; medians and p90 are reported:

- floors: ``python -c pass`` (the interpreter) and ``python -c "import click"``
  (the CLI framework): what no change to toolcrib can remove;
- ``toolcrib --help``;
- ``toolcrib call``, up to the sandbox: from spawning the process to the moment
  the restricted backend starts its zygote (an audit hook on
  ``subprocess.Popen`` stops the process right there, so the call itself is
  excluded, as is the zygote's own start);
- ``toolcrib call`` end to end: the above, plus a cold zygote and the call;
- the Python API, in one process: ``Registry.call`` with the zygote warm (what
  a long-lived agent or ``toolcrib serve`` pays per call), and the first call
  of a fresh ``Registry`` on a cold backend.

It also lists which heavy libraries each CLI path imports. A script, not a
test: prints a table and writes JSON to bench/out/. Goal (not an assertion):
``--help`` and ``call`` up to the sandbox under 150 ms (median).

Run: .venv/bin/python bench/bench_startup.py [--reps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
HEAVY = ("pydantic", "sqlite_utils", "jsonschema", "docker", "mcp", "llm", "datasette", "RestrictedPython")

TOOL = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b\n'

# Run in the measured process: stops it as the restricted backend starts its
# zygote, printing the monotonic clock (system-wide on Linux, so comparable
# with the parent's) and the heavy modules imported so far.
_TO_SANDBOX = """
import os, sys, time, json
def _hook(event, args):
    if event == "subprocess.Popen" and any("zygote" in str(a) for a in (args[1] or ())):
        heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(os.environ["BENCH_HEAVY"])))
        os.write(1, json.dumps({"at": time.perf_counter(), "cpu": time.process_time(), "heavy": heavy}).encode())
        os._exit(0)
sys.addaudithook(_hook)
sys.argv = ["toolcrib", *sys.argv[1:]]
from toolcrib.cli import main
main()
"""

# `toolcrib --help`, reporting which heavy modules it imported.
_HELP_IMPORTS = """
import io, os, sys, json, contextlib
sys.argv = ["toolcrib", "--help"]
from toolcrib.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(os.environ["BENCH_HEAVY"])))))
"""


def stats(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 1),
        "min_ms": round(ordered[0], 1),
    }


Samples = tuple[list[float], list[float]]  # (wall ms, CPU ms) per repetition


def wall(argv: list[str], env: dict[str, str], reps: int, cwd: Path) -> Samples:
    """Wall time of a fresh process, spawn to exit, and its CPU time (user +
    system, the process itself only): on a busy machine wall time grows with
    the load, CPU time much less."""
    walls, cpus = [], []
    for _ in range(reps):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
        proc.returncode = 0  # reaped above
    return walls, cpus


def to_sandbox(argv: list[str], env: dict[str, str], reps: int, cwd: Path) -> tuple[Samples, list[str]]:
    walls, cpus, heavy = [], [], []
    for _ in range(reps):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _TO_SANDBOX, *argv], env=env, cwd=cwd, capture_output=True, check=False
        )
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError:
            sys.exit(f"the call never reached the sandbox: {done.stderr.decode()[-500:]}")
        walls.append((report["at"] - start) * 1000)
        cpus.append(report["cpu"] * 1000)
        heavy = report["heavy"]
    return (walls, cpus), heavy


def api_calls(db: Path, reps: int) -> tuple[list[float], list[float]]:
    """(warm calls, first calls of a fresh Registry on a cold backend), in this
    process, wall time."""
    from toolcrib.sandbox import close_backends

    from toolcrib import Registry

    warm, first = [], []
    for _ in range(max(3, reps // 4)):
        close_backends()
        start = time.perf_counter()
        with Registry(db, actor="bench") as reg:
            reg.call("add", {"a": 1, "b": 2})
        first.append((time.perf_counter() - start) * 1000)
    with Registry(db, actor="bench") as reg:
        reg.call("add", {"a": 1, "b": 2})
        for i in range(reps * 4):
            start = time.perf_counter()
            reg.call("add", {"a": i, "b": 1})
            warm.append((time.perf_counter() - start) * 1000)
    close_backends()
    return warm, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21, help="repetitions of each measure (default 21)")
    reps = parser.parse_args().reps

    exe = shutil.which("toolcrib", path=str(Path(sys.executable).parent)) or "toolcrib"
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    # Every measured process runs in the temp dir: run from a source checkout,
    # `python -c` would import the checkout's code (toolcrib/__init__.py maps
    # it), not the copy installed beside this interpreter.
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "bench.db"
        env = {**os.environ, "TOOLCRIB_REGISTRY": str(db), "BENCH_HEAVY": json.dumps(HEAVY)}
        from toolcrib.sandbox import close_backends

        import toolcrib
        from toolcrib import Registry

        measured = subprocess.run(
            [sys.executable, "-c", "import toolcrib; print(toolcrib.__file__)"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if measured != toolcrib.__file__:
            sys.exit(f"the processes would measure {measured}, this script imported {toolcrib.__file__}")
        results["toolcrib"] = measured
        print(f"measuring {Path(measured).parent} ({exe})", file=sys.stderr)
        with Registry(db, actor="bench") as reg:
            reg.add(TOOL, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
            reg.verify("add")
        close_backends()

        call = ["call", "add", "--args", '{"a": 1, "b": 2}']
        help_heavy = subprocess.run(
            [sys.executable, "-c", _HELP_IMPORTS], env=env, cwd=tmp, capture_output=True, text=True, check=True
        ).stdout
        rows: list[tuple[str, Samples, str]] = [
            ("python -c pass (floor)", wall([sys.executable, "-c", "pass"], env, reps, tmp), ""),
            ('python -c "import click" (floor)', wall([sys.executable, "-c", "import click"], env, reps, tmp), ""),
            ("toolcrib --help", wall([exe, "--help"], env, reps, tmp), ", ".join(json.loads(help_heavy)) or "none"),
        ]
        sandbox_samples, call_heavy = to_sandbox(call, env, reps, tmp)
        rows.append(("toolcrib call, up to the sandbox", sandbox_samples, ", ".join(call_heavy)))
        rows.append(("toolcrib call, end to end (cold zygote)", wall([exe, *call], env, reps, tmp), ""))
        warm, first = api_calls(db, reps)
        rows.append(("API: Registry.call, zygote warm", (warm, []), ""))
        rows.append(("API: new Registry + first call, cold zygote", (first, []), ""))

    print(
        f"{'measure (fresh process unless API)':<46} {'n':>4} {'median':>9} {'p90':>9} {'min':>9} {'CPU med':>9}  heavy imports"
    )
    for label, (walls, cpus), heavy in rows:
        s = stats(walls)
        cpu = round(statistics.median(cpus), 1) if cpus else None
        results[label] = {**s, "cpu_median_ms": cpu, "heavy_imports": heavy}
        cpu_text = f"{cpu:7.1f}ms" if cpu is not None else f"{'':9}"
        print(
            f"{label:<46} {s['n']:>4} {s['median_ms']:>7.1f}ms {s['p90_ms']:>7.1f}ms {s['min_ms']:>7.1f}ms {cpu_text}  {heavy}"
        )
    try:
        results["load_average"] = os.getloadavg()
    except OSError:
        pass
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_startup.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
