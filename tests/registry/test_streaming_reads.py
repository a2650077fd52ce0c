"""Listings that stream (issue 21), at the registry: `iter_list` pages and
filters, `iter_export` and `iter_audit` give what `list`, `export` and
`audit` give, in constant memory (tracemalloc's peak over a registry ten
times the size stays about the same: a ratio, not a time); usage kept as
calls are audited equals usage recomputed from the log; `audit --since`
reads through the time index. Real SQLite, rows generated in bulk by plain
SQL (the triggers keep the newest table, the index and usage right); no
sandbox runs."""

from __future__ import annotations

import json
import math
import statistics
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from toolcrib.cli.streaming import write_json_array, write_json_object
from toolcrib.registry import InvalidInput, store_audit
from toolcrib.registry.store import write_transaction

from toolcrib import Registry

# A tool with a docstring of a few kilobytes: each version read costs memory.
TOOL = 'def {name}(x: int) -> int:\n    """{about}"""\n    return x\n'
ABOUT = "Return x. " + "Padding words for the listing. " * 120


def _grow(reg: Registry, versions: int, entries: int = 0) -> None:
    """`versions` copies of one real version under new names, and `entries`
    call entries spread over them, inserted by plain SQL."""
    reg.add(TOOL.format(name="seed", about=ABOUT))
    with write_transaction(reg.db.conn) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(versions)") if r[1] not in ("id", "name", "sort_key")]
        select = ", ".join(cols)
        for i in range(versions):
            conn.execute(
                f"INSERT INTO versions (name, {select}) SELECT ?, {select} FROM versions WHERE name = 'seed'",
                [f"tool_{i:05d}"],
            )
        last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
        rows = []
        for k in range(entries):
            status = ("ok", "ok", "error", "refused", "limit")[k % 5]
            details = {"status": status, **({} if status == "refused" else {"duration_ms": float((k * 37) % 101)})}
            at = f"2026-01-01T00:{k // 3600 % 60:02d}:{k // 60 % 60:02d}.{k % 60:06d}Z"
            rows.append((last + 1 + k, at, "t", "call", f"tool_{k % 7:05d}@1.0.0", json.dumps(details), "x", "y"))
        conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _peak(consume: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        consume()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _sink(items: Iterable[Any]) -> int:
    return write_json_array(lambda _text: None, items)


@pytest.fixture
def big(reg: Registry) -> Registry:
    _grow(reg, 60)
    return reg


def test_iter_list_is_list_paged_and_filtered(big: Registry) -> None:
    everything = big.list()
    assert [t.ref for t in big.iter_list()] == [t.ref for t in everything]
    page1 = [t.name for t in big.iter_list(limit=25)]
    page2 = [t.name for t in big.iter_list(limit=25, offset=25)]
    by_cursor = [t.name for t in big.iter_list(limit=25, after=page1[-1])]
    assert page1 + page2 == [t.name for t in everything][:50]
    assert by_cursor == page2
    assert [t.name for t in big.iter_list(name_glob="tool_0001?")] == [f"tool_{i:05d}" for i in range(10, 20)]
    assert [t.name for t in big.iter_list(name_glob="Tool_*")] == []  # GLOB is case-sensitive
    big.yank("tool_00003", "bad")
    assert "tool_00003" not in {t.name for t in big.iter_list()}
    assert "tool_00003" in {t.name for t in big.iter_list(include_yanked=True)}
    assert [t.name for t in big.iter_list(status="verified")] == []
    assert len(list(big.iter_list(status="unverified"))) == 60
    with pytest.raises(InvalidInput, match="unknown status"):
        list(big.iter_list(status="bogus"))
    with pytest.raises(InvalidInput, match="offset"):
        list(big.iter_list(offset=-1))


def test_a_page_walks_the_names_in_order_and_stops(big: Registry) -> None:
    """A first page reads its rows in name order through the primary key and
    stops at the page's end: no sort of every live name's whole row (which
    SQLite chose through the newest_live index: 164 ms at 100,000 versions
    for a page of 20). Read from SQLite's own plan of the statement the page
    runs, caught by a trace callback."""
    from toolcrib.registry.store_listing import newest_page

    conn = big.db.conn
    ran: list[str] = []
    conn.set_trace_callback(ran.append)
    try:
        assert len(list(newest_page(conn, limit=20))) == 20
    finally:
        conn.set_trace_callback(None)
    statement = next(s for s in ran if s.lstrip().upper().startswith("SELECT"))
    plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
    assert "TEMP B-TREE" not in plan and "newest_live" not in plan, plan


def test_iter_export_is_export_entry_for_entry(big: Registry) -> None:
    big.add(TOOL.format(name="tool_00002", about="A second version."), as_new_version=True)
    whole = big.export()
    head, entries = big.iter_export()
    assert head["format"] == whole["format"]
    assert list(entries) == whole["tools"]
    _, some = big.iter_export(["tool_00002", "seed"])
    assert [(e["name"], e["version"]) for e in some] == [
        (e["name"], e["version"]) for e in big.export(["tool_00002", "seed"])["tools"]
    ]
    # The streamed text is json.dumps's, byte for byte.
    written: list[str] = []
    write_json_object(written.append, {**head, "exported_at": whole["exported_at"]}, "tools", iter(whole["tools"]))
    assert "".join(written) == json.dumps(whole, indent=2, ensure_ascii=False) + "\n"
    for value in ([], [{}], [{"a": [1, {"b": "x\ny"}]}, []]):
        out: list[str] = []
        write_json_array(out.append, iter(value))
        assert "".join(out) == json.dumps(value, indent=2, ensure_ascii=False)


def test_listing_and_export_memory_does_not_grow_with_the_registry(reg: Registry, tmp_path) -> None:
    small_peaks: dict[str, int] = {}
    with Registry(tmp_path / "small.db", actor="t") as small:
        _grow(small, 100)
        small_peaks["list"] = _peak(lambda: _sink(t.model_dump(mode="json") for t in small.iter_list()))
        small_peaks["export"] = _peak(lambda: _sink(small.iter_export()[1]))
    _grow(reg, 1000)
    big_list = _peak(lambda: _sink(t.model_dump(mode="json") for t in reg.iter_list()))
    big_export = _peak(lambda: _sink(reg.iter_export()[1]))
    # Ten times the versions, about the same peak (built whole, it was ~10x).
    assert big_list < 3 * small_peaks["list"], (big_list, small_peaks)
    assert big_export < 3 * small_peaks["export"], (big_export, small_peaks)
    # And the whole list built in memory does grow: the measure can tell.
    assert _peak(lambda: [t.model_dump(mode="json") for t in reg.list()]) > 5 * big_list


def test_audit_streams_and_since_reads_the_time_index(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    _grow(reg, 10, entries=3000)
    every = reg.audit()
    assert [e.seq for e in reg.iter_audit()] == [e.seq for e in every]
    since = "2026-01-01T00:00:30"
    expected = [e.seq for e in every if e.at >= "2026-01-01T00:00:30.000000Z"]
    assert 0 < len(expected) < len(every)
    for threshold in (1, 10**9):  # walking back by seq, and reading through the index
        monkeypatch.setattr(store_audit, "SINCE_INDEX_THRESHOLD", threshold)
        assert [e.seq for e in reg.iter_audit(since=since)] == expected
        assert [e.seq for e in reg.iter_audit(since=since, limit=20)] == expected[-20:]
        assert [e.seq for e in reg.iter_audit(since=since, limit=20, tool="tool_00001")] == [
            e.seq for e in every if e.seq in set(expected) and e.tool == "tool_00001@1.0.0"
        ][-20:]
    # The statement `audit --since` runs when few entries match reads the time index.
    statements: list[str] = []
    reg.db.conn.set_trace_callback(statements.append)
    try:
        list(reg.iter_audit(since="2026-01-01T00:00:49", limit=20))
    finally:
        reg.db.conn.set_trace_callback(None)
    query = next(s for s in statements if s.startswith("SELECT seq"))
    plan = " ".join(str(r) for r in reg.db.conn.execute("EXPLAIN QUERY PLAN " + query))
    assert "USING INDEX audit_at" in plan, plan
    small = _peak(lambda: _sink(e.model_dump(mode="json") for e in reg.iter_audit(limit=300)))
    whole = _peak(lambda: _sink(e.model_dump(mode="json") for e in reg.iter_audit()))
    assert whole < 3 * small, (whole, small)


def test_usage_kept_as_calls_are_audited_equals_the_log(reg: Registry) -> None:
    _grow(reg, 10, entries=2000)
    # Counted by the audit table's trigger as the entries went in.
    assert reg.db.conn.execute("SELECT sum(calls) FROM usage_counts").fetchone()[0] == 2000
    stats = reg.usage()
    assert sorted(stats) == [f"tool_{i:05d}@1.0.0" for i in range(7)]
    for ref, got in stats.items():
        calls = [e for e in reg.audit(tool=ref, event="call")]
        ran = sorted(e.details["duration_ms"] for e in calls if "duration_ms" in e.details)
        assert got.calls == len(calls)
        assert got.successes == sum(e.details["status"] == "ok" for e in calls)
        assert got.refused == sum(e.details["status"] == "refused" for e in calls)
        assert got.median_ms == pytest.approx(statistics.median(ran))
        assert got.p95_ms == ran[max(math.ceil(0.95 * len(ran)) - 1, 0)]
        assert got.last_used == calls[-1].at
