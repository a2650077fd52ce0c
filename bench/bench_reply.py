"""What one large reply costs the host, side by side with a baseline (issue 15, item 3).

    .venv/bin/python bench/bench_reply.py [--baseline b9526f4] [--rounds 2] [--only text,strings]

The attack round found that a 16 MB reply (the registry's maximum output
limit then, chosen by the tool's author) cost the host 557 MB and 17.6 s.
This runs calls whose reply is just under a 16 MiB output limit (the
operator's maximum raised to 16 MiB on the new side, `toolcrib limits`;
the baseline allowed it to every author) on the restricted backend, and
measures, for each side:

- ``api``: the host process calling `Registry.call` (after a warm-up
  call): growth of its peak resident size (ru_maxrss), the host's own CPU
  seconds for the call (the sandboxed child is another process and not
  counted), and the call's wall time (sandbox included);
- ``cli``: ``toolcrib call NAME --json`` as a process of its own: its peak
  resident size (``wait4``) minus that of a trivial call, and its wall time.

Shapes (all restricted-policy tools, n chosen to fill 16 MiB of JSON):

- ``text``: one string of 16 MiB;
- ``short``: ~3.3 million two-letter strings (the attack's shape);
- ``lists``: ~5.5 million empty lists (3 bytes of JSON, 64 of memory each);
- ``budget``: 350,000 45-letter strings, as many as the new value budget
  allows at 16 MiB (one value per 16 bytes, a string counting as two),
  the costliest reply per byte it accepts;
- ``wide``: one string of 16 MiB whose first character is an emoji
  (Python stores all of it at 4 bytes a character).

The baseline is the named commit in a git worktree under bench/out/,
importable from a venv of its own whose site-packages holds the commit's
`toolcrib` (assembled by symlinks after pyproject's package-dir mapping:
no build, no network) and a .pth to this interpreter's site-packages for
the dependencies. The two sides alternate round by round. A script, not a
test: prints a table and writes bench/out/bench_reply.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
CAP_KIB = 16384
CAP = CAP_KIB * 1024

TOOLS = {
    "text": ('def text(n: int) -> str:\n    """n characters."""\n    return "x" * n\n', CAP - 512),
    "short": ('def short(n: int) -> list:\n    """n two-letter strings."""\n    return ["ab"] * n\n', CAP // 5 - 64),
    "lists": (
        'def lists(n: int) -> list:\n    """n empty lists."""\n    return [[] for _ in range(n)]\n',
        CAP // 3 - 64,
    ),
    "budget": (
        'def budget(n: int) -> list:\n    """n 45-letter strings."""\n    return ["a" * 45] * n\n',
        CAP // 48 - 64,
    ),
    "wide": (
        'def wide(n: int) -> str:\n    """n characters, one an emoji."""\n    return "\\U0001F600" + "x" * n\n',
        CAP - 512,
    ),
}
WARM = 'def warm() -> int:\n    """A trivial call."""\n    return 1\n'

# Run by each side's interpreter from a temporary directory (so `toolcrib` is
# that side's installed one, never the checkout's).
SETUP = r"""
import json, sys
from toolcrib import Registry
from toolcrib.sandbox.contract import Limits
path, tools = sys.argv[1], json.loads(sys.argv[2])
with Registry(path, actor="bench") as reg:
    for name, source in tools.items():
        reg.add(source, limits=Limits(cpu=60, wall=120, memory=4096, output=%d))
    try:
        from toolcrib.registry.limits import set_maxima
    except ImportError:
        pass  # the baseline: every author could declare 16 MiB
    else:
        set_maxima(reg.db.conn, actor="operator", changes={"output": %d})
""" % (CAP_KIB, CAP_KIB)

API = r"""
import json, resource, sys, time
from toolcrib import Registry
path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
with Registry(path) as reg:
    reg.call("warm", {}, allow_unverified=True)
    rss, cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, cpu(), time.perf_counter()
    out = reg.call(name, {"n": n}, allow_unverified=True)
    wall, host_cpu = time.perf_counter() - t0, cpu() - cpu0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
print(json.dumps({"status": out.status, "limit": out.limit, "grown_mib": grown / 1024, "host_cpu_s": host_cpu,
                  "wall_s": wall}))
"""


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def baseline_python(commit: str) -> Path:
    """An interpreter that imports `toolcrib` at `commit` (made once, reused)."""
    base = OUT / f"reply-baseline-{commit}"
    tree, venv = base / "tree", base / "venv"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    base.mkdir(parents=True, exist_ok=True)
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True
        )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = _site_packages(python)
    (site / "zz_toolcrib_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    package = site / "toolcrib"
    package.mkdir()
    for item in (tree / "toolcrib").iterdir():
        (package / item.name).symlink_to(item)
    for name, folder in (
        ("registry", "registry"),
        ("sandbox", "sandbox"),
        ("cli", "cli"),
        ("images", "sandbox-images"),
    ):
        (package / name).symlink_to(tree / folder)
    script = venv / "bin" / "toolcrib"
    script.write_text(f"#!{python}\nimport sys\nfrom toolcrib.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return python


def _run(python: Path, code: str, *args: str, cwd: str) -> dict[str, Any]:
    done = subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{python}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}


def _cli(python: Path, registry: Path, *args: str, cwd: str) -> tuple[int, float, float]:
    """(exit code, peak RSS MiB, wall seconds) of one `toolcrib call`."""
    script = python.with_name("toolcrib")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(script), "--registry", str(registry), "call", *args, "--allow-unverified", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, time.perf_counter() - started


def measure(python: Path, shapes: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-reply-") as tmp:
        registry = Path(tmp) / "r.db"
        tools = {name: TOOLS[name][0] for name in shapes} | {"warm": WARM}
        _run(python, SETUP, str(registry), json.dumps(tools), cwd=tmp)
        out: dict[str, Any] = {}
        _, floor_mib, _ = _cli(python, registry, "warm", cwd=tmp)
        for name in shapes:
            n = TOOLS[name][1]
            api = _run(python, API, str(registry), name, str(n), cwd=tmp)
            code, peak, wall = _cli(python, registry, name, "--arg", f"n={n}", cwd=tmp)
            out[name] = {"api": api, "cli": {"exit": code, "grown_mib": peak - floor_mib, "wall_s": wall}}
        return out


def _median(rounds: list[dict[str, Any]], shape: str, door: str, key: str) -> float:
    return statistics.median(r[shape][door][key] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="b9526f4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default=",".join(TOOLS), help="comma-separated shapes")
    opts = parser.parse_args()
    shapes = [s for s in opts.only.split(",") if s]
    sides = {"baseline": baseline_python(opts.baseline), "new": Path(sys.executable)}
    rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for _ in range(opts.rounds):
        for side, python in sides.items():
            rounds[side].append(measure(python, shapes))
    print(
        f"16 MiB output limit, restricted backend; medians of {opts.rounds} rounds "
        f"(baseline {opts.baseline} vs this checkout)"
    )
    header = ("shape", "side", "outcome", "api MiB", "host cpu s", "api wall s", "cli MiB", "cli wall s")
    print("  ".join(f"{h:>11}" for h in header))
    summary: dict[str, Any] = {}
    for shape in shapes:
        for side in sides:
            last = rounds[side][-1][shape]
            outcome = last["api"]["status"] + (f":{last['api']['limit']}" if last["api"]["limit"] else "")
            row = {
                "outcome": outcome,
                "api_grown_mib": _median(rounds[side], shape, "api", "grown_mib"),
                "host_cpu_s": _median(rounds[side], shape, "api", "host_cpu_s"),
                "api_wall_s": _median(rounds[side], shape, "api", "wall_s"),
                "cli_grown_mib": _median(rounds[side], shape, "cli", "grown_mib"),
                "cli_wall_s": _median(rounds[side], shape, "cli", "wall_s"),
            }
            summary.setdefault(shape, {})[side] = row
            cells = (shape, side, outcome, *(f"{row[k]:.1f}" if "mib" in k else f"{row[k]:.2f}" for k in list(row)[1:]))
            print("  ".join(f"{c:>11}" for c in cells))
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_reply.json").write_text(
        json.dumps({"baseline": opts.baseline, "cap_kib": CAP_KIB, "summary": summary, "rounds": rounds}, indent=2)
    )


if __name__ == "__main__":
    main()
