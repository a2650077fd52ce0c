"""The store's full-text index (``search_index``, FTS5, migrations m002 and
m004; since m011 it holds only the versions names resolve to, see
store_newest.py): which versions a word matches, and SQLite's bm25
relevance of each. How words are ranked is
registry/search.py's."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["candidate_count", "ids_matching", "newest_matching_count", "top_by_bm25"]


def _quoted(word: str) -> str:
    """One alphanumeric term, quoted: no FTS5 syntax can get in."""
    return f'"{word}"'


def ids_matching(conn: sqlite3.Connection, word: str) -> set[int]:
    """The version ids whose index holds `word` (one alphanumeric term)."""
    rows = conn.execute("SELECT rowid FROM search_index WHERE search_index MATCH ?", [_quoted(word)])
    return {int(vid) for (vid,) in rows}


def _newest_join(verified_only: bool) -> str:
    """The index holds only the versions names resolve to (m011); the
    verified ones among them are the versions table's to say."""
    return "JOIN versions v ON v.id = s.rowid AND v.status = 'verified'" if verified_only else ""


def top_by_bm25(
    conn: sqlite3.Connection, words: Sequence[str], weights: Sequence[float], *, limit: int, verified_only: bool
) -> list[tuple[int, float]]:
    """(id, bm25 in SQLite's sign: lower is better) of the `limit` versions
    that names resolve to (verified ones, when asked) matching any of
    `words`, best bm25 first: FTS5 ranks, only these reach Python."""
    rows = conn.execute(
        f"SELECT s.rowid, bm25(search_index, ?, ?, ?, ?) AS r FROM search_index s {_newest_join(verified_only)} "
        "WHERE search_index MATCH ? ORDER BY r, s.rowid LIMIT ?",
        [*weights, " OR ".join(_quoted(w) for w in words), limit],
    ).fetchall()
    return [(int(vid), float(value)) for vid, value in rows]


def newest_matching_count(conn: sqlite3.Connection, word: str, *, verified_only: bool) -> int:
    """How many versions that names resolve to (verified ones, when asked) hold `word`."""
    row = conn.execute(
        f"SELECT count(*) FROM search_index s {_newest_join(verified_only)} WHERE search_index MATCH ?",
        [_quoted(word)],
    ).fetchone()
    return int(row[0])


def candidate_count(conn: sqlite3.Connection, *, verified_only: bool) -> int:
    """How many versions names resolve to (verified ones, when asked)."""
    sql = "SELECT count(*) FROM newest n"
    if verified_only:
        sql += " JOIN versions v ON v.id = n.id AND v.status = 'verified'"
    row = conn.execute(sql + " WHERE n.live = 1").fetchone()
    return int(row[0])
