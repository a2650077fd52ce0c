"""The store's ``newest`` table (migration m011): the version each name
resolves to, kept as data instead of recomputed from every version on every
search and listing.

Per name one row: ``id`` is the version NAME resolves to (the highest live
version, `store_versions.NEWEST`), or, for a name whose every version is
yanked, its highest yanked one with ``live = 0`` (`NEWEST_OR_YANKED`).

Precedence is semver's, which SQL cannot compute, so each version carries a
``sort_key`` text written by Python when it is stored (`version_sort_key`:
text order is semver precedence). Triggers keep ``newest`` right on every
insert, yank, rename or delete, from any connection: a row written without a
``sort_key`` (plain SQL outside the store) gets one computed in SQL from its
MAJOR.MINOR.PATCH, exact for releases, with its prerelease identifiers left
out (it then sorts below any stored prerelease of the same core).

The search index (``search_index``, FTS5) holds only these versions, the
live ones: triggers on ``newest`` add and remove its rows, so search ranks
among the versions names resolve to without reading any other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from .versions import SemVer, parse_version

__all__ = [
    "NEWEST_TRIGGERS",
    "SEARCH_PRUNE",
    "SEARCH_TRIGGERS",
    "backfill_sort_keys",
    "newest_id_rows",
    "rebuild_newest",
    "version_sort_key",
]

_WIDTH = 20  # digits per number: SQLite's integers have at most 19


def _number(n: int) -> str:
    return f"{min(n, 10**_WIDTH - 1):0{_WIDTH}d}"


def version_sort_key(version: str | SemVer) -> str:
    """Text whose order is semver precedence: MAJOR.MINOR.PATCH zero-padded,
    then ``~`` for a release (after every prerelease of the same core) or
    ``-`` and each prerelease identifier (numeric ones padded behind ``0``,
    before alphanumeric ones behind ``1``; a space between identifiers, so a
    shorter list of equal identifiers sorts first)."""
    v = version if isinstance(version, SemVer) else parse_version(version)
    core = f"{_number(v.major)}.{_number(v.minor)}.{_number(v.patch)}"
    if not v.prerelease:
        return core + "~"
    parts = ["0" + _number(int(p)) if p.isdigit() else "1" + p for p in v.prerelease]
    return core + "-" + " ".join(parts)


def _sql_key(column: str) -> str:
    """SQL for `version_sort_key` of a release from a version column (the
    fallback for rows stored without a key; see the module's doc)."""
    rest = f"substr({column}, instr({column}, '.') + 1)"
    patch = f"substr({rest}, instr({rest}, '.') + 1)"
    fmt = ".".join([f"%0{_WIDTH}d"] * 3)
    return (
        f"printf('{fmt}', CAST({column} AS INTEGER), CAST({rest} AS INTEGER), CAST({patch} AS INTEGER)) "
        f"|| CASE WHEN instr({column}, '-') > 0 THEN '-' ELSE '~' END"
    )


def _refresh(name: str) -> str:
    """Statements (for a trigger body) that recompute the newest row of one name."""
    return (
        f"DELETE FROM newest WHERE name = {name}; "
        f"INSERT INTO newest (name, id, live) SELECT name, id, yanked IS NULL FROM versions "
        f"WHERE name = {name} ORDER BY yanked IS NULL DESC, sort_key DESC, id LIMIT 1;"
    )


# The triggers of m011 (created there; kept here beside the SQL they run).
NEWEST_TRIGGERS: tuple[str, ...] = (
    "CREATE TRIGGER newest_ai AFTER INSERT ON versions BEGIN "
    f"UPDATE versions SET sort_key = {_sql_key('new.version')} WHERE id = new.id AND sort_key IS NULL; "
    f"{_refresh('new.name')} END",
    "CREATE TRIGGER newest_au AFTER UPDATE OF name, version, yanked ON versions BEGIN "
    f"UPDATE versions SET sort_key = {_sql_key('new.version')} "
    "WHERE id = new.id AND new.version IS NOT old.version; "
    f"{_refresh('old.name')} {_refresh('new.name')} END",
    f"CREATE TRIGGER newest_ad AFTER DELETE ON versions BEGIN {_refresh('old.name')} END",
)


_FIELDS = (
    "coalesce(json_extract(v.search_terms, '$.name'), v.name || ' ' || v.entrypoint), "
    "coalesce(json_extract(v.search_terms, '$.about'), v.description, ''), "
    "coalesce(json_extract(v.search_terms, '$.params'), v.signature), "
    "coalesce(json_extract(v.search_terms, '$.examples'), v.tests)"
)


def _index(version_id: str) -> str:
    return (
        f"INSERT INTO search_index (rowid, name, about, params, examples) SELECT v.id, {_FIELDS} "
        f"FROM versions v WHERE v.id = {version_id};"
    )


# m011's search index holds only the versions names resolve to (m004's held
# every version): it follows the newest table, and a change to an indexed
# column of a version that is some name's newest. The fields are m004's.
SEARCH_TRIGGERS: tuple[str, ...] = (
    f"CREATE TRIGGER search_newest_ai AFTER INSERT ON newest WHEN new.live = 1 BEGIN {_index('new.id')} END",
    "CREATE TRIGGER search_newest_ad AFTER DELETE ON newest WHEN old.live = 1 BEGIN "
    "DELETE FROM search_index WHERE rowid = old.id; END",
    "CREATE TRIGGER search_versions_au AFTER UPDATE OF name, entrypoint, description, signature, tests, "
    "search_terms ON versions WHEN EXISTS (SELECT 1 FROM newest WHERE id = new.id AND live = 1) BEGIN "
    f"DELETE FROM search_index WHERE rowid = old.id; {_index('new.id')} END",
)
# What the index held before m011 beyond that, and the triggers that kept it.
SEARCH_PRUNE: tuple[str, ...] = (
    "DROP TRIGGER IF EXISTS search_index_ai",
    "DROP TRIGGER IF EXISTS search_index_au",
    "DROP TRIGGER IF EXISTS search_index_ad",
    "DELETE FROM search_index WHERE rowid NOT IN (SELECT id FROM newest WHERE live = 1)",
    "INSERT INTO search_index (search_index) VALUES ('optimize')",
)


def backfill_sort_keys(conn: sqlite3.Connection) -> int:
    """Give every version its Python `sort_key` (the migration, and a bulk
    load that wrote rows without one); returns how many rows changed."""
    changed = 0
    keys: dict[str, str] = {}
    rows = conn.execute("SELECT id, version, sort_key FROM versions").fetchall()
    for vid, version, current in rows:
        if version not in keys:
            keys[version] = version_sort_key(version)
        if current != keys[version]:
            conn.execute("UPDATE versions SET sort_key = ? WHERE id = ?", [keys[version], vid])
            changed += 1
    return changed


def rebuild_newest(conn: sqlite3.Connection) -> None:
    """Recompute the whole ``newest`` table from the versions (the migration,
    and a bulk load). Inside the caller's write transaction."""
    conn.execute("DELETE FROM newest")
    conn.execute(
        "INSERT INTO newest (name, id, live) SELECT name, id, live FROM ("
        "SELECT name, id, yanked IS NULL AS live, row_number() OVER ("
        "PARTITION BY name ORDER BY yanked IS NULL DESC, sort_key DESC, id) AS rn FROM versions"
        ") WHERE rn = 1"
    )


def newest_id_rows(conn: sqlite3.Connection, *, include_yanked: bool = False) -> Iterator[tuple[str, int]]:
    """(name, id) of the version each name resolves to, by name."""
    where = "" if include_yanked else " WHERE live = 1"
    yield from conn.execute(f"SELECT name, id FROM newest{where} ORDER BY name")
