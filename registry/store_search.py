"""The store's full-text index (``search_index``, FTS5, migrations m002 and
m004): which versions a word matches, and SQLite's bm25 relevance of each.
How words are ranked is registry/search.py's."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["bm25_scores", "ids_matching"]


def ids_matching(conn: sqlite3.Connection, word: str) -> set[int]:
    """The version ids whose index holds `word` (one alphanumeric term: it is
    quoted, so no FTS5 syntax can get in)."""
    found = conn.execute("SELECT rowid FROM search_index WHERE search_index MATCH ?", [f'"{word}"']).fetchall()
    return {int(vid) for (vid,) in found}


def bm25_scores(conn: sqlite3.Connection, words: Sequence[str], weights: Sequence[float]) -> dict[int, float]:
    """id -> bm25 (SQLite's sign: lower is better) of each version matching
    any of `words`, with one weight per indexed column."""
    rows = conn.execute(
        "SELECT rowid, bm25(search_index, ?, ?, ?, ?) FROM search_index WHERE search_index MATCH ?",
        [*weights, " OR ".join(f'"{w}"' for w in words)],
    ).fetchall()
    return {int(vid): float(value) for vid, value in rows}
