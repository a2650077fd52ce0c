"""The store's ``audit`` table: the hash-chained log's rows, as stored.
What an entry holds and how it is hashed is registry/audit.py's; this module
only reads and writes rows. Plain sqlite3: every call appends one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = [
    "AUDIT_COLUMNS",
    "audit_count",
    "audit_head",
    "audit_rows",
    "audit_row",
    "call_rows",
    "insert_audit_row",
    "insert_tree_nodes",
    "select_audit_rows",
    "SINCE_INDEX_THRESHOLD",
    "audit_stream",
    "tree_node",
]

AUDIT_COLUMNS = "seq, at, actor, event, tool, details, prev_hash, entry_hash"


def audit_head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """(seq, entry_hash) of the newest entry, None for an empty log."""
    last = conn.execute("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return None if last is None else (int(last[0]), str(last[1]))


def insert_audit_row(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """One row, in AUDIT_COLUMNS order. Inside the caller's write transaction."""
    conn.execute(f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(row))


def select_audit_rows(
    conn: sqlite3.Connection,
    *,
    tool: str | None = None,
    event: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[tuple[Any, ...]]:
    """`audit_stream`'s rows, held in a list."""
    return [tuple(row) for row in audit_stream(conn, tool=tool, event=event, since=since, limit=limit)]


# Below this many entries at or after `since`, `audit --since` reads them
# through the time index and keeps the newest; at or above it, it walks the
# log back from its end (a limit is then reached long before the start).
SINCE_INDEX_THRESHOLD = 5000


def audit_stream(
    conn: sqlite3.Connection,
    *,
    tool: str | None = None,
    event: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Rows (AUDIT_COLUMNS order) matching every given filter, oldest first,
    streamed; `limit` keeps the newest N (held: at most N rows). `tool` is
    a name (every version) or name@version; `since` in the log's UTC text
    form (string order is time order)."""
    where: list[str] = []
    params: list[Any] = []
    if tool is not None:
        if "@" in tool:
            where.append("tool = ?")
            params.append(tool)
        else:
            # substr rather than LIKE: '_' is common in tool names and a LIKE wildcard.
            where.append("(tool = ? OR substr(tool, 1, ?) = ?)")
            params += [tool, len(tool) + 1, tool + "@"]
    if event is not None:
        where.append("event = ?")
        params.append(event)
    source = "audit"
    if since is not None:
        few = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM audit WHERE at >= ? LIMIT ?)", [since, SINCE_INDEX_THRESHOLD]
        ).fetchone()[0]
        # Few entries since then: the index on time finds them (SQLite's
        # planner, with no statistics, would rather walk the whole log by
        # seq to skip a sort). Many: reading by seq (back from the end, for a
        # limit) needs no sort and stops sooner.
        if few < SINCE_INDEX_THRESHOLD:
            source = "audit INDEXED BY audit_at"
        where.append("at >= ?")
        params.append(since)
    sql = f"SELECT {AUDIT_COLUMNS} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if limit is None:
        yield from conn.execute(sql + " ORDER BY seq", params)
        return
    newest = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit]).fetchall()
    yield from reversed(newest)


def audit_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])


def audit_rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    """Every row in seq order, streamed (the chain check reads the whole log)."""
    yield from conn.execute(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq")


def call_rows(conn: sqlite3.Connection, tools: list[str] | None) -> Iterator[tuple[Any, ...]]:
    """(tool, at, details) of every call entry, in seq order; only those of
    `tools` (name@version references) when given."""
    sql = "SELECT tool, at, details FROM audit WHERE event = 'call'"
    params: list[Any] = []
    if tools is not None:
        sql += f" AND tool IN ({', '.join('?' for _ in tools)})"
        params = list(tools)
    yield from conn.execute(sql + " ORDER BY seq", params)


def audit_row(conn: sqlite3.Connection, seq: int) -> tuple[Any, ...] | None:
    """One entry's row (AUDIT_COLUMNS order), None if there is none."""
    row = conn.execute(f"SELECT {AUDIT_COLUMNS} FROM audit WHERE seq = ?", [seq]).fetchone()
    return None if row is None else tuple(row)


# -- the Merkle tree over the log (migration m010_audit_tree, registry/audit_tree.py) --


def insert_tree_nodes(conn: sqlite3.Connection, nodes: list[tuple[int, int, bytes]]) -> None:
    """(level, index, hash) of perfect subtrees of two leaves or more, new
    ones only. Inside the caller's write transaction (the append's own)."""
    if len(nodes) == 1:  # an append's usual case: execute costs half of executemany
        conn.execute("INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)", nodes[0])
    else:
        conn.executemany("INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)", nodes)


def tree_node(conn: sqlite3.Connection, level: int, index: int) -> bytes | None:
    """The hash of one perfect subtree, None if the tree has no such node."""
    row = conn.execute("SELECT hash FROM audit_tree WHERE level = ? AND idx = ?", [level, index]).fetchone()
    return None if row is None else bytes(row[0])
