"""Run one of the benchmark scripts for a baseline revision and for this
checkout, alternating round by round, in one run.

    .venv/bin/python bench/side_by_side.py bench_startup.py [--baseline b9526f4] [--rounds 2] [-- ARGS...]

The baseline is installed from a git worktree into its own venv under
bench/out/ (built once, not timed; `bench_lock_jail.baseline_python`), and
runs *its own copy* of the script (module paths move between revisions);
this checkout runs its script with this interpreter. Each run's output is
printed and kept in bench/out/side_by_side/<script>-<side>-<round>.txt.
Alternating the sides puts drift in the machine's load on both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench_lock_jail import OUT, ROOT, baseline_python


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", help="a script in bench/, e.g. bench_startup.py")
    parser.add_argument("--baseline", default="b9526f4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("args", nargs="*", help="passed to the script (after --)")
    opts = parser.parse_args(argv)
    base_python = baseline_python(opts.baseline)
    sides = {
        opts.baseline: (base_python, OUT / f"baseline-{opts.baseline}" / "tree" / "bench" / opts.script),
        "new": (Path(sys.executable), ROOT / "bench" / opts.script),
    }
    out_dir = OUT / "side_by_side"
    out_dir.mkdir(parents=True, exist_ok=True)
    for round_no in range(1, opts.rounds + 1):
        for side, (python, script) in sides.items():
            print(f"=== {opts.script}, {side}, round {round_no}/{opts.rounds}", flush=True)
            # From the script's own folder: each side imports its installed
            # toolcrib, never a checkout's folders.
            done = subprocess.run(
                [str(python), str(script), *opts.args],
                capture_output=True,
                text=True,
                cwd=str(script.parent),
                check=False,
            )
            text = done.stdout + (f"\n[exit {done.returncode}]\n{done.stderr[-2000:]}" if done.returncode else "")
            (out_dir / f"{Path(opts.script).stem}-{side}-{round_no}.txt").write_text(text)
            print(text, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
