"""Docker backend speed: warm-pool calls against cold containers, same run.

    .venv/bin/python bench/bench_docker.py [--calls 40] [--cold 10] [--pool 2]

Prints a table and writes bench/out/bench_docker.json. Measures, for a
trivial tool call (``return 1``):

- cold-run: create + start + wait + remove of the sandbox image through
  docker-py (the ``docker run --rm`` equivalent, running ``python3 -c pass``
  with the call's settings); no job protocol at all.
- cold-call: a full call through the backend with no pool (create, attach,
  start, harness start-up, job, reply, background removal).
- warm-call: a call that finds a warm container (the pool is refilled
  before each call, not on the clock).
- sustained: back-to-back calls with no pause; the pool refill rate (one
  container create + start per call) bounds this, so it is reported as
  calls per second alongside the refill time per container.

Needs a running engine and the image (``toolcrib image build --offline``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from toolcrib.sandbox import Job, Limits
from toolcrib.sandbox.docker import DockerBackend, container_options, host_config_options
from toolcrib.sandbox.image import build_image

TRIVIAL = Job(source="def f():\n    return 1\n", entrypoint="f", policy="plain")


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "min_ms": round(ordered[0], 2),
        "max_ms": round(ordered[-1], 2),
    }


def cold_run(backend: DockerBackend, n: int) -> list[float]:
    api = backend._client.api
    limits = Limits()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        host_config = api.create_host_config(**host_config_options(limits, auto_remove=False))
        options = container_options(backend.image, limits, host_config)
        options.update(command=["python3", "-I", "-S", "-c", "pass"], stdin_open=False)
        cid = api.create_container(**options)["Id"]
        api.start(cid)
        api.wait(cid)
        api.remove_container(cid, force=True)
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def timed_calls(backend: DockerBackend, n: int, *, refill: bool) -> tuple[list[float], float]:
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        if refill:
            backend.warm(timeout=60)
            time.sleep(0.05)  # let the previous container's removal settle
        t = time.perf_counter()
        result = backend.run(TRIVIAL)
        samples.append((time.perf_counter() - t) * 1000)
        if not result.ok:
            raise SystemExit(f"call failed: {result}")
    return samples, time.perf_counter() - start


def refill_time(backend: DockerBackend, n: int) -> list[float]:
    """Time from an empty slot to a warm (harness ready) container."""
    samples = []
    for _ in range(n):
        backend.warm(timeout=60)
        backend.run(TRIVIAL)
        t = time.perf_counter()
        backend.warm(timeout=60)
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "bench_docker.json")
    args = parser.parse_args(argv)

    status = build_image(offline=True, progress=lambda line: print(line, file=sys.stderr))
    cold_backend = DockerBackend(pool_size=0)
    warm_backend = DockerBackend(pool_size=args.pool)
    try:
        if cold_backend.unavailable_reason:
            raise SystemExit(cold_backend.unavailable_reason)
        rows = {}
        rows["cold-run (create+start+wait+remove)"] = _stats(cold_run(cold_backend, args.cold))
        cold_calls, _ = timed_calls(cold_backend, args.cold, refill=False)
        rows["cold-call (backend, no pool)"] = _stats(cold_calls)
        warm_backend.warm(timeout=60)
        warm_calls, _ = timed_calls(warm_backend, args.calls, refill=True)
        rows[f"warm-call (pool {args.pool})"] = _stats(warm_calls)
        rows["pool refill per container"] = _stats(refill_time(warm_backend, max(5, args.cold)))
        warm_backend.warm(timeout=60)
        sustained, elapsed = timed_calls(warm_backend, args.calls, refill=False)
        rows[f"sustained back-to-back (pool {args.pool})"] = _stats(sustained)
        per_second = round(len(sustained) / elapsed, 1)
    finally:
        cold_backend.close()
        warm_backend.close()

    print(f"image {status['tag']} ({status.get('base')})")
    print(f"{'measure':45} {'n':>4} {'median':>9} {'p90':>9} {'min':>9} {'max':>9}")
    for name, s in rows.items():
        print(
            f"{name:45} {s['n']:>4} {s['median_ms']:>7.1f}ms {s['p90_ms']:>7.1f}ms {s['min_ms']:>7.1f}ms {s['max_ms']:>7.1f}ms"
        )
    print(f"sustained throughput: {per_second} calls/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "image": status["tag"],
                "base": status.get("base"),
                "rows": rows,
                "sustained_calls_per_second": per_second,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
