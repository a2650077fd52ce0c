"""Where a `ray` call's time goes beside a direct one (issue 20): one actor on
a one-node cluster (tests/raycluster.py's head), in a private network
namespace, calls one at a time.

Each row is the median of ``--n`` calls, the rows interleaved in rounds so
the machine's other load falls on all of them alike:

- direct: `RestrictedBackend.run` in this process;
- ray: `RayBackend.run` (the driver's queue, slot and threads, the actor,
  the result's checks);
- raw actor call: ``ray.get(actor.run.remote(key, job))`` on the backend's
  own actor (no queue, no slot: Ray's round trip plus the actor's work);
- no-op round trips on actors of this script: threaded (max_concurrency 3,
  as the backend's) and not, a no-op sending the Job and answering a
  Result, and the same as bytes;
- inside the actor: its backend's own `duration_ms` against direct's;
- serialisation of a Job and a Result (pickle) and `_checked`;
- CPU per call, by process (driver, the actor, its zygotes and their
  children, the raylet, the GCS, Ray's other workers), over the calls.

Run: sudo .venv/bin/python bench/profile_ray.py [--n 300]
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

TRIVIAL = "def f(x: int) -> int:\n    return x + 1\n"


class Noop:
    def ping(self) -> None:
        return None

    def pid(self) -> int:
        return os.getpid()

    def echo(self, key: str, job: Any) -> Any:
        return self.result

    def echo_bytes(self, data: bytes) -> bytes:
        return self.result_bytes

    def set_result(self, result: Any) -> None:
        self.result = result
        self.result_bytes = pickle.dumps(result)


def _median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _procs() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent, name, cpu seconds) for every process."""
    out: dict[int, tuple[int, str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rpartition(")")[2].split()
        out[int(entry)] = (int(fields[1]), name, sum(int(x) for x in fields[11:15]) / tick)
    return out


def _classify(procs: dict[int, tuple[int, str, float]], actor_pid: int) -> dict[str, float]:
    """CPU seconds by part: this driver, the actor, the actor's zygotes (and
    the children they reaped), raylet, gcs_server, other Ray processes."""
    me = os.getpid()
    below_actor: set[int] = set()
    frontier = {actor_pid}
    while frontier:
        frontier = {pid for pid, (parent, _n, _c) in procs.items() if parent in frontier} - below_actor
        below_actor |= frontier
    tree: set[int] = {me}
    frontier = {me}
    while frontier:
        frontier = {pid for pid, (parent, _n, _c) in procs.items() if parent in frontier} - tree
        tree |= frontier
    parts: dict[str, float] = {}
    for pid, (_parent, name, cpu) in procs.items():
        if pid == me:
            part = "driver"
        elif pid == actor_pid:
            part = "actor"
        elif pid in below_actor:
            part = "actor's zygotes"
        elif name.startswith("raylet"):
            part = "raylet"
        elif name.startswith("gcs_server"):
            part = "gcs_server"
        elif pid in tree:
            part = "driver's zygotes" if "python" in name and procs[pid][0] == me else f"other: {name}"
        else:
            continue
        parts[part] = parts.get(part, 0.0) + cpu
    return parts


def _cpu_by_part(fn: Any, calls: int, actor_pid: int) -> dict[str, float]:
    before = _classify(_procs(), actor_pid)
    fn()
    after = _classify(_procs(), actor_pid)
    return {
        part: round((after.get(part, 0.0) - before.get(part, 0.0)) * 1e6 / calls, 1)
        for part in sorted(set(before) | set(after))
        if abs(after.get(part, 0.0) - before.get(part, 0.0)) > 0
    }


def inner(n: int) -> dict[str, Any]:
    import ray
    from raycluster import RayCluster
    from toolcrib.sandbox.contract import Job
    from toolcrib.sandbox.ray_actor import job_bytes
    from toolcrib.sandbox.ray_backend import RayBackend, _results
    from toolcrib.sandbox.restricted import RestrictedBackend

    cluster = RayCluster()
    report: dict[str, Any] = {"load_start": os.getloadavg()}
    try:
        cluster.start_head()
        cluster.connect()
        cluster.wait_for_nodes(1)
        direct = RestrictedBackend()
        backend = RayBackend(cluster.address, actors_per_node=1)
        backend.start()
        handle = backend.actors()[0][0]
        actor_pid = ray.get(handle.describe.remote())["pid"]
        job = Job(source=TRIVIAL, entrypoint="f", args={"x": 1})
        threaded = ray.remote(Noop).options(num_cpus=0, max_concurrency=3).remote()
        single = ray.remote(Noop).options(num_cpus=0).remote()
        sample = direct.run(job)
        ray_sample = backend.run(job)
        for noop in (threaded, single):
            ray.get(noop.set_result.remote(ray_sample))
        payload = pickle.dumps(("k", job))
        keys = iter(range(10**9))
        cases: dict[str, Any] = {
            "direct: RestrictedBackend.run": lambda: direct.run(job),
            "ray: RayBackend.run": lambda: backend.run(job),
            "raw actor call: ray.get(actor.run_wire.remote(job_bytes(...)))": lambda: ray.get(
                handle.run_wire.remote(job_bytes([(f"raw-{next(keys)}", job)]))
            ),
            "no-op round trip, threaded actor (max_concurrency 3)": lambda: ray.get(threaded.ping.remote()),
            "no-op round trip, plain actor": lambda: ray.get(single.ping.remote()),
            "Job in, Result out, threaded actor": lambda: ray.get(threaded.echo.remote("k", job)),
            "Job in, Result out, plain actor": lambda: ray.get(single.echo.remote("k", job)),
            "bytes in, bytes out, plain actor": lambda: ray.get(single.echo_bytes.remote(payload)),
        }
        for fn in cases.values():  # warm
            for _ in range(20):
                fn()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        rounds = 10
        for _ in range(rounds):
            for name, fn in cases.items():
                for _ in range(n // rounds):
                    samples[name].append(_timed(fn))
        report["round_trip_us"] = {name: _median_us(s) for name, s in samples.items()}
        # Inside: the backend's own duration there and here.
        inside = [backend.run(job).duration_ms for _ in range(n)]
        here = [direct.run(job).duration_ms for _ in range(n)]
        report["backend_duration_ms"] = {
            "direct (driver)": round(statistics.median(here), 3),
            "inside the actor": round(statistics.median(inside), 3),
        }
        # Serialisation, in this process.
        reply = json.dumps([{**ray_sample.to_json(), "calls": None}]).encode()
        pickled = pickle.dumps(ray_sample)
        report["serialisation_us"] = {
            "pickle Job": _median_us([_timed(lambda: pickle.dumps(job)) for _ in range(2000)]),
            "unpickle Job": _median_us([_timed(lambda: pickle.loads(payload)) for _ in range(2000)]),
            "pickle Result": _median_us([_timed(lambda: pickle.dumps(ray_sample)) for _ in range(2000)]),
            "unpickle Result": _median_us([_timed(lambda: pickle.loads(pickled)) for _ in range(2000)]),
            "JSON bytes of a Result": _median_us(
                [_timed(lambda: json.dumps([ray_sample.to_json()]).encode()) for _ in range(2000)]
            ),
            "Result from its JSON bytes (_results)": _median_us(
                [_timed(lambda b=reply: _results(b, [job])) for _ in range(2000)]
            ),
            "Job bytes": len(payload),
            "Result bytes": len(pickle.dumps(ray_sample)),
        }
        report["direct_sample"] = sample.to_json()
        # CPU by process, per call, calls one at a time.
        report["cpu_us_per_call_by_part"] = {
            "direct": _cpu_by_part(lambda: [direct.run(job) for _ in range(n)], n, actor_pid),
            "ray": _cpu_by_part(lambda: [backend.run(job) for _ in range(n)], n, actor_pid),
            "raw actor call": _cpu_by_part(
                lambda: [ray.get(handle.run_wire.remote(job_bytes([(f"c-{i}", job)]))) for i in range(n)],
                n,
                actor_pid,
            ),
            "no-op (plain actor)": _cpu_by_part(
                lambda: [ray.get(single.ping.remote()) for _ in range(n)], n, ray.get(single.pid.remote())
            ),
            "idle (sleep, per 'call' of 2 ms)": _cpu_by_part(lambda: time.sleep(n * 0.002), n, actor_pid),
        }
        if "--fanout" in sys.argv:
            from toolcrib.registry.parallel import run_jobs

            jobs = [Job(source=TRIVIAL, entrypoint="f", args={"x": i}) for i in range(n * 4)]
            run_jobs(direct, jobs[:100])
            run_jobs(backend, jobs[:100])
            fan: dict[str, Any] = {}
            for label, runner in (
                ("direct", direct),
                ("ray", backend),
                ("direct again", direct),
                ("ray again", backend),
            ):
                start = time.perf_counter()
                parts = _cpu_by_part(lambda r=runner: run_jobs(r, jobs), len(jobs), actor_pid)
                parts["calls/s"] = round(len(jobs) / (time.perf_counter() - start), 1)
                parts["total CPU us/call"] = round(sum(v for k, v in parts.items() if k != "calls/s"), 1)
                fan[label] = parts
            report["fan_out_cpu_us_per_call_by_part"] = fan
        ctx = ray._private.worker.global_worker.get_serialization_context()
        report["ray_serialisation_us"] = {
            "serialize Job": _median_us([_timed(lambda: ctx.serialize(job)) for _ in range(2000)]),
            "serialize Result": _median_us([_timed(lambda: ctx.serialize(ray_sample)) for _ in range(2000)]),
            "serialize bytes": _median_us([_timed(lambda: ctx.serialize(payload)) for _ in range(2000)]),
        }
        if "--spy" in sys.argv:
            spy = "/tmp/pyspy/venv/bin/py-spy"
            out = Path("/tmp/tcprof")
            out.mkdir(exist_ok=True)
            procs = [
                subprocess.Popen(
                    [
                        spy,
                        "record",
                        "-p",
                        str(pid),
                        "-d",
                        "12",
                        "-r",
                        "500",
                        "-f",
                        "raw",
                        "-o",
                        str(out / f"{label}.txt"),
                        "--nonblocking",
                        *extra,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for label, pid, extra in (("actor", actor_pid, ["--threads"]), ("driver", os.getpid(), []))
            ]
            time.sleep(1.5)
            end = time.monotonic() + 12
            while time.monotonic() < end:
                backend.run(job)
            for p in procs:
                p.wait()
        backend.close()
        direct.close()
    finally:
        report["load_end"] = os.getloadavg()
        cluster.stop()
    return report


def main() -> None:
    from bench_ray import in_private_netns

    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 300
    in_private_netns(__file__, lambda: print(json.dumps(inner(n), indent=2)))


if __name__ == "__main__":
    main()
