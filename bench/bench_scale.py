"""Reading a big registry (issue 21): search, list, show, export, audit at
100,000 versions and 1,000,000 audit entries.

    .venv/bin/python bench/bench_scale.py [--versions 100000] [--entries 1000000] [--queries 60] [--repeat 5] [--cache DIR]
    .venv/bin/python bench/side_by_side.py bench_scale.py --baseline 4ad579c --rounds 1

The registry is built by this script, in bulk through the installed
toolcrib's own schema (`Registry(path)` creates and migrates the file; rows
are cloned from one real `add` and one real audit entry, with names, words,
versions and times varied, the audit chain hashed as `registry/audit.py`
hashes it), not by 100,000 adds; the file is cached under bench/out/ per
size and per schema (the migrations the installed toolcrib applies), so a
second run of either side starts at once.

Measured, each on the side's own code: `Registry.search` (API, median and
p95 over the queries), `toolcrib list` first page (`--limit 20` where the
side has it, else the whole listing: that is the baseline's first page),
`toolcrib show` of the most-called version, `toolcrib list --json` and
`toolcrib export` of everything (wall time and the child's peak RSS, output
to /dev/null), `toolcrib audit --since T --limit 20`. CLI times are end to
end: spawning the process to its exit. Prints a table and writes JSON to
bench/out/bench_scale-<side>.json. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from toolcrib.registry import Registry
from toolcrib.registry.audit import entry_hash
from toolcrib.registry.search import index_terms
from toolcrib.registry.store import applied_migrations
from toolcrib.registry.versions import sha256_text

OUT = Path(__file__).resolve().parent / "out"

VERBS = """sort count parse format convert merge split filter find compute check validate encode decode
hash compress expand rotate reverse normalize round scale clip rank group join trim pad slugify tokenize
summarize extract render measure estimate predict classify cluster sample shuffle dedupe flatten nest
transpose invert differentiate integrate factor solve simplify evaluate interpolate""".split()
NOUNS = """words list string date time matrix vector graph tree table column row json csv xml url email
phone address name number prime fraction polynomial equation angle distance area volume temperature
currency price tax invoice order customer product image color pixel audio signal frequency text sentence
paragraph document file path log event record key value token password hash checksum""".split()
ADJS = """sorted unique empty nested sparse dense weighted signed unsigned binary decimal hex roman
metric imperial lower upper title camel snake kebab unicode ascii""".split()
VERSIONS = ("1.0.0", "1.0.1", "1.1.0", "2.0.0-rc.1", "2.0.0")

TEMPLATE = '''\
def compute_thing(words: list[str], limit: int = 3) -> list[str]:
    """Compute the thing of some words."""
    return sorted(words)[:limit]
'''


def _schema_key() -> str:
    """Which schema the installed toolcrib writes (its migrations), so each side caches its own file."""
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp) / "probe.db", actor="bench") as reg:
        return sha256_text(",".join(applied_migrations(reg.db.conn)))[:10]


def build(path: Path, n_versions: int, n_entries: int, seed: int = 21) -> dict[str, Any]:
    """A registry of n_versions versions and n_entries audit entries at `path`."""
    rnd = random.Random(seed)
    with Registry(path, actor="bench") as reg:
        reg.add(TEMPLATE, tests=[{"args": {"words": ["b", "a"]}, "expected": ["a", "b"]}])
        conn = reg.db.conn
        cols = [r[1] for r in conn.execute("PRAGMA table_info(versions)")]
        template = dict(zip(cols, conn.execute("SELECT * FROM versions").fetchone(), strict=True))
        seq0, prev = conn.execute("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        conn.execute("BEGIN IMMEDIATE")
        names: list[tuple[str, str]] = []
        n_names = max(n_versions // len(VERSIONS), 1)
        rows = []
        signature = json.loads(template["signature"])
        tests = json.loads(template["tests"])
        for i in range(n_names):
            verb, noun, adj = rnd.choice(VERBS), rnd.choice(NOUNS), rnd.choice(ADJS)
            name = f"{verb}_{adj}_{noun}_{i}"
            about = f"{verb.capitalize()} the {adj} {noun} of a {rnd.choice(NOUNS)} and return {rnd.choice(NOUNS)}."
            for j, version in enumerate(VERSIONS):
                if len(rows) >= n_versions:
                    break
                source = TEMPLATE.replace("compute_thing", name).replace("Compute the thing of some words.", about)
                source += f"# {j}\n"
                row = dict(template)
                row.pop("id")
                row.update(
                    name=name,
                    version=version,
                    entrypoint=name,
                    source=source,
                    description=about,
                    sha256=sha256_text(f"{name}@{version}"),
                    source_sha256=sha256_text(source),
                    status="verified" if rnd.random() < 0.8 else "unverified",
                    yanked="bench: yanked" if j == len(VERSIONS) - 1 and rnd.random() < 0.05 else None,
                    search_terms=index_terms(name, name, about, signature, tests),
                )
                if "sort_key" in row:
                    row["sort_key"] = None  # the side's own code fills it (below), as its store would
                rows.append(row)
            names.append((name, VERSIONS[-1]))
        keys = list(rows[0])
        conn.executemany(
            f"INSERT INTO versions ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})",
            [[r[k] for k in keys] for r in rows],
        )
        try:  # the newest table's own keys and rebuild, where the side has them (issue 21)
            from toolcrib.registry import store_newest

            store_newest.backfill_sort_keys(conn)
            store_newest.rebuild_newest(conn)
        except ImportError:
            pass
        # The audit log: mostly calls, a tenth of them of one version (the most-called).
        refs = [f"{r['name']}@{r['version']}" for r in rows if r["yanked"] is None]
        hot = refs[len(refs) // 2]
        start = time.time() - n_entries * 0.05
        batch = []
        for k in range(n_entries):
            seq = seq0 + 1 + k
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + k * 0.05)) + f".{k % 1000:03d}000Z"
            roll = rnd.random()
            if roll < 0.97:
                tool = hot if roll < 0.1 else rnd.choice(refs)
                status = "ok" if rnd.random() < 0.9 else rnd.choice(["error", "limit", "refused"])
                details: dict[str, Any] = {"status": status, "backend": "restricted", "policy": "restricted"}
                if status != "refused":
                    details["duration_ms"] = round(rnd.lognormvariate(1.0, 0.5), 3)
                event = "call"
            else:
                tool, event, details = rnd.choice(refs), "verify", {"status": "verified", "passed": 1, "failed": 0}
            entry = {"seq": seq, "at": at, "actor": "bench", "event": event, "tool": tool, "details": details}
            entry["prev_hash"] = prev
            prev = entry_hash(entry)
            text = json.dumps(details, sort_keys=True, separators=(",", ":"))
            batch.append((seq, at, "bench", event, tool, text, entry["prev_hash"], prev))
            if len(batch) == 20000:
                conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
                batch = []
        if batch:
            conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
        # What a bulk load ends with, on either side: the index's segments merged.
        conn.execute("INSERT INTO search_index (search_index) VALUES ('optimize')")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        last_at = at if n_entries else time.strftime("%Y-%m-%d")
    return {"hot": hot, "last_at": last_at, "versions": len(rows) + 1, "entries": n_entries + seq0}


def registry_file(n_versions: int, n_entries: int, cache: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The cached registry for this size and this side's schema (built on first use)."""
    base = (cache or OUT / "scale") / f"v{n_versions}-e{n_entries}-{_schema_key()}"
    path, meta_path = base / "registry.db", base / "meta.json"
    if not meta_path.exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        started = time.perf_counter()
        meta = build(path, n_versions, n_entries)
        meta["build_s"] = round(time.perf_counter() - started, 1)
        meta_path.write_text(json.dumps(meta))
    return path, json.loads(meta_path.read_text())


def _toolcrib() -> str:
    found = Path(sys.executable).parent / "toolcrib"
    return str(found) if found.exists() else shutil.which("toolcrib") or "toolcrib"


def _hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_cli(path: Path, args: list[str]) -> tuple[float, float, int, float]:
    """(wall ms, peak RSS MiB, exit code, CPU ms) of one `toolcrib` run, output to /dev/null.

    The peak is the child's own VmHWM, sampled every 2 ms until it exits (the
    high-water mark only grows, so the last sample is the peak to within the
    last 2 ms); not wait4's ru_maxrss, which Linux carries over from this
    (big) parent through fork and exec. The CPU time (user + system) is
    wait4's for the child: on a machine other work loads, it moves much less
    than the wall time."""
    env = {**os.environ, "TOOLCRIB_REGISTRY": str(path)}
    started = time.perf_counter()
    peak = 0
    with open(os.devnull, "wb") as sink:
        child = subprocess.Popen([_toolcrib(), *args], stdout=sink, stderr=subprocess.DEVNULL, env=env)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _hwm_kib(child.pid) or 0)
            time.sleep(0.002)
    wall = (time.perf_counter() - started) * 1000
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, peak / 1024, child.returncode, (usage.ru_utime + usage.ru_stime) * 1000


def _has_option(command: str, option: str) -> bool:
    done = subprocess.run([_toolcrib(), command, "--help"], capture_output=True, text=True, check=False)
    return option in done.stdout


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--skip-memory", action="store_true", help="leave out list --json and export")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="where built registries are kept (default bench/out/scale beside this script: under side_by_side, "
        "the new side's tree, so a new commit builds again; give a folder to reuse one between runs)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run each CLI command this many times (median)")
    opts = parser.parse_args(argv)
    path, meta = registry_file(opts.versions, opts.entries, opts.cache)
    results: dict[str, Any] = {"versions": meta["versions"], "entries": meta["entries"], "build_s": meta["build_s"]}
    rnd = random.Random(5)
    queries = [
        f"{rnd.choice(VERBS)} the {rnd.choice(ADJS)} {rnd.choice(NOUNS)} in a {rnd.choice(NOUNS)}"
        for _ in range(opts.queries)
    ]
    with Registry(path, actor="bench") as reg:
        reg.search(queries[0])  # the first opens the file and warms SQLite's cache
        times = []
        for q in queries:
            started = time.perf_counter()
            reg.search(q)
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    results["search_median_ms"] = round(statistics.median(times), 2)
    results["search_p95_ms"] = round(times[max(int(len(times) * 0.95) - 1, 0)], 2)

    paged = _has_option("list", "--limit")
    results["list_paged"] = paged
    cli: list[tuple[str, list[str]]] = [
        ("list_first_page", ["list", "--limit", "20"] if paged else ["list"]),
        ("show_most_called", ["show", meta["hot"]]),
        ("audit_since_limit_20", ["audit", "--since", meta["last_at"][:16], "--limit", "20"]),
    ]
    if not opts.skip_memory:
        cli += [("list_json", ["list", "--json"]), ("export", ["export"])]
    for label, args in cli:
        runs = [run_cli(path, args) for _ in range(opts.repeat if not label.startswith(("list_json", "export")) else 1)]
        wall, rss, code = statistics.median(r[0] for r in runs), max(r[1] for r in runs), max(r[2] for r in runs)
        results[f"{label}_ms"] = round(wall, 1)
        results[f"{label}_cpu_ms"] = round(statistics.median(r[3] for r in runs), 1)
        results[f"{label}_rss_mib"] = round(rss, 1)
        if code:
            results[f"{label}_exit"] = code
    side = os.environ.get("BENCH_SIDE") or Path(sys.executable).parents[2].name
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"bench_scale-{side}.json").write_text(json.dumps(results, indent=2))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main(sys.argv[1:])
