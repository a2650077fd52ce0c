"""Verification throughput (issue 19): every check multiplies sandboxed runs.

    .venv/bin/python bench/bench_verify.py [--reps 5] [--cases 400] [--fuzz 100]
    .venv/bin/python bench/side_by_side.py bench_verify.py --baseline REV -- --reps 5

Three measures, each on the real restricted backend (every case, input or
mutant run in its own fresh jailed child), the backend warmed up first:

- ``verify``: one tool with ``--cases`` test cases verified, as isolated
  calls per second (goal: 600 on a 2-core machine) and as CPU per case
  (this process, the zygotes and their children), on the shared backend
  and on one with two zygotes (``RestrictedBackend(zygotes=2)``);
- ``fuzz``: ``verify --fuzz 100`` of a trivial tool, seconds (goal: under 1 s),
  warm (Hypothesis already imported) and the first run of the process;
- ``mutants``: mutation testing of a 30-line tool with 5 tests, seconds
  (goal: under 10 s).

A revision without fuzzing or mutation testing (the baseline) reports those
as null. The median of ``--reps`` runs is printed, and the whole result is
written to bench/out/bench_verify.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from toolcrib import Registry

ADD = 'def add(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n'

# Thirty lines, five tests.
INVOICE = '''
def invoice_total(prices: list[int], quantities: list[int], coupon: str, member: bool) -> int:
    """Total in cents: line totals, a bulk discount, a coupon, a member rate, a floor."""
    if len(prices) != len(quantities):
        raise ValueError("one quantity per price")
    total = 0
    items = 0
    for price, quantity in zip(prices, quantities):
        if quantity <= 0:
            continue
        line = price * quantity
        if quantity >= 10:
            line = line * 9 // 10
        total += line
        items += quantity
    if coupon == "HALF":
        total = total // 2
    elif coupon == "TEN" and total > 1000:
        total -= 1000
    if member:
        total = total * 95 // 100
    if items > 100:
        total -= 500
    if total < 0:
        total = 0
    shipping = 0
    if total < 5000:
        shipping = 499
    return total + shipping
'''
INVOICE_TESTS = [
    {"args": {"prices": [100, 250], "quantities": [2, 1], "coupon": "", "member": False}, "expected": 949},
    {"args": {"prices": [1000], "quantities": [10], "coupon": "HALF", "member": False}, "expected": 4999},
    {"args": {"prices": [3000], "quantities": [2], "coupon": "TEN", "member": True}, "expected": 5249},
    {"args": {"prices": [100], "quantities": [0], "coupon": "", "member": False}, "expected": 499},
    {"args": {"prices": [200], "quantities": [120], "coupon": "", "member": True}, "expected": 20020},
]


def _cpu_seconds(backend: Any) -> float:
    """CPU seconds so far of this process and of the backend's zygotes with
    their reaped children (kernel accounting: steadier than calls/s on a
    machine other work keeps busy); 0 where the backend has no zygote."""
    times = os.times()
    total = times.user + times.system
    tick = os.sysconf("SC_CLK_TCK")
    for zygote in [getattr(backend, "_zygote", None), *getattr(backend, "_others", [])]:
        if zygote is None:
            continue
        with open(f"/proc/{zygote.proc.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += sum(int(fields[at]) for at in (11, 12, 13, 14)) / tick
    return total


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def _two_zygotes(cases: int, reps: int) -> float | None:
    """The same verification on a restricted backend with two zygotes
    (`RestrictedBackend(zygotes=2)`); None where the revision has no such option."""
    from toolcrib.sandbox.restricted import RestrictedBackend

    try:
        backend = RestrictedBackend(zygotes=2)  # type: ignore[call-arg]
    except TypeError:
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with Registry(Path(tmp) / "two.db", actor="bench", backends={"restricted": backend}) as reg:
                reg.add(ADD, tests=[{"args": {"a": i, "b": 1}, "expected": i + 1} for i in range(cases)])
                reg.verify("add")
                rates = []
                for _ in range(reps):
                    started = time.perf_counter()
                    reg.verify("add")
                    rates.append(cases / (time.perf_counter() - started))
                return _median(rates)
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--fuzz", type=int, default=100)
    opts = parser.parse_args()
    out: dict[str, Any] = {"reps": opts.reps, "cases": opts.cases, "fuzz_n": opts.fuzz}
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp) / "bench.db", actor="bench") as reg:
        tests = [{"args": {"a": i, "b": 1}, "expected": i + 1} for i in range(opts.cases)]
        reg.add(ADD, tests=tests)
        reg.verify("add")  # warm: the zygote and its spares
        from toolcrib.sandbox import backends

        backend = backends.shared("restricted")
        rates, cpu = [], []
        for _ in range(opts.reps):
            cpu0 = _cpu_seconds(backend)
            started = time.perf_counter()
            ver = reg.verify("add")
            rates.append(opts.cases / (time.perf_counter() - started))
            cpu.append((_cpu_seconds(backend) - cpu0) / opts.cases * 1000)
            assert ver.status == "verified", ver
        out["verify_calls_per_s"] = _median(rates)
        out["verify_cpu_ms_per_case"] = _median(cpu)
    out["verify_calls_per_s_2_zygotes"] = _two_zygotes(opts.cases, opts.reps)
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp) / "bench.db", actor="bench") as reg:
        reg.add(ADD, tests=[{"args": {"a": i, "b": 1}, "expected": i + 1} for i in range(opts.cases)])
        reg.verify("add")
        fuzz = getattr(reg, "fuzz", None)
        if fuzz is None:
            out["fuzz_first_s"] = out["fuzz_warm_s"] = None
        else:
            started = time.perf_counter()
            fuzz("add", opts.fuzz, seed=1)
            out["fuzz_first_s"] = round(time.perf_counter() - started, 4)
            times = []
            for rep in range(opts.reps):
                started = time.perf_counter()
                run = fuzz("add", opts.fuzz, seed=rep + 2)
                times.append(time.perf_counter() - started)
                assert run.summary["ran"] == run.summary["generated"], run.summary
            out["fuzz_warm_s"] = _median(times)

        mutants = getattr(reg, "mutants", None)
        if mutants is None:
            out["mutants_s"] = out["mutants"] = out["mutation_score"] = None
        else:
            reg.add(INVOICE, tests=INVOICE_TESTS)
            assert reg.verify("invoice_total").status == "verified"
            times = []
            for _ in range(opts.reps):
                started = time.perf_counter()
                run = mutants("invoice_total")
                times.append(time.perf_counter() - started)
            out["mutants_s"] = _median(times)
            out["mutants"] = run.summary["mutants"]
            out["mutation_score"] = run.summary["score"]
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))
    target = Path(__file__).resolve().parent / "out" / "bench_verify.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
