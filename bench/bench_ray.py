"""The `ray` backend beside the restricted backend, in one run.

On a real two-node Ray cluster on this machine (a head and a worker node,
one CPU each, one actor per node unless said), inside a private network
namespace (the script re-runs itself under ``unshare --net``; root only):

- per-call overhead: a trivial call, warm, back to back, direct (the
  restricted backend in this process) and through Ray (one actor);
- throughput on the same two cores: direct against Ray with 1 actor (the
  head alone) and 2 actors (a worker node added), as the registry fans work
  out (`parallel.run_jobs`) and with threads calling at once; Ray without
  batches (the previous way) beside it;
- verifying 1,000 one-case tools, one after the other and fanned out as
  ``verify --all`` does, direct and through Ray;
- the single writer: calls per second that one registry file records (the
  call's bookkeeping and audit append, on a FakeBackend that answers at
  once) from 1, 4 and 8 writer processes: where the registry would saturate.

A script, not a test. Goals (issue 20, not assertions): overhead at most
1.5 ms over direct; Ray throughput at least 90 % of direct on the same cores.

Run: sudo .venv/bin/python bench/bench_ray.py [--quick]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
# The test suite's two-node cluster (tests/raycluster.py): one way to start it.
sys.path.insert(0, str(HERE.parent / "tests"))

TRIVIAL = "def f(x: int) -> int:\n    return x + 1\n"


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def per_call(direct: Any, ray: Any, n: int, rounds: int = 10) -> dict[str, dict[str, float]]:
    """Trivial calls one at a time, warm, on each side in turn (`rounds`
    rounds of n / rounds calls each, so the machine's other load falls on
    both alike): each side's median and p90, and its CPU milliseconds per
    call (this process tree's, as `interleaved`)."""
    from toolcrib.sandbox.contract import Job

    job = Job(source=TRIVIAL, entrypoint="f", args={"x": 1})
    sides = {"direct": direct, "ray": ray}
    samples: dict[str, list[float]] = {side: [] for side in sides}
    cpu: dict[str, float] = {side: 0.0 for side in sides}
    for backend in sides.values():
        for _ in range(20):
            backend.run(job)
    for _ in range(rounds):
        for side, backend in sides.items():
            cpu0 = tree_cpu()
            for _ in range(n // rounds):
                start = time.perf_counter()
                result = backend.run(job)
                samples[side].append(time.perf_counter() - start)
                assert result.status == "ok", result
            cpu[side] += tree_cpu() - cpu0
    out = {}
    for side, times in samples.items():
        ordered = sorted(times)
        out[side] = {
            "median_ms": _median_ms(times),
            "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 3),
            "cpu_ms": round(cpu[side] * 1000 / len(times), 2),
        }
    return out


def throughput(backend: Any, threads: int, calls: int) -> float:
    from toolcrib.sandbox.contract import Job

    job = Job(source=TRIVIAL, entrypoint="f", args={"x": 1})
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _i: backend.run(job), range(calls)))
    elapsed = time.perf_counter() - start
    assert all(r.status == "ok" for r in results)
    return round(calls / elapsed, 1)


def verify_all(db: Path, backend: str, tools: int) -> float:
    """Seconds to verify `tools` one-case tools one after the other."""
    from toolcrib import Registry

    with Registry(db, actor="bench") as reg:
        if not reg.list():
            for i in range(tools):
                reg.add(TRIVIAL.replace("def f", f"def f{i}"), tests=[{"args": {"x": i}, "expected": i + 1}])
        refs = [t.ref for t in reg.list()]
        start = time.perf_counter()
        for ref in refs:
            assert reg.verify(ref, backend=backend).status == "verified"
        return round(time.perf_counter() - start, 2)


def _writer(path: str, seconds: float, queue: Any) -> None:
    from toolcrib.sandbox.fake import FakeBackend

    from toolcrib import Registry

    fake = FakeBackend(lambda job: job.args["x"] + 1, name="restricted")
    with Registry(path, actor="bench", backends={"restricted": fake}) as reg:
        count = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reg.call("f", {"x": count}, allow_unverified=True)
            count += 1
    queue.put(count)


def registry_writes(writers: int, seconds: float) -> float:
    """Calls per second recorded by one registry file from `writers` processes."""
    from toolcrib import Registry

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "w.db")
        with Registry(path, actor="bench") as reg:
            reg.add(TRIVIAL, tests=[{"args": {"x": 1}, "expected": 2}])
        queue: Any = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_writer, args=(path, seconds, queue)) for _ in range(writers)]
        for p in procs:
            p.start()
        total = sum(queue.get() for _ in procs)
        for p in procs:
            p.join()
        with Registry(path, create=False) as reg:
            assert len(reg.audit(event="call", limit=None)) == total
        return round(total / seconds, 1)


def fan_out(backend: Any, calls: int) -> float:
    """Calls per second as the registry fans work out (`parallel.run_jobs`:
    as many in flight as `workers_for` says: direct, the spare children
    within the cores; ray, every actor's slots with a batch gathering)."""
    from toolcrib.registry.parallel import run_jobs
    from toolcrib.sandbox.contract import Job

    jobs = [Job(source=TRIVIAL, entrypoint="f", args={"x": i}) for i in range(calls)]
    start = time.perf_counter()
    results = run_jobs(backend, jobs)
    elapsed = time.perf_counter() - start
    assert all(r is not None and r.status == "ok" and r.result == i + 1 for i, r in enumerate(results))
    return round(calls / elapsed, 1)


def verify_fanned(db: Path, backend: str, tools: int) -> float:
    """Seconds for `verify --all`'s way: `parallelism` versions at once."""
    from toolcrib import Registry

    with Registry(db, actor="bench") as reg:
        if not reg.list():
            for i in range(tools):
                reg.add(TRIVIAL.replace("def f", f"def f{i}"), tests=[{"args": {"x": i}, "expected": i + 1}])
        refs = [t.ref for t in reg.list()]
        start = time.perf_counter()
        with ThreadPoolExecutor(reg.parallelism(backend)) as pool:
            statuses = set(pool.map(lambda ref: reg.verify(ref, backend=backend).status, refs))
        assert statuses == {"verified"}, statuses
        return round(time.perf_counter() - start, 2)


def tree_cpu() -> float:
    """CPU seconds used so far by this process and every process below it
    (the Ray nodes' daemons and actors, the zygotes, and the sandboxes they
    have reaped): what one side of a measure costs the machine, whatever
    else runs on it."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    tree = {os.getpid()}
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return sum(times.get(pid, 0.0) for pid in tree)


def interleaved(direct: Any, ray: Any, calls: int, rounds: int, measure: Any = None) -> dict[str, float]:
    """`measure(backend, calls)` (default `fan_out`) on direct and ray in
    turn, `rounds` times: the medians of each side's calls/s and of the
    per-round ratio ray / direct (the machine's other load changes between
    rounds, less within one); and each side's CPU milliseconds per call
    (this process tree's, Ray's idle daemons included on both sides): the
    cost on the same cores whatever else runs on the machine."""
    measure = measure or fan_out
    rows: list[tuple[float, float, float, float]] = []
    for _ in range(rounds):
        cpu0 = tree_cpu()
        d = measure(direct, calls)
        cpu1 = tree_cpu()
        r = measure(ray, calls)
        cpu2 = tree_cpu()
        rows.append((d, r, (cpu1 - cpu0) * 1000 / calls, (cpu2 - cpu1) * 1000 / calls))
    return {
        "direct": round(statistics.median(x[0] for x in rows), 1),
        "ray": round(statistics.median(x[1] for x in rows), 1),
        "percent": round(statistics.median(x[1] / x[0] for x in rows) * 100, 1),
        "direct_cpu_ms": round(statistics.median(x[2] for x in rows), 2),
        "ray_cpu_ms": round(statistics.median(x[3] for x in rows), 2),
        "cpu_percent": round(statistics.median(x[2] / x[3] for x in rows) * 100, 1),
    }


def _row(label: str, m: dict[str, float]) -> tuple[str, Any, Any, str]:
    return (
        label,
        f"{m['direct']} ({m['direct_cpu_ms']} ms CPU)",
        f"{m['ray']} ({m['ray_cpu_ms']} ms CPU)",
        f"calls/s; ray {m['percent']} % of direct; per CPU-second {m['cpu_percent']} %",
    )


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def inner(quick: bool) -> None:
    import toolcrib.sandbox.backends as table
    from raycluster import RayCluster
    from toolcrib.sandbox.ray_backend import RayBackend
    from toolcrib.sandbox.restricted import RestrictedBackend

    n, calls, tools, seconds, rounds = (100, 400, 100, 2.0, 2) if quick else (300, 1200, 1000, 5.0, 5)
    cluster = RayCluster()
    rows: list[tuple[str, Any, Any, str]] = []
    loads = {"start": _load()}
    try:
        cluster.start_head()
        cluster.connect()
        cluster.wait_for_nodes(1)
        direct = RestrictedBackend()
        # One actor: the head node alone.
        one = RayBackend(cluster.address, actors_per_node=1)
        one.start()
        # Calls one at a time: one round trip each.
        single = per_call(direct, one, n)
        d, r = single["direct"], single["ray"]
        overhead = round(r["median_ms"] - d["median_ms"], 3)
        rows.append(
            (
                "trivial call, warm, median",
                f"{d['median_ms']} ms ({d['cpu_ms']} ms CPU)",
                f"{r['median_ms']} ms ({r['cpu_ms']} ms CPU)",
                f"one at a time, interleaved; overhead {overhead} ms",
            )
        )
        rows.append(("trivial call, warm, p90", f"{d['p90_ms']} ms", f"{r['p90_ms']} ms", "one at a time"))
        rows.append(("throughput, 1 thread", throughput(direct, 1, calls), throughput(one, 1, calls), "calls/s"))
        loads["after the single calls"] = _load()
        rows.append(_row("fan-out, 1 actor (run_jobs), median", interleaved(direct, one, calls, rounds)))
        loads["after the 1-actor fan-out"] = _load()
        one.close()
        # The same without batches: as before (a Ray call per job, slots in flight).
        one_unbatched = RayBackend(cluster.address, actors_per_node=1, batch=1)
        one_unbatched.start()
        rows.append(_row("fan-out, 1 actor, no batches (before)", interleaved(direct, one_unbatched, calls, rounds)))
        one_unbatched.close()
        cluster.add_node("worker")
        cluster.wait_for_nodes(2)
        # Two actors, one per node; first without batches (the previous way).
        unbatched = RayBackend(cluster.address, actors_per_node=1, batch=1)
        unbatched.start()
        before = interleaved(direct, unbatched, calls, rounds, lambda b, c: throughput(b, 4, c))
        rows.append(_row("2 actors, 4 threads, no batches (before)", before))
        unbatched.close()
        two = RayBackend(cluster.address, actors_per_node=1)
        two.start()
        rows.append(_row("fan-out, 2 actors (run_jobs), median", interleaved(direct, two, calls, rounds)))
        loads["after the 2-actor fan-out"] = _load()
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "v.db"
            seconds_direct = verify_all(db, "restricted", tools)
            db2 = Path(tmp) / "v2.db"
            with table.registered("ray", two):
                seconds_ray = verify_all(db2, "ray", tools)
            rows.append((f"verify {tools} one-case tools, one by one", f"{seconds_direct} s", f"{seconds_ray} s", ""))
            db3, db4 = Path(tmp) / "v3.db", Path(tmp) / "v4.db"
            seconds_direct = verify_fanned(db3, "restricted", tools)
            with table.registered("ray", two):
                seconds_ray = verify_fanned(db4, "ray", tools)
            rows.append((f"verify {tools} one-case tools, fanned out", f"{seconds_direct} s", f"{seconds_ray} s", ""))
        two.close()
        direct.close()
    finally:
        loads["end of the ray part"] = _load()
        cluster.stop()
    writes = {w: registry_writes(w, seconds) for w in (1, 4, 8)}
    loads["end"] = _load()
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average_1_5_15": loads,
        "rows": [{"measure": m, "direct": a, "ray": b, "note": c} for m, a, b, c in rows],
        "registry_calls_per_s_by_writers": writes,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_ray.json").write_text(json.dumps(report, indent=2))
    print(f"{'measure':45} {'direct':>24} {'ray':>24}  note")
    for m, a, b, c in rows:
        print(f"{m:45} {a!s:>24} {b!s:>24}  {c}")
    print("registry: calls recorded per second, by writer processes:", writes)
    print("load average (1/5/15 min):", loads)


def in_private_netns(script: str, run: Callable[[], None]) -> None:
    """Run ``run`` inside a private network namespace (loopback only), which
    `script` re-executes itself into as root; exits with its code."""
    if os.environ.get("BENCH_RAY_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        run()
        return
    if os.geteuid() != 0:
        sys.exit(f"{Path(script).name} needs root: the cluster runs in a private network namespace")
    env = {**os.environ, "BENCH_RAY_NETNS": "1"}
    sys.exit(subprocess.run(["unshare", "--net", sys.executable, script, *sys.argv[1:]], env=env).returncode)


def main() -> None:
    quick = "--quick" in sys.argv
    in_private_netns(__file__, lambda: inner(quick))


if __name__ == "__main__":
    main()
