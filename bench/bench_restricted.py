"""Latency and throughput of the restricted backend, with its baselines.

Measured in one run, on the same trivial tool:

- restricted backend, zygote warm: back-to-back calls, and calls spaced a few
  milliseconds apart (an agent calling a tool now and then: the zygote has
  time to refill its spare pool between calls);
- cold: a new backend (zygote start) plus its first call;
- (a) a fresh ``python -I -S`` subprocess per call (same function);
- (b) in-process RestrictedPython, ``compile_restricted`` + ``exec`` in the
  caller's own process: the unsafe lower bound;
- (c) the fork-from-a-warm-parent floor: this process forks a child that
  computes the answer and writes it to a pipe; no jail, no policy, no JSON
  job: what any fork-per-call design pays at least;
- CPU time of a brute-force search in LATM's Chinese-remainder shape, under
  the ``plain`` policy in the jail and as plain CPython in this process, side
  by side (and under the ``restricted`` policy, for scale);
- throughput: 1,000 test-case-style jobs of a small tool, from one thread and
  from several.

A script, not a test: it prints a table and writes JSON to bench/out/. Goals
(not assertions): warm median (calls spaced 5 ms) at most 2 ms, cold first
call at most 100 ms, plain-policy brute force within 1.2x of plain CPython.

Run: .venv/bin/python bench/bench_restricted.py [--quick]
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from toolcrib.sandbox import Job, Limits
from toolcrib.sandbox.restricted import RestrictedBackend

TRIVIAL = "def add(a, b):\n    return a + b\n"

# A small tool in the LATM style (a sort-the-words helper) and a test case's
# worth of input: what `verify` runs a thousand times.
SMALL_TOOL = '''
def sort_words(text):
    """Sort the words of a sentence alphabetically, case-insensitively."""
    words = [w.strip(".,;:!?") for w in text.split()]
    words = [w for w in words if w]
    return " ".join(sorted(words, key=lambda w: (w.lower(), w)))
'''
SMALL_CASE = {"text": "List: thrasher barbados wiry cruelty snuffle appreciate decorate paper hesitant"}

OUT = Path(__file__).resolve().parent / "out"


def stats(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "min_ms": round(ordered[0], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def timed(n: int, fn: Callable[[int], Any], pause: float = 0.0) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
        if pause:
            time.sleep(pause)
    return samples


def check_ok(result) -> None:  # type: ignore[no-untyped-def]
    if result.status != "ok":
        raise SystemExit(f"benchmark call failed: {result}")


def bench_restricted_warm(n: int, pause: float) -> list[float]:
    backend = RestrictedBackend()
    try:
        backend.start()
        for i in range(20):  # let the spare pool settle
            check_ok(backend.run(Job(source=TRIVIAL, entrypoint="add", args={"a": i, "b": 1})))
        return timed(
            n, lambda i: check_ok(backend.run(Job(source=TRIVIAL, entrypoint="add", args={"a": i, "b": 1}))), pause
        )
    finally:
        backend.close()


def bench_cold(n: int) -> list[float]:
    samples = []
    for i in range(n):
        backend = RestrictedBackend()
        try:
            started = time.perf_counter()
            check_ok(backend.run(Job(source=TRIVIAL, entrypoint="add", args={"a": i, "b": 1})))
            samples.append((time.perf_counter() - started) * 1000)
        finally:
            backend.close()
        # A cold start is a host's first call on an idle machine: let the
        # previous sample's zygote finish dying instead of timing both.
        time.sleep(0.3)
    return samples


def bench_subprocess(n: int) -> list[float]:
    code = TRIVIAL + "import sys\nprint(add(int(sys.argv[1]), 1))\n"

    def once(i: int) -> None:
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code, str(i)], capture_output=True, check=True, text=True
        )
        if out.stdout.strip() != str(i + 1):
            raise SystemExit(f"subprocess baseline gave {out.stdout!r}")

    return timed(n, once)


def bench_in_process(n: int) -> list[float]:
    from RestrictedPython import compile_restricted, safe_globals

    def once(i: int) -> None:
        namespace = dict(safe_globals)
        exec(compile_restricted(TRIVIAL, "<tool>", "exec"), namespace)
        if namespace["add"](i, 1) != i + 1:
            raise SystemExit("in-process baseline gave a wrong answer")

    return timed(n, once)


def bench_fork_floor(n: int) -> list[float]:
    def once(i: int) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write_fd, str(i + 1).encode())
            os._exit(0)
        os.close(write_fd)
        answer = os.read(read_fd, 64)
        os.close(read_fd)
        os.waitpid(pid, 0)
        if answer != str(i + 1).encode():
            raise SystemExit("fork floor gave a wrong answer")

    return timed(n, once)


# LATM's chinese_remainder_theorem tool searches candidates one by one.
CRT_TOOL = '''
def solve_crt(remainders, moduli, limit):
    """The smallest x below limit with x % m == r for every pair (brute force)."""
    for x in range(limit):
        if all(x % m == r for r, m in zip(remainders, moduli)):
            return x
    return None
'''
CRT_ARGS = {"remainders": [1, 2, 3, 4], "moduli": [1009, 1013, 1019, 1021], "limit": 400_000}


def bench_brute_force(repeats: int) -> dict[str, Any]:
    """CPU-bound work: the jailed plain policy against plain CPython."""
    namespace: dict[str, Any] = {}
    exec(CRT_TOOL, namespace)
    cpython = []
    for _ in range(repeats):
        started = time.process_time()
        expected = namespace["solve_crt"](**CRT_ARGS)
        cpython.append((time.process_time() - started) * 1000)
    backend = RestrictedBackend()
    limits = Limits(cpu=30, wall=60, memory=256)
    out: dict[str, Any] = {"cpython_in_process": stats(cpython)}
    try:
        backend.start()
        for policy in ("plain", "restricted"):
            samples = []
            for _ in range(repeats):
                result = backend.run(
                    Job(source=CRT_TOOL, entrypoint="solve_crt", args=CRT_ARGS, limits=limits, policy=policy)
                )  # type: ignore[arg-type]
                check_ok(result)
                if result.result != expected:
                    raise SystemExit(f"{policy} gave {result.result}, CPython {expected}")
                # Wall time of the whole call (fork, run, reply): an upper bound on its CPU time.
                samples.append(result.duration_ms)
            out[f"{policy}_policy_in_jail"] = stats(samples)
    finally:
        backend.close()
    base = out["cpython_in_process"]["median_ms"]
    out["plain_ratio"] = round(out["plain_policy_in_jail"]["median_ms"] / base, 3)
    out["restricted_ratio"] = round(out["restricted_policy_in_jail"]["median_ms"] / base, 3)
    return out


def bench_throughput(jobs: int, threads: int) -> dict[str, float]:
    backend = RestrictedBackend()
    job = Job(source=SMALL_TOOL, entrypoint="sort_words", args=SMALL_CASE, limits=Limits(cpu=2, wall=10, memory=128))
    try:
        backend.start()
        check_ok(backend.run(job))
        started = time.perf_counter()
        if threads == 1:
            for _ in range(jobs):
                check_ok(backend.run(job))
        else:
            with ThreadPoolExecutor(threads) as pool:
                for result in pool.map(lambda _i: backend.run(job), range(jobs)):
                    check_ok(result)
        elapsed = time.perf_counter() - started
    finally:
        backend.close()
    return {"jobs": jobs, "threads": threads, "seconds": round(elapsed, 3), "calls_per_s": round(jobs / elapsed, 1)}


def _proc_kib(pid: int, field: str, name: str = "status") -> int:
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def bench_memory(calls: int) -> dict[str, float]:
    """What the warm zygote costs in memory, what one call's process adds
    (proportional set size: shared pages split among sharers), and whether
    the host grows over many calls."""
    backend = RestrictedBackend()
    job = Job(source=SMALL_TOOL, entrypoint="sort_words", args=SMALL_CASE)
    try:
        backend.start()
        check_ok(backend.run(job))
        time.sleep(0.2)  # let the spares finish their warm-up
        zygote = int(backend.info()["zygote_pid"])
        with open(f"/proc/{zygote}/task/{zygote}/children") as f:
            spares = [int(pid) for pid in f.read().split()]
        spare_pss = [_proc_kib(pid, "Pss", "smaps_rollup") for pid in spares]
        host_before = _proc_kib(os.getpid(), "VmRSS")
        for _ in range(calls):
            check_ok(backend.run(job))
        host_after = _proc_kib(os.getpid(), "VmRSS")
        return {
            "zygote_rss_mib": round(_proc_kib(zygote, "VmRSS") / 1024, 1),
            "zygote_pss_mib": round(_proc_kib(zygote, "Pss", "smaps_rollup") / 1024, 1),
            "spare_pss_mib": round(statistics.mean(spare_pss) / 1024, 2) if spare_pss else 0.0,
            "spares": len(spares),
            "calls": calls,
            "host_rss_growth_kib": host_after - host_before,
        }
    finally:
        backend.close()


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    n = 100 if quick else 500
    jobs = 200 if quick else 1000
    load_before = os.getloadavg()
    latency = {
        "restricted warm, back-to-back": stats(bench_restricted_warm(n, 0.0)),
        "restricted warm, spaced 5 ms": stats(bench_restricted_warm(n, 0.005)),
        "restricted cold (start + 1st call)": stats(bench_cold(5 if quick else 20)),
        "(a) fresh python -I -S per call": stats(bench_subprocess(20 if quick else 50)),
        "(b) in-process RestrictedPython": stats(bench_in_process(n)),
        "(c) fork from a warm parent (floor)": stats(bench_fork_floor(n)),
    }
    brute = bench_brute_force(3 if quick else 7)
    throughput = [bench_throughput(jobs, 1), bench_throughput(jobs, 4)]
    memory = bench_memory(jobs)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "latency": latency,
        "brute_force": brute,
        "throughput": throughput,
        "memory": memory,
        "goals": {"warm_spaced_median_ms": 2.0, "cold_first_call_ms": 100.0, "plain_over_cpython": 1.2},
    }
    print(f"{'latency of a trivial call':<38} {'n':>5} {'median':>9} {'p95':>9} {'min':>9}")
    for label, row in latency.items():
        print(f"{label:<38} {row['n']:>5} {row['median_ms']:>7.2f}ms {row['p95_ms']:>7.2f}ms {row['min_ms']:>7.2f}ms")
    print()
    print(
        f"brute force (CRT search): CPython {brute['cpython_in_process']['median_ms']:.0f} ms, "
        f"plain policy in the jail {brute['plain_policy_in_jail']['median_ms']:.0f} ms ({brute['plain_ratio']}x), "
        f"restricted policy {brute['restricted_policy_in_jail']['median_ms']:.0f} ms ({brute['restricted_ratio']}x)"
    )
    for row in throughput:
        print(
            f"throughput: {row['jobs']} jobs of a small tool, {row['threads']} thread(s): {row['calls_per_s']:.0f} calls/s ({row['seconds']} s)"
        )
    print(
        f"memory: zygote RSS {memory['zygote_rss_mib']} MiB (PSS {memory['zygote_pss_mib']} MiB); "
        f"each call's process PSS {memory['spare_pss_mib']} MiB ({memory['spares']} spares); "
        f"host RSS growth over {memory['calls']} calls: {memory['host_rss_growth_kib']} KiB"
    )
    print(f"load average before/after: {report['load_average_before']} / {report['load_average_after']}")
    OUT.mkdir(exist_ok=True)
    path = OUT / "bench_restricted.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
