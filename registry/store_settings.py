"""The store's ``settings`` table (migration m005_latm): one value per key,
with who set it and when. Plain sqlite3, so a call (which reads the limit
maxima) loads nothing more."""

from __future__ import annotations

import sqlite3
from typing import Any

from .store import utc_now

__all__ = ["delete_setting", "put_setting", "read_setting", "settings_with_prefix"]


def read_setting(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def settings_with_prefix(conn: sqlite3.Connection, prefix: str) -> list[tuple[str, Any, Any, Any]]:
    """(key, value, updated_by, updated_at) of every key starting with `prefix`
    (ASCII case aside, as SQLite's LIKE compares), by key. The prefix's own
    '%', '_' and '\\' are escaped, so they match only themselves."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.execute(
        "SELECT key, value, updated_by, updated_at FROM settings WHERE key LIKE ? ESCAPE '\\' ORDER BY key",
        [pattern],
    ).fetchall()
    return [(str(k), v, by, at) for k, v, by, at in rows]


def put_setting(conn: sqlite3.Connection, key: str, value: str, *, actor: str) -> None:
    """Insert or replace one setting. Inside the caller's write transaction."""
    conn.execute(
        "INSERT INTO settings (key, value, updated_by, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, "
        "updated_at = excluded.updated_at",
        [key, value, actor, utc_now()],
    )


def delete_setting(conn: sqlite3.Connection, key: str) -> None:
    """Remove one setting (back to its default). Inside the caller's write transaction."""
    conn.execute("DELETE FROM settings WHERE key = ?", [key])
