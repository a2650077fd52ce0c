"""The hash-chained audit log: entries, filters, and tamper detection."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from toolcrib.registry import InvalidInput, PolicyRefused, Registry
from toolcrib.registry.audit import GENESIS_HASH, cap_value, entry_hash
from toolcrib.registry.versions import canonical_json, sha256_text

ADD = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return a + b\n'
MUL = 'def mul(a: int, b: int) -> int:\n    """Multiply two integers."""\n    return a * b\n'
ADD2 = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return b + a\n'


@pytest.fixture
def registry_actor() -> str:
    """The shared `reg` records "alice" as the actor of everything below."""
    return "alice"


@pytest.fixture
def reg(reg: Registry) -> Registry:
    """The shared registry, with three versions added and one yanked."""
    reg.add(ADD)
    reg.add(MUL)
    reg.add(ADD2)
    reg.yank("add@1.0.0", "wrong order")
    return reg


def _raw(reg: Registry) -> sqlite3.Connection:
    return sqlite3.connect(reg.path)


def test_every_mutation_is_one_chained_entry(reg: Registry) -> None:
    entries = reg.audit()
    assert [(e.seq, e.event, e.tool) for e in entries] == [
        (1, "init", None),
        (2, "add", "add@1.0.0"),
        (3, "add", "mul@1.0.0"),
        (4, "add", "add@1.0.1"),
        (5, "yank", "add@1.0.0"),
    ]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in zip(entries, entries[1:]):
        assert after.prev_hash == before.entry_hash
    for e in entries:
        assert e.actor == "alice"
        body = e.model_dump()
        del body["entry_hash"]
        assert e.entry_hash == sha256_text(e.prev_hash + canonical_json(body))
        assert e.entry_hash == entry_hash(body)
        assert e.at.endswith("Z") and len(e.at) == len("2026-01-01T00:00:00.000000Z")
    assert entries[4].details == {"yanked": "wrong order"}
    report = reg.audit_verify()
    assert (report.ok, report.entries, report.first_bad, report.problem) == (True, 5, None, None)


def test_identical_re_add_writes_no_entry(reg: Registry) -> None:
    before = len(reg.audit())
    assert reg.add(MUL).created is False
    assert len(reg.audit()) == before


def test_filters(reg: Registry) -> None:
    assert [e.seq for e in reg.audit(tool="add")] == [2, 4, 5]
    assert [e.seq for e in reg.audit(tool="add@1.0.0")] == [2, 5]
    assert [e.seq for e in reg.audit(event="add")] == [2, 3, 4]
    assert [e.seq for e in reg.audit(tool="add", event="add")] == [2, 4]
    assert [e.seq for e in reg.audit(limit=2)] == [4, 5]
    assert reg.audit(limit=0) == []
    assert reg.audit(tool="ad") == []
    cut = reg.audit()[3].at
    assert [e.seq for e in reg.audit(since=cut)] == [4, 5]
    assert [e.seq for e in reg.audit(since="2000-01-01")] == [1, 2, 3, 4, 5]
    assert reg.audit(since="2999-01-01T00:00:00+02:00") == []
    with pytest.raises(InvalidInput, match="invalid time"):
        reg.audit(since="yesterday")


def test_tool_filter_is_not_a_like_pattern(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db") as reg:
        reg.add(ADD, name="a_b")
        reg.add(ADD, name="axb")
        assert [e.tool for e in reg.audit(tool="a_b")] == ["a_b@1.0.0"]


def test_refused_calls_are_audited(reg: Registry) -> None:
    with pytest.raises(PolicyRefused, match="unverified"):
        reg.call("mul", {"a": 2, "b": 3})
    with pytest.raises(PolicyRefused, match="yanked"):
        reg.call("add@1.0.0", {"a": 2, "b": 3}, allow_unverified=True)
    with pytest.raises(InvalidInput):
        reg.call("mul", {"a": 2, "b": 3}, limits={"bogus": 1}, allow_unverified=True)
    calls = reg.audit(event="call")
    assert [(e.tool, e.details["status"]) for e in calls] == [
        ("mul@1.0.0", "refused"),
        ("add@1.0.0", "refused"),
        ("mul@1.0.0", "invalid"),
    ]
    first = calls[0].details
    assert first["args_sha256"] == sha256_text(canonical_json({"a": 2, "b": 3}))
    assert first["arguments"] == {"a": 2, "b": 3}
    assert "toolcrib verify mul@1.0.0" in first["reason"]
    assert reg.audit_verify().ok


def test_cap_value() -> None:
    assert cap_value({"a": 1}) == {"a": 1}
    big = {"text": "x" * 5000}
    capped = cap_value(big)
    assert capped["$truncated"] is True
    assert capped["bytes"] == len(canonical_json(big))
    assert len(capped["prefix"].encode()) <= 2048
    assert canonical_json(big).startswith(capped["prefix"])
    # Multi-byte characters are never split.
    capped = cap_value("é" * 3000)
    assert capped["prefix"] == '"' + "é" * 1023


def test_tampered_details_are_caught(reg: Registry) -> None:
    conn = _raw(reg)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET details = ? WHERE seq = 3", [json.dumps({"sha256": "0" * 64})])
    conn.commit()
    conn.close()
    report = reg.audit_verify()
    assert (report.ok, report.first_bad) == (False, 3)
    assert "hash mismatch" in report.problem


def test_tampered_and_rehashed_entry_breaks_the_next_link(reg: Registry) -> None:
    entry = reg.audit()[2].model_dump()
    entry["actor"] = "mallory"
    del entry["entry_hash"]
    conn = _raw(reg)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'mallory', entry_hash = ? WHERE seq = 3", [entry_hash(entry)])
    conn.commit()
    conn.close()
    report = reg.audit_verify()
    assert (report.ok, report.first_bad) == (False, 4)
    assert "broken link" in report.problem


def test_deleted_middle_entry_is_caught(reg: Registry) -> None:
    conn = _raw(reg)
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit WHERE seq = 3")
    conn.commit()
    conn.close()
    report = reg.audit_verify()
    assert (report.ok, report.first_bad, report.entries) == (False, 4, 4)
    assert "gap in seq" in report.problem


def test_forged_appended_entry_is_caught(reg: Registry) -> None:
    forged = {
        "seq": 6,
        "at": "2030-01-01T00:00:00.000000Z",
        "actor": "mallory",
        "event": "add",
        "tool": "evil@1.0.0",
        "details": {},
        "prev_hash": "f" * 64,
    }
    conn = _raw(reg)
    conn.execute(
        "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [6, forged["at"], "mallory", "add", "evil@1.0.0", "{}", forged["prev_hash"], entry_hash(forged)],
    )
    conn.commit()
    conn.close()
    report = reg.audit_verify()
    assert (report.ok, report.first_bad, report.entries) == (False, 6, 6)
    assert "broken link" in report.problem


def test_appends_continue_the_chain_after_reopen(reg: Registry, tmp_path: Path) -> None:
    reg.close()
    with Registry(tmp_path / "r.db", actor="bob") as again:
        again.deprecate("mul", "use numpy")
        last = again.audit()[-1]
        assert (last.seq, last.actor, last.event) == (6, "bob", "deprecate")
        assert again.audit_verify().ok


# -- whatever a tool returned, the entry is written (issue 7) -------------------------


def test_an_entry_with_lone_surrogates_is_written_and_verifies(reg: Registry) -> None:
    from toolcrib.registry.audit import append_entry
    from toolcrib.registry.store import write_transaction

    with write_transaction(reg.db):
        entry = append_entry(
            reg.db, actor="alice", event="call", tool="add@1.0.1", details={"result": "x\ud800", "k\udfff": ["\udc80"]}
        )
    assert entry.details == {"result": "x\ufffd", "k\ufffd": ["\ufffd"]}
    stored = reg.audit(event="call")[-1]
    assert stored.details == entry.details and stored.entry_hash == entry.entry_hash
    assert reg.audit_verify().ok


def test_details_that_are_not_json_still_leave_an_entry(reg: Registry) -> None:
    from toolcrib.registry.audit import append_entry
    from toolcrib.registry.store import write_transaction

    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    before = len(reg.audit())
    with write_transaction(reg.db):
        append_entry(reg.db, actor="alice", event="call", tool="add@1.0.1", details={"bad": {1, 2}})
        append_entry(reg.db, actor="alice", event="call", tool="add@1.0.1", details={"deep": deep})
    entries = reg.audit()
    assert len(entries) == before + 2
    assert all("unrecordable_details" in e.details for e in entries[-2:])
    assert reg.audit_verify().ok


def test_cap_value_makes_surrogates_safe_and_survives_anything() -> None:
    assert cap_value({"a": "\ud800"}) == {"a": "\ufffd"}
    capped = cap_value("\ud800" * 5000, 100)
    assert capped["$truncated"] is True and "\ud800" not in capped["prefix"]
    canonical_json(capped).encode("utf-8")
    assert cap_value({1, 2})["$truncated"] is True
