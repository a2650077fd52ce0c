"""One `Registry` shared by several threads (what `toolcrib serve` does).

sqlite3 connections refuse use from any thread but their creator; the
registry keeps one connection per thread. These tests use the registry from
fresh threads, concurrently, and check every write landed exactly once with
an unbroken audit chain.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from toolcrib import Registry

SOURCE = '''
def double(x: int) -> int:
    """Double a number."""
    return 2 * x
'''


def run_threads(count: int, work: Any) -> list[BaseException]:
    """Run `work(i)` in `count` threads released together; the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_a_registry_is_usable_from_another_thread(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.db", actor="t")
    seen: list[str] = []
    errors = run_threads(1, lambda _i: seen.append(reg.add(SOURCE).tool.ref))
    assert errors == []
    assert seen == ["double@1.0.0"]
    # The creating thread sees what the other thread wrote.
    assert [t.ref for t in reg.list()] == ["double@1.0.0"]
    reg.close()


def test_concurrent_writes_and_reads_from_many_threads(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.db", actor="t")
    count = 8

    def work(i: int) -> None:
        source = SOURCE.replace("double", f"double_{i}")
        added = reg.add(source, tests=[{"args": {"x": 1}, "expected": 2}])
        assert added.created
        assert reg.get(added.tool.name).sha256 == added.tool.sha256
        reg.deprecate(added.tool.ref, f"replaced by {i}")
        assert reg.history(added.tool.name)[0].deprecated == f"replaced by {i}"

    assert run_threads(count, work) == []
    assert sorted(t.name for t in reg.list()) == sorted(f"double_{i}" for i in range(count))
    report = reg.audit_verify()
    assert report.ok, report
    events = [e.event for e in reg.audit()]
    assert events.count("add") == count and events.count("deprecate") == count
    reg.close()


def test_concurrent_calls_share_one_registry(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.db", actor="t")
    reg.add(SOURCE, tests=[{"args": {"x": 2}, "expected": 4}])
    assert reg.verify("double").status == "verified"
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        results[i] = reg.call("double", {"x": i}).result

    assert run_threads(4, work) == []
    assert results == {i: 2 * i for i in range(4)}
    calls = [e for e in reg.audit(event="call")]
    assert len(calls) == 4
    assert reg.audit_verify().ok
    reg.close()


def test_close_closes_every_threads_connection(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.db", actor="t")
    assert run_threads(2, lambda _i: reg.list()) == []
    reg.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        reg.list()
    errors = run_threads(1, lambda _i: reg.list())
    assert len(errors) == 1 and isinstance(errors[0], sqlite3.ProgrammingError) and "closed" in str(errors[0])


def test_acting_as_is_per_thread(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.db", actor="owner")
    reg.add(SOURCE, tests=[{"args": {"x": 2}, "expected": 4}])
    reg.verify("double")
    inside = threading.Barrier(2)

    def work(i: int) -> None:
        with reg.acting_as(f"client-{i}"):
            inside.wait()  # both threads are acting as their own client at once
            assert reg.actor == f"client-{i}"
            reg.call("double", {"x": i})

    assert run_threads(2, work) == []
    assert reg.actor == "owner"
    callers = sorted(e.actor for e in reg.audit(event="call"))
    assert callers == ["client-0", "client-1"]
    reg.close()
