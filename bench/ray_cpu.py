"""Where Ray's extra CPU per call goes in a fan-out (issue 20): every process
of a two-node cluster on this machine, and the driver's and actors' threads,
CPU microseconds per call over a fixed number of calls (/proc/PID/stat and
/proc/PID/task/TID/stat before and after), direct beside ray, 1 and 2 actors,
and the cluster's idle CPU per second with no calls at all.

CPU time, not wall clock: the machine is shared, and a process's CPU per call
is what the same cores pay whatever else runs on them.

With ``--spy``, before the 2-actor rows: 15 s of fan-outs profiled into
/tmp/tcprof/ (driver and each actor): ``perf record -g`` with ``--perf``
(`perf report -i /tmp/tcprof/actor0.perf --sort comm,dso`), else py-spy's
raw stacks (``$PY_SPY``, default /tmp/pyspy/venv/bin/py-spy; nonblocking,
so its samples include threads that wait).

Run: sudo .venv/bin/python bench/ray_cpu.py [--calls 1200] [--rounds 2] [--spy [--perf]]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

TRIVIAL = "def f(x: int) -> int:\n    return x + 1\n"
TICK = os.sysconf("SC_CLK_TCK")


def _stat(path: str) -> tuple[str, list[str]] | None:
    try:
        with open(path) as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.index("(") + 1 : text.rindex(")")], text.rpartition(")")[2].split()


def snapshot() -> dict[str, float]:
    """CPU seconds by part: each process of the driver's tree and every Ray
    process, by role; the driver's and actors' threads by name."""
    procs: dict[int, tuple[int, str, float, float]] = {}  # pid -> parent, name, own, reaped children
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        got = _stat(f"/proc/{entry}/stat")
        if got is None:
            continue
        name, f = got
        procs[int(entry)] = (int(f[1]), name, (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK)
    me = os.getpid()
    cmd: dict[int, str] = {}
    for pid in procs:
        try:
            cmd[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd[pid] = ""
    ray_roots = {pid for pid, (_p, name, _o, _c) in procs.items() if name in ("raylet", "gcs_server")}
    ray_roots |= {pid for pid, c in cmd.items() if "ray start" in c or "ray/scripts" in c}
    tree = {me} | ray_roots
    frontier = set(tree)
    while frontier:
        frontier = {pid for pid, (parent, *_r) in procs.items() if parent in frontier} - tree
        tree |= frontier
    parts: dict[str, float] = {}

    def add(part: str, value: float) -> None:
        parts[part] = parts.get(part, 0.0) + value

    for pid in tree:
        parent, name, own, reaped = procs[pid]
        c = cmd.get(pid, "")
        if pid == me:
            role = "driver"
            for task in os.listdir(f"/proc/{pid}/task"):
                got = _stat(f"/proc/{pid}/task/{task}/stat")
                if got:
                    add(f"  driver thread {got[0]}", (int(got[1][11]) + int(got[1][12])) / TICK)
        elif name.startswith("ray::SandboxAc") or "SandboxActor" in c:
            role = "actors"
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    got = _stat(f"/proc/{pid}/task/{task}/stat")
                    if got:
                        add(f"  actor thread {got[0]}", (int(got[1][11]) + int(got[1][12])) / TICK)
            except OSError:
                pass
        elif name in ("raylet", "gcs_server"):
            role = name
        elif "ray start" in c:
            role = "ray start"
        elif parent == me:
            role = "driver's zygotes"
        elif procs.get(parent, (0, ""))[1].startswith("ray::") or "SandboxActor" in cmd.get(parent, ""):
            role = "actors' zygotes (+ reaped sandboxes)"
        elif procs.get(procs.get(parent, (0,))[0], (0, ""))[1].startswith("ray::"):
            role = "actors' zygotes (+ reaped sandboxes)"
        else:
            role = f"other: {name}"
        add(role, own + (reaped if "zygote" in role else 0.0))
    return parts


def delta(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    out = {}
    for part in sorted(set(before) | set(after)):
        d = after.get(part, 0.0) - before.get(part, 0.0)
        if abs(d) > 0:
            out[part] = round(d * 1e6 / calls, 1)
    out["TOTAL (processes)"] = round(sum(v for k, v in out.items() if not k.startswith("  ")), 1)
    return out


def measured(fn: Any, calls: int) -> dict[str, float]:
    before = snapshot()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    out = delta(before, snapshot(), calls)
    out["calls/s"] = round(calls / elapsed, 1)
    return out


def spy(backend: Any, direct: Any) -> None:
    """perf or py-spy on the driver and every actor while fan-outs run,
    into /tmp/tcprof/ (the module's docstring)."""
    import subprocess

    import ray
    from bench_ray import fan_out

    pids = {"driver": os.getpid()}
    for i, (handle, _node) in enumerate(backend.actors()):
        pids[f"actor{i}"] = ray.get(handle.describe.remote())["pid"]
    out = Path("/tmp/tcprof")
    out.mkdir(exist_ok=True)
    seconds = 15
    if "--perf" in sys.argv:
        procs = [
            subprocess.Popen(
                [
                    "perf",
                    "record",
                    "-F",
                    "999",
                    "-g",
                    "-p",
                    str(pid),
                    "-o",
                    str(out / f"{label}.perf"),
                    "--",
                    "sleep",
                    str(seconds),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for label, pid in pids.items()
        ]
    else:
        procs = [
            subprocess.Popen(
                [
                    os.environ.get("PY_SPY", "/tmp/pyspy/venv/bin/py-spy"),
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(seconds),
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(out / f"{label}.txt"),
                    "--nonblocking",
                    "--threads",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for label, pid in pids.items()
        ]
    time.sleep(1.0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        fan_out(backend, 400)
    for p in procs:
        p.wait()


def inner(calls: int, rounds: int) -> dict[str, Any]:
    from bench_ray import fan_out
    from raycluster import RayCluster
    from toolcrib.sandbox.ray_backend import RayBackend
    from toolcrib.sandbox.restricted import RestrictedBackend

    cluster = RayCluster()
    report: dict[str, Any] = {"load_start": os.getloadavg()}
    try:
        cluster.start_head()
        cluster.connect()
        cluster.wait_for_nodes(1)
        direct = RestrictedBackend()
        fan_out(direct, 100)
        one = RayBackend(cluster.address, actors_per_node=1)
        one.start()
        fan_out(one, 100)
        report["1 actor"] = {}
        for r in range(rounds):
            report["1 actor"][f"direct {r}"] = measured(lambda: fan_out(direct, calls), calls)
            report["1 actor"][f"ray {r}"] = measured(lambda: fan_out(one, calls), calls)
        one.close()
        cluster.add_node("worker")
        cluster.wait_for_nodes(2)
        two = RayBackend(cluster.address, actors_per_node=1)
        two.start()
        fan_out(two, 100)
        report["idle, per second"] = measured(lambda: time.sleep(5), 5)
        if "--spy" in sys.argv:
            spy(two, direct)
        report["2 actors"] = {}
        for r in range(rounds):
            report["2 actors"][f"direct {r}"] = measured(lambda: fan_out(direct, calls), calls)
            report["2 actors"][f"ray {r}"] = measured(lambda: fan_out(two, calls), calls)
        two.close()
        direct.close()
    finally:
        report["load_end"] = os.getloadavg()
        cluster.stop()
    return report


def main() -> None:
    from bench_ray import in_private_netns

    calls = int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 1200
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2

    def run() -> None:
        report = inner(calls, rounds)
        out = HERE / "out"
        out.mkdir(exist_ok=True)
        (out / "ray_cpu.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))

    in_private_netns(__file__, run)


if __name__ == "__main__":
    main()
