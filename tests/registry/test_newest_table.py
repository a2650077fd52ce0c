"""The version each name resolves to, kept as data (migration m011, the
``newest`` table of registry/store_newest.py), and search reading it: the
table always agrees with the rule computed from every version
(`store_versions.newest_per_name`), whoever writes (the store, plain SQL,
an old file migrated), and search scores only FTS5's best matches in Python.
Real SQLite; no sandbox is involved (nothing is verified)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from toolcrib.registry.migrations import apply_migrations
from toolcrib.registry.search import rank
from toolcrib.registry.store import open_database, read_snapshot, write_transaction
from toolcrib.registry.store_newest import newest_id_rows, version_sort_key
from toolcrib.registry.store_versions import NEWEST, NEWEST_OR_YANKED, newest_per_name
from toolcrib.registry.versions import parse_version

from toolcrib import Registry

TOOL = 'def {name}(x: int) -> int:\n    """{about}"""\n    return x + {n}\n'


def _agrees(reg: Registry) -> None:
    conn = reg.db.conn
    for rule, include_yanked in ((NEWEST, False), (NEWEST_OR_YANKED, True)):
        expected = {name: vid for name, (vid, _v, _s) in newest_per_name(conn, rule).items()}
        assert dict(newest_id_rows(conn, include_yanked=include_yanked)) == expected
    # The search index holds exactly the live versions names resolve to.
    live = {vid for name, (vid, _v, _s) in newest_per_name(conn, NEWEST).items()}
    assert {vid for (vid,) in conn.execute("SELECT rowid FROM search_index")} == live


def test_sort_key_orders_as_semver_precedence() -> None:
    versions = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.10",
        "1.2.0",
        "1.10.0",
        "2.0.0-0",
        "2.0.0",
        "10.0.0",
    ]
    shuffled = random.Random(3).sample(versions, len(versions))
    assert sorted(shuffled, key=version_sort_key) == versions
    assert sorted(shuffled, key=lambda v: parse_version(v).key()) == versions


def test_the_table_follows_adds_yanks_and_plain_sql(reg: Registry) -> None:
    rnd = random.Random(21)
    versions = ["0.9.0", "1.0.0-rc.1", "1.0.0-rc.10", "1.0.0-rc.2", "1.0.0", "1.0.1", "1.10.0", "1.2.0", "2.0.0-beta"]
    for i in range(7):
        for n, version in enumerate(rnd.sample(versions, 5)):
            name = f"tool_{i}"
            reg.add(TOOL.format(name=name, about=f"Tool {i}.", n=n), version=version, as_new_version=True)
            _agrees(reg)
    for tool in rnd.sample(reg.list(), 4):
        reg.yank(tool.ref, "bad")
        _agrees(reg)
    # A name whose every version is yanked: only NEWEST_OR_YANKED has it.
    for tool in reg.history("tool_0"):
        if tool.yanked is None:
            reg.yank(tool.ref, "all gone")
    _agrees(reg)
    assert "tool_0" not in dict(newest_id_rows(reg.db.conn))
    # Plain SQL outside the store: a raw unyank and a row copied without its key.
    with write_transaction(reg.db.conn) as conn:
        conn.execute("UPDATE versions SET yanked = NULL WHERE name = 'tool_0'")
        conn.execute(
            "INSERT INTO versions (name, version, sha256, entrypoint, source, signature, tests, created_at, "
            "registered_by, registered_at, source_sha256) SELECT name, '9.0.0', 'f' || sha256, entrypoint, source, "
            "signature, tests, created_at, registered_by, registered_at, source_sha256 FROM versions "
            "WHERE name = 'tool_1' LIMIT 1"
        )
    _agrees(reg)
    assert reg.get("tool_1").version == "9.0.0"


def test_m011_builds_the_table_for_versions_stored_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = open_database(path)
    apply_migrations(db, stop_before="m011_scale")
    with write_transaction(db.conn) as conn:
        for name, version, yanked in [
            ("a", "1.0.0", None),
            ("a", "1.10.0", None),
            ("a", "1.9.0", None),
            ("a", "2.0.0", "bad"),
            ("b", "1.0.0-rc.2", None),
            ("b", "1.0.0-rc.10", None),
            ("c", "3.0.0", "gone"),
        ]:
            conn.execute(
                "INSERT INTO versions (name, version, sha256, entrypoint, source, signature, tests, created_at, "
                "registered_by, registered_at, source_sha256, yanked) VALUES (?, ?, ?, ?, '', '{}', '[]', 'now', "
                "'t', 'now', '', ?)",
                [name, version, f"{name}{version}", name, yanked],
            )
    db.close()
    with Registry(path) as reg:
        _agrees(reg)
        ids = dict(newest_id_rows(reg.db.conn, include_yanked=True))
        versions = {
            name: reg.db.conn.execute("SELECT version FROM versions WHERE id = ?", [vid]).fetchone()[0]
            for name, vid in ids.items()
        }
        assert versions == {"a": "1.10.0", "b": "1.0.0-rc.10", "c": "3.0.0"}


@pytest.fixture
def registry_backends() -> dict[str, object]:
    from toolcrib.sandbox.fake import FakeBackend

    return {"restricted": FakeBackend(name="restricted")}


def test_search_scores_only_the_best_bm25_matches(reg: Registry) -> None:
    for i in range(12):
        reg.add(TOOL.format(name=f"sort_{i}", about="Sort numbers.", n=i))
    for i in range(16):
        reg.add(TOOL.format(name=f"count_{i}", about="Count apples.", n=i))
    reg.add(TOOL.format(name="sort_words_by_length", about="Sort words by their length.", n=99))
    with read_snapshot(reg.db) as db:
        everything = rank(db, "sort words by length", verified_only=False)
        few = rank(db, "sort words by length", verified_only=False, pool=3)
    assert len(everything) == 13  # the sorters: "sort" is in fewer than half the tools
    assert len(few) == 3
    # The tool covering the whole query is first either way.
    assert everything[0].id == few[0].id
    assert reg.search("sort words by length")[0].name == "sort_words_by_length"
    # A word in more than half the tools ("count") retrieves nothing by
    # itself when the query has a rarer one, and everything when it has not.
    with read_snapshot(reg.db) as db:
        found = rank(db, "count sorted words", verified_only=False)
        assert found[0].matched == ("sorted", "words")
        assert len(found) == 13 and all({"sorted", "words"} & set(s.matched) for s in found)
        assert len(rank(db, "count apples", verified_only=False)) == 16
    # Old versions are not candidates: a newer version of a sorter is what is found.
    reg.add(TOOL.format(name="sort_3", about="Sort numbers fast.", n=100), as_new_version=True)
    hits = {h.name: h.version for h in reg.search("sort numbers", limit=50)}
    assert hits["sort_3"] == reg.get("sort_3").version != "1.0.0"
