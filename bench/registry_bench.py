"""Registry throughput: how long add, resolve, audit append and a full call take.

Prints numbers; asserts nothing (speed goals are not test assertions).
Run: .venv/bin/python bench/registry_bench.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from toolcrib.registry import Registry
from toolcrib.sandbox import close_backends


def _timed(label: str, n: int, fn) -> None:  # type: ignore[no-untyped-def]
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"{label:<38} n={n:<5} median {statistics.median(times):7.2f} ms   p95 {times[int(n * 0.95) - 1]:7.2f} ms")


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with Registry(Path(tmp) / "bench.db", actor="bench") as reg:
            src = 'def add(a: int, b: int) -> int:\n    """Add."""\n    return a + b + {}\n'
            _timed(
                "add (new patch version)",
                n,
                lambda i: reg.add(src.format(i), tests=[{"args": {"a": 1, "b": 2}, "expected": 3 + i}]),
            )
            _timed(
                "add (identical, no-op)",
                n,
                lambda i: reg.add(src.format(i), tests=[{"args": {"a": 1, "b": 2}, "expected": 3 + i}]),
            )
            _timed(f"get NAME ({n} versions)", n, lambda i: reg.get("add"))
            _timed("get NAME@sha256:prefix", n, lambda i: reg.get("add@sha256:" + reg.get("add").sha256[:12]))
            _timed("search", n, lambda i: reg.search("add"))
            reg.verify("add")
            reg.call("add", {"a": 1, "b": 2})  # warm the backend
            _timed("call (restricted, resolve+validate+run+audit)", n, lambda i: reg.call("add", {"a": i, "b": 1}))
            _timed("audit_verify (whole chain)", 5, lambda i: reg.audit_verify())
            print(f"audit entries: {reg.audit_verify().entries}")
    close_backends()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
