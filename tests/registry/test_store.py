"""Where the registry lives and how its file is opened and written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from toolcrib.registry import NotFound, Registry
from toolcrib.registry.store import default_registry_path, open_database, write_transaction


def test_default_path_prefers_toolcrib_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOOLCRIB_REGISTRY", str(tmp_path / "explicit.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_registry_path() == tmp_path / "explicit.db"


def test_default_path_uses_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TOOLCRIB_REGISTRY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_registry_path() == tmp_path / "xdg" / "toolcrib" / "registry.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_registry_path() == tmp_path / "home" / ".local" / "share" / "toolcrib" / "registry.db"


def test_registry_without_path_uses_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "reg.db"
    monkeypatch.setenv("TOOLCRIB_REGISTRY", str(target))
    with Registry() as reg:
        assert reg.path == target
    assert target.exists()


def test_missing_registry_with_create_false(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    with pytest.raises(NotFound, match=r"no registry at .*none\.db \(run 'toolcrib init'\)") as info:
        Registry(path, create=False)
    assert info.value.exit_code == 3
    assert not path.exists()


def test_open_sets_wal_and_busy_timeout(tmp_path: Path) -> None:
    db = open_database(tmp_path / "r.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
        assert db.conn.isolation_level is None
    finally:
        db.close()


def test_write_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    db = open_database(tmp_path / "r.db")
    try:
        db.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(RuntimeError, match="boom"):
            with write_transaction(db):
                db.execute("INSERT INTO t VALUES (1)")
                db["t"].insert({"x": 2})  # sqlite-utils nests as a savepoint
                raise RuntimeError("boom")
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        with write_transaction(db):
            db.execute("INSERT INTO t VALUES (1)")
            db["t"].insert({"x": 2})
        assert not db.conn.in_transaction
        # A second connection sees the committed rows.
        other = sqlite3.connect(tmp_path / "r.db")
        assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 2
        other.close()
    finally:
        db.close()


def test_write_transaction_holds_the_write_lock(tmp_path: Path) -> None:
    db = open_database(tmp_path / "r.db")
    other = sqlite3.connect(tmp_path / "r.db", timeout=0, isolation_level=None)
    try:
        db.execute("CREATE TABLE t (x INTEGER)")
        with write_transaction(db):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        db.close()


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    from toolcrib.registry import InvalidInput

    path = tmp_path / "notes.txt"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(InvalidInput, match="not a toolcrib registry"):
        Registry(path)
    assert path.read_text().startswith("these are not")


def test_read_snapshot_does_not_see_later_commits(tmp_path: Path) -> None:
    from toolcrib.registry.store import read_snapshot

    db = open_database(tmp_path / "r.db")
    writer = open_database(tmp_path / "r.db")
    try:
        db.execute("CREATE TABLE t (x INTEGER)")
        with read_snapshot(db):
            assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
            with write_transaction(writer):  # WAL: the writer is not blocked by the reader
                writer.execute("INSERT INTO t VALUES (1)")
            assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        assert not db.conn.in_transaction
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    finally:
        writer.close()
        db.close()
