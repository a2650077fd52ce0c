"""The wasm backend beside the restricted backend, in one run (issue 23).

Measured on the same tools, each backend in this process:

- trivial call through the API: back-to-back calls of a one-line tool
  (median, p90), and calls spaced 500 ms apart (the pool of pre-warmed
  instances has refilled: a call "from the pool"), on restricted, wasm with
  the host jailed (the Linux default: a forked child per call) and wasm with
  the host in this process (what macOS and Windows get);
- for the host in process, the minor page faults and CPU of this process
  per call from the pool (medians): a measure the machine's load does not
  inflate;
- fresh calls per second on all cores: a stdlib tool (json, re, datetime),
  from as many threads as the machine has cores;
- a sympy tool, locked to the cached sympy and mpmath wheels (plain
  policy): restricted runs it in the lock's zygote, wasm from the guest's
  built-in sympy in a pre-warmed instance of the lock's pool (sympy
  imported ahead); the first call, then calls spaced 5 s apart;
- CPU-bound slowdown against native: the same pure-Python loop as plain
  CPython in this process, under the plain policy on each backend (the
  trivial call's median subtracted);
- cold start: a new backend and its first call; and the compiled module's
  load time (deserialisation). The first-use compile is measured by
  ``--compile`` (into a temporary cache: about a minute of all cores), with
  the harness image's build (Wizer, then its compile) beside it.

Each wasm host runs twice, side by side in the same run: on the harness
image (`sandbox/wasm_snapshot.py`: the guest pre-initialised with the
harness imported) and on the guest's own image (``$TOOLCRIB_WASM_IMAGE=guest``:
the harness imported per instance, as before the image existed). The load
average is recorded before and after.

A script, not a test: prints a table, writes JSON to bench/out/. Goals from
the issue (not assertions): a trivial call <= 10 ms from a pool, >= 25 fresh
stdlib calls/s on 2 cores, a sympy warm call <= 50 ms.

Run: .venv/bin/python bench/bench_wasm.py [--quick] [--compile]
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from toolcrib.sandbox import packages, wasm
from toolcrib.sandbox.contract import Job, Limits, Lock, LockedPackage
from toolcrib.sandbox.restricted import RestrictedBackend

TRIVIAL = "def f():\n    return 1\n"
STDLIB = (
    "import json, re, datetime\n"
    "def f(text):\n"
    "    words = re.findall(r'[a-z]+', text.lower())\n"
    "    return json.dumps({'n': len(words), 'd': datetime.date(2020, 1, 2).isoformat()})\n"
)
SYMPY = "import sympy\ndef f(expr):\n    return str(sympy.factor(sympy.sympify(expr)))\n"
LOOP = "def f(n):\n    total = 0\n    for i in range(n):\n        total += i * i % 7\n    return total\n"
LOOP_N = 3_000_000


def _loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _timed(
    backend: Any, job: Job, n: int, spaced: float = 0.0, usage: list[tuple[int, float]] | None = None
) -> list[float]:
    """Wall ms per call; with `usage`, also (minor page faults, CPU ms) of
    this whole process per call (the whole cost of a call whose host runs
    in process; load-independent, unlike wall time)."""
    times = []
    for _ in range(n):
        time.sleep(spaced)  # spaced: the pool has time to refill (an agent calling now and then)
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = backend.run(job)
        times.append((time.perf_counter() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_SELF)
        if usage is not None:
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            usage.append((after.ru_minflt - before.ru_minflt, cpu * 1000))
        assert result.status == "ok", result
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "n": len(ordered),
    }


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _per_second(backend: Any, job: Job, calls: int, threads: int) -> tuple[float, float]:
    """Calls per second from `threads` threads, and this process's CPU per
    call in ms (the whole cost of a call where the host runs in process:
    a figure the machine's load does not inflate as it does wall time)."""
    started, cpu = time.perf_counter(), _cpu()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _i: backend.run(job), range(calls)))
    assert all(r.status == "ok" for r in results), [r for r in results if r.status != "ok"][:1]
    return round(calls / (time.perf_counter() - started), 1), round((_cpu() - cpu) * 1000 / calls, 1)


def _sympy_lock() -> Lock | None:
    """sympy and mpmath from the wheel cache, if both are there (no network)."""
    cache = packages.wheel_cache()
    wanted = {"sympy": "sympy-1.14.0-py3-none-any.whl", "mpmath": "mpmath-1.3.0-py3-none-any.whl"}
    locked = []
    for name, filename in wanted.items():
        path = cache / filename
        if not path.is_file():
            return None
        version = filename.split("-")[1]
        locked.append(LockedPackage(name, version, filename, hashlib.sha256(path.read_bytes()).hexdigest()))
    return Lock(requirements=["sympy==1.14.0"], packages=locked, imports=["sympy"])


def _cold(make: Any, job: Job) -> float:
    started = time.perf_counter()
    backend = make()
    try:
        result = backend.run(job)
        assert result.status == "ok", result
    finally:
        backend.close()
    return round((time.perf_counter() - started) * 1000, 1)


def _compile_seconds() -> dict[str, Any]:
    """First use into an empty cache: the guest's compile, then the harness
    image's build (Wizer and its compile)."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[wasm.CACHE_ENV] = tmp
        os.chmod(tmp, 0o700)
        started = time.perf_counter()
        try:
            done = wasm.install()
        finally:
            os.environ.pop(wasm.CACHE_ENV, None)
    image = done["harness_image"]
    return {
        "compile_seconds": float(done["compile_seconds"]),
        "harness_image_seconds": image.get("seconds") if image.get("built") else image.get("reason"),
        "install_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    n = 10 if quick else 40
    calls = 20 if quick else 100
    cores = os.cpu_count() or 2
    out: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cores": cores,
        "wasmtime": wasm.status().get("wasmtime"),
    }
    out["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    images = [("guest image", "guest"), ("harness image", "")]
    if wasm.status().get("image") != wasm.IMAGE_NAME:
        images = images[:1]
        out["harness_image"] = wasm.status().get("image_note")
    makers: dict[str, tuple[Any, str]] = {"restricted": (lambda: RestrictedBackend(), "")}
    for image_label, env in images:
        makers[f"wasm (host jailed), {image_label}"] = (lambda: wasm.WasmBackend(jail=True), env)
        makers[f"wasm (host in process), {image_label}"] = (lambda: wasm.WasmBackend(jail=False), env)
    trivial = Job(source=TRIVIAL, entrypoint="f", limits=Limits(cpu=5, wall=30))
    stdlib = Job(source=STDLIB, entrypoint="f", args={"text": "The quick brown fox " * 20}, limits=Limits(wall=30))
    loop = Job(source=LOOP, entrypoint="f", args={"n": LOOP_N}, policy="plain", limits=Limits(cpu=60, wall=120))
    started = time.perf_counter()
    _loop(LOOP_N)
    native_ms = (time.perf_counter() - started) * 1000
    out["native_loop_ms"] = round(native_ms, 1)
    lock = _sympy_lock()
    for label, (make, image_env) in makers.items():
        if image_env:
            os.environ[wasm.IMAGE_ENV] = image_env
        else:
            os.environ.pop(wasm.IMAGE_ENV, None)
        row: dict[str, Any] = {"cold_first_call_ms": _cold(make, trivial)}
        backend = make()
        try:
            backend.run(trivial)  # warm up (zygote, fork server, module load)
            row["trivial"] = _summary(_timed(backend, trivial, n))
            usage: list[tuple[int, float]] = []
            row["trivial_spaced_500ms"] = _summary(_timed(backend, trivial, max(5, n // 3), spaced=0.5, usage=usage))
            if "in process" in label:
                row["pool_call_page_faults"] = statistics.median(u[0] for u in usage)
                row["pool_call_cpu_ms"] = round(statistics.median(u[1] for u in usage), 1)
            row["stdlib_calls_per_s"], cpu_ms = _per_second(backend, stdlib, calls, cores)
            if "in process" in label:
                row["stdlib_cpu_ms_per_call"] = cpu_ms
            loop_ms = statistics.median(_timed(backend, loop, 3))
            row["loop_ms"] = round(loop_ms, 1)
            row["cpu_slowdown_vs_native"] = round((loop_ms - row["trivial"]["median_ms"]) / native_ms, 2)
            if lock is not None:
                job = Job(
                    source=SYMPY,
                    entrypoint="f",
                    args={"expr": "x**2-1"},
                    policy="plain",
                    lock=lock,
                    limits=Limits(cpu=30, wall=60, memory=512),
                )
                first = _timed(backend, job, 1)
                row["sympy_first_call_ms"] = round(first[0], 1)
                # Spaced: a lock keeps one warm instance (restricted: its zygote), refilled after each call.
                row["sympy_call"] = _summary(_timed(backend, job, 5, spaced=5.0))
        finally:
            backend.close()
        out[label] = row
        print(label, json.dumps(row), file=sys.stderr, flush=True)
    os.environ.pop(wasm.IMAGE_ENV, None)
    for image_label, image in (("guest", "guest"), ("harness", "auto")):
        runtime = wasm._Runtime(wasm.cache_dir(), image=image)
        out[f"module_load_ms ({image_label} image)"] = round(runtime.load_ms, 1)
        runtime.close()
    if "--compile" in sys.argv:
        out |= _compile_seconds()
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    target = Path(__file__).with_name("out")
    target.mkdir(exist_ok=True)
    (target / "bench_wasm.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
