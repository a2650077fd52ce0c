"""Search benchmark: does `toolcrib search` find the tool a dispatcher needs,
and does it say "no tool fits" when there is none?

    .venv/bin/python bench/bench_search.py            # the table for the README
    .venv/bin/python bench/bench_search.py --sweep    # the threshold calibration
    .venv/bin/python bench/bench_search.py --scale 1000   # query time beside 1,000 filler tools

Registers the set in bench/search_set.py (48 tools, each with one test
question) in a fresh registry, then runs every query with no threshold
(min_score=0) and reports, per kind of query, recall@1 and recall@5 (the
tool is first / among the first five) and, at the shipped threshold, how
often a query that has a tool is wrongly told "no tool fits". For the
queries no tool answers it reports how many are answered "no tool fits",
and the no-fit precision: of all "no tool fits" answers, the share that
were right. The figures also go to bench/out/bench_search.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_set import NO_FIT, TOOLS, BenchTool
from toolcrib.registry.search import FIT_THRESHOLD

from toolcrib import Registry

KINDS = ("question", "paraphrase", "docstring")
OUT = Path(__file__).resolve().parent / "out"


def _source(tool: BenchTool) -> str:
    # The body does not matter to search; it only has to pass admission.
    return f'def {tool.name}({tool.params}) -> {tool.returns}:\n    """{tool.doc}"""\n    raise NotImplementedError\n'


def _tests(tool: BenchTool) -> list[dict[str, object]]:
    snippet = f"question = {tool.test_question!r}\nans = {tool.name}"
    return [{"name": tool.test_question, "snippet": snippet, "expected": None}]


def run(threshold: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp) / "bench.db", actor="bench") as reg:
        for tool in TOOLS:
            reg.add(_source(tool), tests=_tests(tool))
        found: dict[str, list[tuple[str, list[tuple[str, float]]]]] = {k: [] for k in KINDS}
        times: list[float] = []
        for tool in TOOLS:
            for kind in KINDS:
                start = time.perf_counter()
                hits = reg.search(getattr(tool, kind), limit=5, min_score=0)
                times.append((time.perf_counter() - start) * 1000)
                found[kind].append((tool.name, [(h.name, h.score) for h in hits]))
        nofit: list[list[tuple[str, float]]] = []
        for query in NO_FIT:
            start = time.perf_counter()
            nofit.append([(h.name, h.score) for h in reg.search(query, limit=5, min_score=0)])
            times.append((time.perf_counter() - start) * 1000)
    return {"found": found, "nofit": nofit, "times": times}


_FILLER_WORDS = (
    "parse format convert count merge split filter group rank score table record field value list map key index "
    "string text number date time file line column row matrix vector graph node edge path tree queue stack "
    "price total sum mean rate ratio unit metric weight length area volume speed color image pixel token word"
).split()


def scale(extra: int) -> dict[str, float]:
    """Query time with `extra` filler tools (seeded, made of common words) beside
    the set: how search cost grows with the registry, and whether the set's
    docstring phrases still come first among them."""
    import random

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp) / "scale.db", actor="bench") as reg:
        for tool in TOOLS:
            reg.add(_source(tool), tests=_tests(tool))
        for i in range(extra):
            doc = " ".join(rng.sample(_FILLER_WORDS, 8)).capitalize() + "."
            a, b = rng.sample(_FILLER_WORDS, 2)
            reg.add(f'def filler_{i}({a}_x: str, {b}_y: int) -> str:\n    """{doc}"""\n    return {a}_x\n')
        times = []
        first = 0
        for tool in TOOLS:
            for kind in KINDS:
                start = time.perf_counter()
                hits = reg.search(getattr(tool, kind), limit=5)
                times.append((time.perf_counter() - start) * 1000)
                first += kind == "docstring" and bool(hits) and hits[0].name == tool.name
    return {
        "tools": len(TOOLS) + extra,
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(sorted(times)[int(0.95 * len(times)) - 1], 2),
        "docstring_recall@1": round(first / len(TOOLS), 2),
    }


def _fits(hits: list[tuple[str, float]], threshold: float) -> bool:
    return bool(hits) and hits[0][1] >= threshold


def report(data: dict[str, object], threshold: float) -> dict[str, object]:
    found = data["found"]
    nofit = data["nofit"]
    assert isinstance(found, dict) and isinstance(nofit, list)
    rows: dict[str, object] = {}
    wrong_nofit = 0
    for kind in KINDS:
        results = found[kind]
        at1 = sum(1 for name, hits in results if _fits(hits, threshold) and hits[0][0] == name)
        at5 = sum(
            1 for name, hits in results if _fits(hits, threshold) and name in [n for n, s in hits if s >= threshold]
        )
        rejected = sum(1 for _, hits in results if not _fits(hits, threshold))
        wrong_nofit += rejected
        rows[kind] = {
            "queries": len(results),
            "recall@1": at1 / len(results),
            "recall@5": at5 / len(results),
            "told_no_fit": rejected,
        }
    said_nofit = sum(1 for hits in nofit if not _fits(hits, threshold))
    # Decisions a dispatcher gets right: a query with a tool has it among the
    # first five hits that fit; a query without one gets "no tool fits".
    right = said_nofit + sum(
        1 for kind in KINDS for name, hits in found[kind] if name in [n for n, s in hits if s >= threshold]
    )
    rows["right_decisions"] = right
    rows["queries"] = len(nofit) + sum(len(found[kind]) for kind in KINDS)
    rows["no_fit"] = {
        "queries": len(nofit),
        "answered_no_fit": said_nofit,
        "precision": said_nofit / (said_nofit + wrong_nofit) if said_nofit + wrong_nofit else 1.0,
    }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep", action="store_true", help="print recall and no-fit figures for a range of thresholds"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scale", type=int, metavar="N", help="also time queries with N filler tools added")
    args = parser.parse_args()
    data = run(FIT_THRESHOLD)
    times = data["times"]
    assert isinstance(times, list)
    if args.sweep:
        print(
            "threshold  q@1   q@5   p@1   p@5   d@1   d@5   fits_rejected  nofit_caught  nofit_precision  right_decisions"
        )
        for step in range(0, 17):
            t = step * 0.05
            r = report(data, t)
            q, p, d, n = r["question"], r["paraphrase"], r["docstring"], r["no_fit"]
            assert isinstance(q, dict) and isinstance(p, dict) and isinstance(d, dict) and isinstance(n, dict)
            rejected = q["told_no_fit"] + p["told_no_fit"] + d["told_no_fit"]
            print(
                f"{t:9.2f}  {q['recall@1']:.2f}  {q['recall@5']:.2f}  {p['recall@1']:.2f}  {p['recall@5']:.2f}  "
                f"{d['recall@1']:.2f}  {d['recall@5']:.2f}  {rejected:13d}  {n['answered_no_fit']:4d}/{n['queries']:<7d}  "
                f"{n['precision']:15.2f}  {r['right_decisions']}/{r['queries']}"
            )
        return
    rows = report(data, FIT_THRESHOLD)
    rows["threshold"] = FIT_THRESHOLD
    rows["tools"] = len(TOOLS)
    rows["median_ms_per_query"] = round(statistics.median(times), 2)
    if args.scale:
        rows["scale"] = scale(args.scale)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_search.json").write_text(json.dumps(rows, indent=2) + "\n")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{len(TOOLS)} tools, threshold {FIT_THRESHOLD}, median {rows['median_ms_per_query']} ms per query")
    print("kind         queries  recall@1  recall@5  told 'no tool fits'")
    for kind in KINDS:
        r = rows[kind]
        assert isinstance(r, dict)
        print(f"{kind:<12} {r['queries']:7d}  {r['recall@1']:8.2f}  {r['recall@5']:8.2f}  {r['told_no_fit']:d}")
    n = rows["no_fit"]
    assert isinstance(n, dict)
    print(
        f"no tool fits: {n['answered_no_fit']}/{n['queries']} no-fit queries answered 'no tool fits'; "
        f"no-fit precision {n['precision']:.2f}"
    )
    if args.scale:
        print(f"with filler: {rows['scale']}")
    print(f"wrote {OUT / 'bench_search.json'}")


if __name__ == "__main__":
    main()
