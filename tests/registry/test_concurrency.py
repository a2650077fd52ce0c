"""Several real processes on one registry file: writers serialize cleanly, the
audit chain never forks, and a process killed mid-write leaves no trace of a
half-done operation."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from toolcrib.registry import Registry
from toolcrib.registry.versions import parse_version

WORKER = textwrap.dedent(
    '''
    import sys
    from toolcrib.registry import PolicyRefused, Registry

    path, wid, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Registry(path, actor=f"worker{wid}") as reg:
        for i in range(rounds):
            n = wid * 100000 + i
            reg.add(f'def shared(x: int) -> int:\\n    """Shared tool."""\\n    return x + {n}\\n', name="shared")
            reg.add(f'def own(x: int) -> int:\\n    """Own tool."""\\n    return x * {n}\\n', name=f"own{wid}")
            try:
                reg.call("shared", {"x": 1})
            except PolicyRefused:
                pass
    print("done", wid)
    '''
)

WORKERS = 4
ROUNDS = 15


def test_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"  # not created yet: the workers race to create it too
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(w), str(ROUNDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(1, WORKERS + 1)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert out.startswith("done")
    with Registry(path) as reg:
        versions = [t.version for t in reg.history("shared")]
        # Every add got its own number, handed out in order with no gap or reuse.
        assert versions == [f"1.0.{i}" for i in range(WORKERS * ROUNDS)]
        for w in range(1, WORKERS + 1):
            assert [t.version for t in reg.history(f"own{w}")] == [f"1.0.{i}" for i in range(ROUNDS)]
        entries = reg.audit()
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        events = [e.event for e in entries]
        assert events.count("init") == 1 and events[0] == "init"
        assert events.count("add") == 2 * WORKERS * ROUNDS
        assert events.count("call") == WORKERS * ROUNDS
        assert {e.actor for e in entries if e.event == "call"} == {f"worker{w}" for w in range(1, WORKERS + 1)}
        report = reg.audit_verify()
        assert report.ok, report
        assert report.entries == 1 + 3 * WORKERS * ROUNDS


KILLED_WRITER = textwrap.dedent(
    '''
    import sys
    from toolcrib.registry import Registry

    path, scratch, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # A bundle of 20 versions, built once; each round imports it under a new name.
    with Registry(scratch, actor="builder") as src:
        for i in range(20):
            src.add(f'def batch(x: int) -> int:\\n    """Batch tool."""\\n    return x + {i}\\n', name="batch")
        bundle = src.export()
    big_doc = "word " * 20000
    with Registry(path, actor="writer") as reg:
        i = start
        while True:
            tests = [{"args": {"x": k}, "expected": k * i, "name": f"case{k}"} for k in range(200)]
            src_text = f'def big(x: int) -> int:\\n    """{big_doc}"""\\n    return x * {i}\\n'
            reg.add(src_text, name="big", tests=tests)
            for tool in bundle["tools"]:
                tool["name"] = f"batch{i}"
            reg.import_bundle(bundle)
            i += 1
    '''
)


def _audit_count(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def test_kill_9_mid_write_leaves_a_consistent_registry(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    start = 0
    for round_no, threshold in enumerate((5, 40, 90)):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, str(path), str(tmp_path / f"scratch{round_no}.db"), str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while _audit_count(path) < threshold:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
        assert proc.returncode == -signal.SIGKILL

        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        with Registry(path) as reg:
            report = reg.audit_verify()
            assert report.ok, report
            # Each stored version came with exactly its own audit entry, and
            # each bundle import is all or nothing.
            per_tool: dict[str, int] = {}
            for tool in reg.list(include_yanked=True):
                per_tool[tool.name] = len(reg.history(tool.name))
            audited = reg.audit(event="add") + reg.audit(event="import")
            assert len(audited) == sum(per_tool.values())
            assert {e.tool for e in audited} == {f"{n}@{t.version}" for n in per_tool for t in reg.history(n)}
            for name, count in per_tool.items():
                if name.startswith("batch"):
                    assert count == 20, (name, count)
            big = reg.history("big")
            assert [parse_version(t.version) for t in big] == sorted(parse_version(t.version) for t in big)
            start = 1000 * (round_no + 1)
