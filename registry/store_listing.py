"""The store's streaming reads (issue 21): one page of the versions names
resolve to (the ``newest`` table joined with ``versions``), every version in
name order, and the audit log's rows, each as a cursor read row by row, so
a listing of 100,000 tools or an export of everything is written as it is
read, in constant memory. What a row means is registry/listing.py's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from .store_audit import SINCE_INDEX_THRESHOLD, audit_stream
from .store_versions import VERSION_COLUMNS

__all__ = ["SINCE_INDEX_THRESHOLD", "audit_stream", "newest_page", "versions_of_names", "versions_stream"]

_V_COLUMNS = ", ".join(f"v.{c.strip()}" for c in VERSION_COLUMNS.split(","))


def newest_page(
    conn: sqlite3.Connection,
    *,
    include_yanked: bool = False,
    status: str | None = None,
    name_glob: str | None = None,
    after: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[tuple[Any, ...]]:
    """Whole rows (VERSION_COLUMNS order) of the version each name resolves
    to, by name: only names matching `name_glob` (SQLite GLOB: ``*``, ``?``,
    ``[...]``, case-sensitive), whose version has `status`, after the name
    `after` (a cursor); `offset` rows skipped, at most `limit`."""
    where: list[str] = []
    params: list[Any] = []
    if not include_yanked:
        # Unary +: not through the newest_live index. With it, SQLite read
        # every live name's whole row and sorted them all for a page of 20
        # (164 ms at 100,000 versions); walking the names in order (the
        # primary key) and stopping at the page's end takes 0.1 ms.
        where.append("+n.live = 1")
    if status is not None:
        where.append("v.status = ?")
        params.append(status)
    if name_glob is not None:
        where.append("n.name GLOB ?")
        params.append(name_glob)
    if after is not None:
        where.append("n.name > ?")
        params.append(after)
    sql = f"SELECT {_V_COLUMNS} FROM newest n JOIN versions v ON v.id = n.id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY n.name LIMIT ? OFFSET ?"
    params += [-1 if limit is None else limit, offset]
    yield from conn.execute(sql, params)


def versions_stream(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    """Whole rows of every version, by name (a name's versions together, in
    stored precedence order; the caller sorts each name's few exactly).
    Name by name through the newest table (every name has its row there)
    and the (name, version) index: no sort of the whole table, whose rows
    SQLite would otherwise hold to order them."""
    names = conn.execute("SELECT name FROM newest ORDER BY name")
    for (name,) in names:
        yield from conn.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE name = ? ORDER BY sort_key, id", [name])


def versions_of_names(conn: sqlite3.Connection, names: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Whole rows of every version of each name, name by name in the order given."""
    for name in names:
        yield from conn.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE name = ? ORDER BY sort_key, id", [name])
