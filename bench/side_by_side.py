"""Run one of the benchmark scripts for a baseline revision and for this
checkout, alternating round by round, in one run.

    .venv/bin/python bench/side_by_side.py bench_startup.py [--baseline b9526f4] [--rounds 2] [--same-script] [-- ARGS...]

Each side (the baseline, and ``--new``, default HEAD) is installed from a
git worktree into its own venv under bench/out/ (built once, not timed;
`bench_lock_jail.baseline_python`), never editable, and runs *its own copy*
of the script (module paths move between revisions). Each run's output is
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
    parser.add_argument(
        "--new",
        default="HEAD",
        help="the revision to compare (default HEAD: committed work), installed the same way as the baseline",
    )
    parser.add_argument(
        "--same-script",
        action="store_true",
        help="run the new side's copy of the script on both sides (a script newer than the baseline, "
        "written to measure either: bench_scale.py)",
    )
    opts, args = parser.parse_known_args(argv)
    args = [a for a in args if a != "--"]  # the rest goes to the script
    new = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", opts.new], capture_output=True, text=True, check=True
    ).stdout.strip()
    # Both sides installed from a worktree, not editable: an editable
    # install's import finder alone costs a fresh process some milliseconds.
    sides = {
        rev: (baseline_python(rev), OUT / f"baseline-{rev}" / "tree" / "bench" / opts.script)
        for rev in (opts.baseline, new)
    }
    if opts.same_script:
        script = sides[new][1]
        sides = {rev: (python, script) for rev, (python, _) in sides.items()}
    out_dir = OUT / "side_by_side"
    out_dir.mkdir(parents=True, exist_ok=True)
    for round_no in range(1, opts.rounds + 1):
        for side, (python, script) in sides.items():
            print(f"=== {opts.script}, {side}, round {round_no}/{opts.rounds}", flush=True)
            # From the script's own folder: each side imports its installed
            # toolcrib, never a checkout's folders.
            done = subprocess.run(
                [str(python), str(script), *args],
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
