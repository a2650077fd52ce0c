"""The checks of docs/verification.md over the example tools, as a new user
would run them: add each examples/NAME.py with its NAME.tests.json, then
`toolcrib verify NAME --fuzz N --mutants`, through the CLI, in a fresh
registry, on the real restricted backend.

    .venv/bin/python bench/checks_over_examples.py [--fuzz 50] [--budget 60]

Prints, per tool: its tests, verdict, fuzz findings by kind, mutation score,
and the seconds the verify took; then the totals. The table in
docs/verification.md ("Over the example tools") is its output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=50)
    parser.add_argument("--budget", type=float, default=60.0)
    opts = parser.parse_args()
    toolcrib = [str(Path(sys.executable).parent / "toolcrib")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TOOLCRIB_REGISTRY": str(Path(tmp) / "r.db"), "TOOLCRIB_ACTOR": "new-user"}
        for source in sorted((ROOT / "examples").glob("*.py")):
            tests = source.with_suffix(".tests.json")
            if not tests.exists():
                continue
            added = subprocess.run(
                [*toolcrib, "add", str(source), "--tests", str(tests), "--strip-top-level", "--json"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if added.returncode != 0:
                rows.append({"tool": source.stem, "error": added.stderr.strip()[-200:]})
                continue
            ref = json.loads(added.stdout)["ref"]
            started = time.perf_counter()
            done = subprocess.run(
                [
                    *toolcrib,
                    "verify",
                    ref,
                    "--fuzz",
                    str(opts.fuzz),
                    "--mutants",
                    "--budget",
                    str(opts.budget),
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            seconds = round(time.perf_counter() - started, 1)
            try:
                data = json.loads(done.stdout)
            except ValueError:
                rows.append({"tool": ref, "error": done.stderr.strip()[-200:], "seconds": seconds})
                continue
            fuzz = data.get("fuzz") or {}
            kinds: dict[str, int] = {}
            for finding in fuzz.get("findings", []):
                kinds[finding["kind"]] = kinds.get(finding["kind"], 0) + 1
            mutants = (data.get("mutants") or {}).get("summary", {})
            rows.append(
                {
                    "tool": ref,
                    "tests": data.get("passed", 0) + data.get("failed", 0),
                    "status": data.get("status"),
                    "fuzz_ran": fuzz.get("summary", {}).get("ran"),
                    "fuzz_generated": fuzz.get("summary", {}).get("generated"),
                    "fuzz_error": fuzz.get("summary", {}).get("error"),
                    "findings": kinds,
                    "examples": [
                        f["summary"][:90] + f"  input {json.dumps(f['input'])[:60]}" for f in fuzz.get("findings", [])
                    ],
                    "mutants": mutants.get("mutants"),
                    "score": mutants.get("score"),
                    "seconds": seconds,
                }
            )
    for row in rows:
        print(json.dumps(row))
    found = sum(1 for r in rows if r.get("findings"))
    scores = sorted(r["score"] for r in rows if r.get("score") is not None)
    print(
        json.dumps(
            {
                "tools": len(rows),
                "with_fuzz_findings": found,
                "scores": scores,
                "seconds": round(sum(r.get("seconds", 0) for r in rows), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
