"""Tools that need packages: a lock's zygote (restricted backend, plain
policy, in the jail) against its Docker runtime image, side by side in one run.

    .venv/bin/python bench/bench_packages.py [--warm 30] [--cold 3]

Prints a table and writes bench/out/bench_packages.json. For a `sympy` tool
(factor a polynomial) and a `pandas` tool (group and sum JSON records):

- warm call: the backend is warm (the lock's zygote running with spares
  forked; a Docker pool container with the packages already imported),
  calls spaced 50 ms so the spares/pool refill off the clock.
- cold start: the first call of a fresh backend: for the zygote, starting it
  (the interpreter, the lock's imports and warm-ups, the jail probe) and
  the call; for Docker, a container with no pool (create, start, the
  harness importing the packages, the call).
- memory: the zygote's RSS and PSS, and one waiting spare's PSS (what one
  more call in flight costs: its pages are shared with the zygote until
  written); for Docker, one warm container's memory as the cgroup counts it
  (nothing is shared between containers' Python heaps).

Needs the wheels (resolved through `packages.resolve`, downloaded once into
the wheel cache), a Docker engine and the sandbox image; the runtime images
are built first if missing (not timed). A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from toolcrib.sandbox import packages
from toolcrib.sandbox.contract import Job, Limits, Lock
from toolcrib.sandbox.docker import LABEL_BACKEND, DockerBackend
from toolcrib.sandbox.image import build_image
from toolcrib.sandbox.restricted import RestrictedBackend

TOOLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sympy": (
        "sympy",
        "import sympy\n\ndef factor_poly(expr: str) -> str:\n    return str(sympy.factor(sympy.sympify(expr)))\n",
        {"expr": "x**3 - x"},
    ),
    "pandas": (
        "pandas",
        "import pandas as pd\n\ndef totals(rows: list) -> dict:\n"
        "    frame = pd.DataFrame(rows)\n"
        "    return {k: float(v) for k, v in frame.groupby('region')['amount'].sum().items()}\n",
        {
            "rows": [
                {"region": "north", "amount": 10},
                {"region": "south", "amount": 5},
                {"region": "north", "amount": 7.5},
            ]
        },
    ),
}
LIMITS = Limits(memory=512)
SPACING = 0.05


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "min_ms": round(ordered[0], 2),
    }


def _job(name: str, lock: Lock) -> Job:
    _req, source, args = TOOLS[name]
    entry = source.split("def ", 1)[1].split("(", 1)[0]
    return Job(source=source, entrypoint=entry, args=args, policy="plain", lock=lock, limits=LIMITS)


def _check(result: Any) -> None:
    if result.status != "ok":
        raise SystemExit(f"benchmark call failed: {result.status} {result.error}")


def _proc_kib(pid: int, field: str, name: str = "status") -> int:
    with open(f"/proc/{pid}/{name}") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def bench_zygote(job: Job, warm: int, cold: int) -> dict[str, Any]:
    assert job.lock is not None
    cold_ms = []
    for _ in range(cold):
        backend = RestrictedBackend()
        try:
            t = time.perf_counter()
            _check(backend.run(job))
            cold_ms.append((time.perf_counter() - t) * 1000)
        finally:
            backend.close()
    backend = RestrictedBackend()
    try:
        _check(backend.run(job))
        warm_ms = []
        for _ in range(warm):
            time.sleep(SPACING)
            t = time.perf_counter()
            _check(backend.run(job))
            warm_ms.append((time.perf_counter() - t) * 1000)
        time.sleep(0.5)  # the spares finish their warm-up
        zygote = backend.lock_zygotes()[job.lock.digest()]
        with open(f"/proc/{zygote}/task/{zygote}/children") as fh:
            spares = [int(pid) for pid in fh.read().split()]
        spare_pss = [_proc_kib(pid, "Pss", "smaps_rollup") for pid in spares]
        memory = {
            "zygote_rss_mib": round(_proc_kib(zygote, "VmRSS") / 1024, 1),
            "zygote_pss_mib": round(_proc_kib(zygote, "Pss", "smaps_rollup") / 1024, 1),
            "spare_pss_mib": round(statistics.mean(spare_pss) / 1024, 2) if spare_pss else None,
        }
    finally:
        backend.close()
    return {"warm": stats(warm_ms), "cold": stats(cold_ms), "memory": memory}


def bench_docker(job: Job, warm: int, cold: int) -> dict[str, Any]:
    assert job.lock is not None
    backend = DockerBackend(pool_size=0)
    try:
        tag, image_id = backend.prepare(job.lock, progress=lambda line: None)
        cold_ms = []
        for _ in range(cold):
            t = time.perf_counter()
            _check(backend.run(job))
            cold_ms.append((time.perf_counter() - t) * 1000)
        size = backend._client.api.inspect_image(tag)["Size"]
    finally:
        backend.close()
    backend = DockerBackend(pool_size=1)
    try:
        backend.prepare(job.lock)
        warm_ms = []
        for _ in range(warm):
            if not backend.warm(LIMITS, timeout=120, image=tag):
                raise SystemExit("the runtime image's pool did not fill")
            t = time.perf_counter()
            _check(backend.run(job))
            warm_ms.append((time.perf_counter() - t) * 1000)
        backend.warm(LIMITS, timeout=120, image=tag)
        api = backend._client.api
        usage = []
        for info in api.containers(filters={"label": f"{LABEL_BACKEND}={backend._owner}", "ancestor": tag}):
            record = api.stats(info["Id"], stream=False)
            memory = record.get("memory_stats") or {}
            # What the cgroup charges, less reclaimable page cache.
            cache = (memory.get("stats") or {}).get("inactive_file", 0)
            usage.append((memory.get("usage", 0) - cache) / 2**20)
    finally:
        backend.close()
    return {
        "image": tag,
        "image_id": image_id,
        "image_size_mib": round(size / 2**20, 1),
        "warm": stats(warm_ms),
        "cold": stats(cold_ms),
        "memory": {"container_mib": round(statistics.mean(usage), 1) if usage else None},
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--only", choices=sorted(TOOLS), action="append")
    opts = parser.parse_args(argv)
    build_image(offline=True)
    results: dict[str, Any] = {"load_average": os.getloadavg()}
    for name in opts.only or sorted(TOOLS):
        lock = packages.resolve([TOOLS[name][0]])
        job = _job(name, lock)
        print(
            f"{name}: lock {lock.digest()[:12]} ({', '.join(f'{p.name}=={p.version}' for p in lock.packages)})",
            file=sys.stderr,
        )
        results[name] = {
            "lock": lock.digest(),
            "packages": [f"{p.name}=={p.version}" for p in lock.packages],
            "zygote": bench_zygote(job, opts.warm, opts.cold),
            "docker": bench_docker(job, opts.warm, opts.cold),
        }
    print(f"{'tool':8} {'path':8} {'warm median':>12} {'warm p90':>9} {'cold median':>12} {'memory':>40}")
    for name in opts.only or sorted(TOOLS):
        for path in ("zygote", "docker"):
            r = results[name][path]
            mem = r["memory"]
            memory = (
                f"zygote RSS {mem['zygote_rss_mib']} / PSS {mem['zygote_pss_mib']} MiB, spare PSS "
                f"{mem['spare_pss_mib']} MiB"
                if path == "zygote"
                else f"container {mem['container_mib']} MiB"
            )
            print(
                f"{name:8} {path:8} {r['warm']['median_ms']:>10.1f}ms {r['warm']['p90_ms']:>7.1f}ms "
                f"{r['cold']['median_ms']:>10.1f}ms {memory:>40}"
            )
    out = Path(__file__).resolve().parent / "out" / "bench_packages.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
