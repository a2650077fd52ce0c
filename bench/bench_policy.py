"""Cost of the policy layer alone: `execute.run_job` in this process (no
fork, no zygote), for a few kinds of job, restricted and plain.

A script, not a test: it prints a table. Goal (not an assertion): a trivial
restricted job well under 1 ms, so the process layer dominates the < 2 ms
end-to-end budget.

Run: .venv/bin/python bench/bench_policy.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time

from toolcrib.sandbox.inside import execute

JOBS = {
    "trivial": {"source": "def add(a, b):\n    return a + b\n", "entrypoint": "add", "args": {"a": 1, "b": 2}},
    "latm-sort-words": {
        "source": "def sort_words(text):\n    return ' '.join(sorted(text.split(), key=lambda w: w.lower()))\n",
        "entrypoint": "sort_words",
        "args": {"text": "pear Apple banana cherry apricot fig"},
    },
    "imports+class": {"source": execute._WARM_SOURCE, "entrypoint": "run", "args": {"n": 3}},
    "snippet": {
        "source": "def sq(x):\n    return x * x\n",
        "entrypoint": "sq",
        "mode": "snippet",
        "snippet": "ans = [sq(n) for n in range(10)]\n",
    },
    "blocked": {"source": "def run():\n    return run.__globals__\n", "entrypoint": "run"},
}


def measure(job: dict, restricted: bool, rounds: int) -> list[float]:
    full = {"mode": "args", "args": {}, "limits": {"output": 256}, **job}
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        execute.run_job(full, restricted=restricted)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    rounds = 50 if "--quick" in sys.argv else 500
    start = time.perf_counter()
    execute.warm()
    print(f"warm(): {(time.perf_counter() - start) * 1000:.1f} ms")
    print(f"{'job':18s} {'mode':10s} {'median ms':>10s} {'p95 ms':>8s}")
    for name, job in JOBS.items():
        for restricted in (True, False):
            if name == "blocked" and not restricted:
                continue
            samples = sorted(measure(job, restricted, rounds))
            p95 = samples[int(len(samples) * 0.95) - 1]
            print(
                f"{name:18s} {'restricted' if restricted else 'plain':10s} "
                f"{statistics.median(samples):10.3f} {p95:8.3f}"
            )


if __name__ == "__main__":
    main()
