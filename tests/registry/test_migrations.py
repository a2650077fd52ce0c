"""The schema is created and evolved by append-only sqlite-utils migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from toolcrib.registry import Registry
from toolcrib.registry.audit import append_entry
from toolcrib.registry.migrations import MIGRATIONS, apply_migrations, pending_migrations
from toolcrib.registry.store import open_database, utc_now, write_transaction
from toolcrib.registry.versions import sha256_text

SOURCE = 'def slugify(text: str) -> str:\n    """Turn a title into a URL slug."""\n    return text.lower().replace(" ", "-")\n'


def test_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db") as reg:
        assert pending_migrations(reg.db) == []
        names = [m.name for m in MIGRATIONS.applied(reg.db)]
        assert names == [m.name for m in MIGRATIONS._migrations]
        assert len(names) >= 2 and names[0] == "m001_core"
        tables = set(reg.db.table_names())
        assert {"versions", "verifications", "audit", "search_index"} <= tables
        # The first audit entry records the creation.
        first = reg.audit()[0]
        assert (first.seq, first.event) == (1, "init")
        assert first.details["migrations"] == names


def test_reopening_applies_nothing(tmp_path: Path) -> None:
    Registry(tmp_path / "r.db").close()
    with Registry(tmp_path / "r.db") as reg:
        assert apply_migrations(reg.db) == []
        assert [e.event for e in reg.audit()] == ["init"]


def _old_database(path: Path) -> None:
    """A registry as the first release left it: only m001 applied, one tool, one audit entry."""
    db = open_database(path)
    MIGRATIONS.apply(db, stop_before="m002_search_index")
    assert pending_migrations(db)[0] == "m002_search_index"
    now = utc_now()
    with write_transaction(db):
        db["versions"].insert(
            {
                "name": "slugify",
                "version": "1.0.0",
                "sha256": "ab" * 32,
                "entrypoint": "slugify",
                "source": SOURCE,
                "signature": '{"description":"Turn a title into a URL slug.","input_schema":{"type":"object"},'
                '"output_schema":null,"untyped":[]}',
                "tests": "[]",
                "limits": None,
                "description": "Turn a title into a URL slug.",
                "status": "unverified",
                "created_at": now,
                "registered_by": "old-release",
                "registered_at": now,
                "source_sha256": sha256_text(SOURCE),
                "metadata": '{"team":"web"}',
            }
        )
        append_entry(db, actor="old-release", event="add", tool="slugify@1.0.0", details={"sha256": "ab" * 32})
    db.close()


def test_older_database_is_migrated_with_data_intact(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_database(path)
    with Registry(path, actor="new-release") as reg:
        assert pending_migrations(reg.db) == []
        tool = reg.get("slugify")
        assert tool.ref == "slugify@1.0.0"
        assert tool.source == SOURCE
        assert tool.provenance.registered_by == "old-release"
        assert tool.provenance.metadata == {"team": "web"}
        # m002's index covers rows that existed before it ran.
        assert [t.ref for t in reg.search("URL slug")] == ["slugify@1.0.0"]
        # No "init" entry is invented for an existing registry; the old chain still verifies.
        assert [e.event for e in reg.audit()] == ["add"]
        assert reg.audit_verify().ok


def test_stop_before_an_applied_migration_is_refused(tmp_path: Path) -> None:
    Registry(tmp_path / "r.db").close()
    db = open_database(tmp_path / "r.db")
    try:
        with pytest.raises(ValueError, match="already"):
            MIGRATIONS.apply(db, stop_before="m002_search_index")
    finally:
        db.close()


def test_audit_table_refuses_update_and_delete(tmp_path: Path) -> None:
    Registry(tmp_path / "r.db").close()
    conn = sqlite3.connect(tmp_path / "r.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit SET actor = 'mallory'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit")
        assert conn.execute("SELECT actor FROM audit").fetchall() != [("mallory",)]
    finally:
        conn.close()


def test_migration_functions_are_named_in_order() -> None:
    names = [m.name for m in MIGRATIONS._migrations]
    assert names == sorted(names)
    assert all(n[0] == "m" and n[1:4].isdigit() and n[4] == "_" for n in names)


def test_m003_gives_old_versions_the_default_policy_and_old_evidence_no_layers(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = open_database(path)
    MIGRATIONS.apply(db, stop_before="m003_version_policy")
    now = utc_now()
    with write_transaction(db):
        db["versions"].insert(
            {
                "name": "slugify",
                "version": "1.0.0",
                "sha256": "ab" * 32,
                "entrypoint": "slugify",
                "source": SOURCE,
                "tests": "[]",
                "limits": None,
                "status": "verified",
                "signature": '{"description":null,"input_schema":{"type":"object"},"output_schema":null,"untyped":[]}',
                "created_at": now,
                "registered_by": "old",
                "registered_at": now,
                "source_sha256": sha256_text(SOURCE),
                "metadata": "{}",
            }
        )
        db["verifications"].insert(
            {
                "version_id": 1,
                "sha256": "ab" * 32,
                "status": "verified",
                "backend": "restricted",
                "passed": 0,
                "failed": 0,
                "cases": "[]",
                "limits": "{}",
                "verified_at": now,
            }
        )
    db.close()
    with Registry(path) as reg:
        assert "m003_version_policy" in [m.name for m in MIGRATIONS.applied(reg.db)]
        tool = reg.get("slugify")
        assert tool.policy == "restricted"
        assert tool.sha256 == "ab" * 32
        evidence = reg.verification("slugify")
        assert evidence is not None and evidence.layers == [] and evidence.policy is None
        # The column refuses a policy nobody knows.
        with pytest.raises(sqlite3.IntegrityError):
            reg.db.execute("UPDATE versions SET policy = 'loose'")
