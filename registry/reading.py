"""Reading versions: resolve a reference, the version each name resolves to,
one tool's history, and the tools a bundle exports.

Each function reads through the store (`store_versions`) on the caller's
connection; the caller chooses the snapshot (`store.read_snapshot`) when a
read takes more than one statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .admission import check_name
from .choosing import resolve
from .models import ToolVersion
from .records import tool_of, version_of_row
from .store_newest import newest_id_rows
from .store_versions import full_rows, tool_names, version_rows
from .suggest import no_tool_named

__all__ = ["exported_tools", "history", "newest_ids", "newest_tools", "resolve", "resolved_refs", "tools_by_ids"]


def resolved_refs(conn: sqlite3.Connection, refs: Iterable[str] | None) -> list[str] | None:
    """Each reference as the NAME@VERSION it resolves to (None stays None: every version)."""
    return None if refs is None else [resolve(conn, r).ref for r in refs]


def newest_ids(conn: sqlite3.Connection, *, include_yanked: bool = False) -> dict[str, int]:
    """name -> id of the version NAME resolves to (or, with include_yanked, the
    newest yanked one for tools with nothing else)."""
    return dict(newest_id_rows(conn, include_yanked=include_yanked))


def tools_by_ids(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, ToolVersion]:
    """id -> the full version, for each id given."""
    ids = list(ids)
    if not ids:
        return {}
    return {vid: version_of_row(row) for vid, row in full_rows(conn, ids).items()}


def newest_tools(conn: sqlite3.Connection, *, include_yanked: bool = False) -> list[ToolVersion]:
    """The version every name resolves to, by name (see `Registry.list`)."""
    newest = newest_ids(conn, include_yanked=include_yanked)
    tools = tools_by_ids(conn, newest.values())
    return [tools[newest[name]] for name in sorted(newest)]


def history(conn: sqlite3.Connection, name: str) -> list[ToolVersion]:
    """Every version of one tool, oldest first; NotFound if there is none."""
    check_name(name)
    rows = version_rows(conn, name)
    if not rows:
        raise no_tool_named(conn, name)
    return [tool_of(r) for r in rows]


def exported_tools(conn: sqlite3.Connection, refs: Iterable[str] | None) -> list[ToolVersion]:
    """Every version (yanked included) of each tool a reference names, or of
    every tool: what a bundle holds. A reference's version or digest just has
    to exist."""
    if refs is None:
        names = tool_names(conn)
    else:
        names = []
        for ref in refs:
            name = resolve(conn, ref, allow_yanked=True).name
            if name not in names:
                names.append(name)
    return [tool for name in names for tool in history(conn, name)]
