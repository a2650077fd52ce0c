"""The checks of docs/verification.md over the public CRAFT tools, as a new
user would run them: a bulk `toolcrib add` of each corpus's deduplicated tool
set (CRAFT's execution header as the prelude, its packages as requirements,
--strip-top-level), then `toolcrib verify NAME --fuzz N` of every admitted
tool, through the CLI, in a fresh registry, on the real restricted backend.

    .venv/bin/python bench/checks_over_craft.py CRAFT [--sample 40 --seed 1] [--fuzz 20] [--budget 30]
        [--tests-from-rows] [--jobs 2] [--stop-after SECONDS]

CRAFT: a checkout of github.com/lifan-yuan/CRAFT (a work tree, or a bare git
mirror, read with `git show HEAD:PATH`), or one or more of its
5_deduplicated_tools.csv files. Nothing of CRAFT is copied into this project
(it has no licence): the tools are read from the given path at run time and
the registry is a temporary one.

The corpora: `table` (tab_and_math/TabMWP/craft/tabmwp, pandas table tools)
and `math` (tab_and_math/MATH/craft/*/, the published categories). Each row's
`tool` column is the tool's source (`code`, the question-specific solution,
where `tool` is empty). CRAFT runs a tool after a fixed import header
(tab_and_math/utils.py, execute_code): that header is the prelude here, less
its `import spicy` / `from spicy import *` lines (a misspelling of scipy
that no tool uses). CRAFT's tools come without tests; --tests-from-rows
gives each the one case its row holds (`case_from_row`: CRAFT's own call of
the tool on the row's question, and the question's answer as the expected
value, never an invented one) and mutation-tests it (--mutants).

Prints one JSON line per tool (corpus, admitted or the refusal, fuzz findings
by kind with shrunk examples, seconds), then one summary line per corpus and
the wall time and load averages. The section "Over the public CRAFT tools" of
docs/verification.md is its output.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# The header CRAFT's execute_code writes before every tool, less `spicy`.
CRAFT_HEADER = """\
import math
from math import *
import numpy as np
import sympy
from sympy import *
import pandas as pd
from collections import *
"""
REQUIRES = "numpy pandas sympy"
TABLE_CSV = "tab_and_math/TabMWP/craft/tabmwp/5_deduplicated_tools.csv"
MATH_GLOB = re.compile(r"^tab_and_math/MATH/craft/[^/]+/5_deduplicated_tools\.csv$")

csv.field_size_limit(16 * 1024 * 1024)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def corpora(paths: list[Path]) -> dict[str, list[dict[str, str]]]:
    """Corpus name -> rows, from a checkout (work tree or bare) or CSV files."""
    found: dict[str, list[tuple[str, str]]] = {"table": [], "math": []}
    for path in paths:
        if path.is_file():
            kind = "table" if "TabMWP" in str(path) or "tabmwp" in str(path) else "math"
            found[kind].append((str(path), path.read_text(encoding="utf-8")))
        elif (path / "HEAD").is_file() and (path / "objects").is_dir():
            for name in _git(path, "ls-tree", "-r", "--name-only", "HEAD", "tab_and_math").splitlines():
                if name == TABLE_CSV:
                    found["table"].append((name, _git(path, "show", f"HEAD:{name}")))
                elif MATH_GLOB.match(name):
                    found["math"].append((name, _git(path, "show", f"HEAD:{name}")))
        else:
            table = path / TABLE_CSV
            if table.is_file():
                found["table"].append((TABLE_CSV, table.read_text(encoding="utf-8")))
            for csv_path in sorted(path.glob("tab_and_math/MATH/craft/*/5_deduplicated_tools.csv")):
                found["math"].append((str(csv_path.relative_to(path)), csv_path.read_text(encoding="utf-8")))
    rows: dict[str, list[dict[str, str]]] = {}
    for kind, files in found.items():
        for label, text in files:
            for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
                source = (row.get("tool") or "").strip() or (row.get("code") or "").strip()
                if source:
                    rows.setdefault(kind, []).append(
                        {
                            "label": f"{label}:{number}",
                            "source": source,
                            "tool_call": row.get("tool_call") or "",
                            "answer": row.get("answer") or "",
                        }
                    )
    return rows


def case_from_row(row: dict[str, str]) -> dict[str, Any] | None:
    """A test case from CRAFT's own row, or None: its `tool_call` (the code
    CRAFT ran to check the tool on the row's question, ending in
    `print(tool(...))`) as a snippet whose printed expression becomes `ans`,
    and the row's `answer` as the expected value (a number compared as a
    float, else as text). CRAFT kept a tool only when this call gave this
    answer (its grader, which is more lenient than these comparators)."""
    try:
        tree = ast.parse(row["tool_call"])
    except (SyntaxError, ValueError):
        return None
    last = tree.body[-1] if tree.body else None
    if not (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and isinstance(last.value.func, ast.Name)
        and last.value.func.id == "print"
        and len(last.value.args) == 1
        and not last.value.keywords
    ):
        return None
    tree.body[-1] = ast.Assign(targets=[ast.Name("ans", ast.Store())], value=last.value.args[0], lineno=last.lineno)
    snippet = ast.unparse(ast.fix_missing_locations(tree))
    answer = row["answer"].strip()
    try:
        number = float(answer.replace(",", ""))
    except ValueError:
        return {"snippet": snippet, "expected": answer, "comparator": "normalized_text"}
    if number != number or number in (float("inf"), float("-inf")):
        return None
    expected: Any = int(number) if number.is_integer() and abs(number) < 2**53 else number
    return {"snippet": snippet, "expected": expected, "comparator": "float", "tolerance": 1e-6}


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def verify(toolcrib: list[str], env: dict[str, str], ref: str, opts: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    done = run(
        [
            *toolcrib,
            "verify",
            ref,
            "--fuzz",
            str(opts.fuzz),
            "--seed",
            str(opts.seed),
            "--budget",
            str(opts.budget),
            "--json",
            *(["--mutants"] if opts.tests_from_rows else []),
        ],
        env,
    )
    seconds = round(time.perf_counter() - started, 1)
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return {"verify_error": done.stderr.strip()[-300:], "exit": done.returncode, "seconds": seconds}
    fuzz = data.get("fuzz") or {}
    summary = fuzz.get("summary") or {}
    kinds: dict[str, int] = {}
    for finding in fuzz.get("findings", []):
        kinds[finding["kind"]] = kinds.get(finding["kind"], 0) + 1
    mutants = (data.get("mutants") or {}).get("summary") or {}
    return {
        "exit": done.returncode,
        "status": data.get("status"),
        "tests_passed": data.get("passed"),
        "tests_failed": data.get("failed"),
        "mutants": mutants.get("mutants"),
        "score": mutants.get("score"),
        "mutants_error": mutants.get("error"),
        "fuzz_generated": summary.get("generated"),
        "fuzz_ran": summary.get("ran"),
        "fuzz_outcomes": summary.get("outcomes"),
        "fuzz_error": summary.get("error"),
        "budget_exhausted": summary.get("budget_exhausted"),
        "findings": kinds,
        "examples": [
            {"kind": f["kind"], "summary": f["summary"][:120], "input": json.dumps(f["input"])[:160]}
            for f in fuzz.get("findings", [])
        ],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("craft", nargs="+", type=Path, help="a CRAFT checkout (or bare mirror), or its CSV files")
    parser.add_argument("--sample", type=int, default=0, help="tools per corpus, drawn with --seed (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of the generated inputs")
    parser.add_argument("--fuzz", type=int, default=20)
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=2, help="verifications at once")
    parser.add_argument(
        "--stop-after",
        type=float,
        default=0,
        help="start no verify after this many seconds (shared equally by the corpora)",
    )
    parser.add_argument(
        "--tests-from-rows",
        action="store_true",
        help="give each tool the test case its row holds (tool_call, answer) and add --mutants",
    )
    parser.add_argument("--registry", type=Path, help="keep the registry here (default: a temporary one)")
    opts = parser.parse_args()
    toolcrib = [str(Path(sys.executable).parent / "toolcrib")]
    load_start = os.getloadavg()
    wall = time.perf_counter()
    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        registry = opts.registry or Path(tmp) / "r.db"
        env = {**os.environ, "TOOLCRIB_REGISTRY": str(registry), "TOOLCRIB_ACTOR": "new-user"}
        prelude = Path(tmp) / "craft_header.py"
        prelude.write_text(CRAFT_HEADER, encoding="utf-8")
        by_corpus = corpora(opts.craft)
        for corpus, rows in by_corpus.items():
            total = len(rows)
            # In a seeded random order, so that a run cut short by
            # --stop-after has covered a random sample.
            rows = random.Random(opts.seed).sample(rows, min(opts.sample or total, total))
            table = Path(tmp) / f"{corpus}.csv"
            with table.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, ["source", "requires", "metadata", "tests"])
                writer.writeheader()
                for row in rows:
                    meta = json.dumps({"origin": f"CRAFT {row['label']}"})
                    case = case_from_row(row) if opts.tests_from_rows else None
                    tests = json.dumps([case]) if case else ""
                    writer.writerow({"source": row["source"], "requires": REQUIRES, "metadata": meta, "tests": tests})
            started = time.perf_counter()
            added = run(
                [*toolcrib, "add", str(table), "--prelude", str(prelude), "--strip-top-level", "--json"],
                env,
            )
            add_seconds = round(time.perf_counter() - started, 1)
            try:
                report = json.loads(added.stdout)
            except ValueError:
                print(json.dumps({"corpus": corpus, "add_error": added.stderr.strip()[-500:]}), flush=True)
                continue
            refusals: dict[str, int] = {}
            refs = []
            verifying = time.perf_counter()
            for tool in report["tools"]:
                if not tool["admitted"]:
                    reason = re.sub(r"'[^']*'", "'…'", tool.get("error") or "")[:100]
                    refusals[reason] = refusals.get(reason, 0) + 1
                    print(
                        json.dumps({"corpus": corpus, "source": tool["source"], "refused": tool.get("error")}),
                        flush=True,
                    )
                elif tool.get("created", True):
                    refs.append(tool["ref"])

            def one(ref: str, corpus: str = corpus, since: float = verifying) -> tuple[str, dict[str, Any]] | None:
                if opts.stop_after and time.perf_counter() - since > opts.stop_after / len(by_corpus):
                    return None  # out of time: not started, counted as not run
                result = verify(toolcrib, env, ref, opts)
                print(json.dumps({"corpus": corpus, "tool": ref, **result}), flush=True)
                return ref, result

            with ThreadPoolExecutor(max(1, opts.jobs)) as pool:
                results = [r for r in pool.map(one, refs) if r is not None]
            kinds: dict[str, int] = {}
            types: dict[str, int] = {}  # tools per exception type found
            found = 0
            for _, result in results:
                if result.get("findings"):
                    found += 1
                for kind in result.get("findings", {}):
                    kinds[kind] = kinds.get(kind, 0) + 1
                for name in {e["summary"].split()[0] for e in result.get("examples", []) if e["kind"] == "exception"}:
                    types[name] = types.get(name, 0) + 1
            summaries.append(
                {
                    "corpus": corpus,
                    "tools": total,
                    "sampled": len(rows),
                    "admitted": report.get("admitted"),
                    "refused": report.get("refused"),
                    "refusals": refusals,
                    "versions_verified": len(results),
                    "not_run_out_of_time": len(refs) - len(results),
                    "with_fuzz_findings": found,
                    "tools_by_finding_kind": kinds,
                    "tools_by_exception_type": dict(sorted(types.items(), key=lambda kv: -kv[1])),
                    "verified": sum(1 for _, r in results if r.get("status") == "verified"),
                    "scores": sorted(r["score"] for _, r in results if r.get("score") is not None),
                    "clean": sum(1 for _, r in results if r.get("exit") == 0),
                    "verify_errors": sum(1 for _, r in results if "verify_error" in r),
                    "add_seconds": add_seconds,
                    "verify_seconds": round(sum(r.get("seconds", 0) for _, r in results), 1),
                }
            )
    for summary in summaries:
        print(json.dumps(summary))
    print(
        json.dumps(
            {
                "wall_seconds": round(time.perf_counter() - wall, 1),
                "load_start": [round(x, 2) for x in load_start],
                "load_end": [round(x, 2) for x in os.getloadavg()],
                "fuzz": opts.fuzz,
                "budget": opts.budget,
                "seed": opts.seed,
                "sample": opts.sample,
                "jobs": opts.jobs,
                "tests_from_rows": opts.tests_from_rows,
                "stop_after": opts.stop_after,
            }
        )
    )


if __name__ == "__main__":
    main()
