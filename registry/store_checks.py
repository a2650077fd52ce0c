"""The store's ``checks`` and ``findings`` tables (migration m008_checks):
each run of a check beyond a version's own tests (fuzz, predecessor,
mutants) with its settings and summary as JSON, and what it found."""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "CHECK_COLUMNS",
    "FINDING_COLUMNS",
    "check_kind",
    "check_rows",
    "finding_row",
    "finding_rows",
    "insert_check",
    "insert_finding",
    "latest_check_rows",
    "mark_drafted",
]

CHECK_COLUMNS = "id, version_id, sha256, kind, settings, summary, backend, policy, ran_by, ran_at"
FINDING_COLUMNS = "id, check_id, version_id, kind, summary, input, detail, drafted_by, drafted_at"


def insert_check(conn: sqlite3.Connection, record: dict[str, Any]) -> int:
    """A new check run; its id. Inside the caller's write transaction."""
    cursor = conn.execute(
        "INSERT INTO checks (version_id, sha256, kind, settings, summary, backend, policy, ran_by, ran_at) "
        "VALUES (:version_id, :sha256, :kind, :settings, :summary, :backend, :policy, :ran_by, :ran_at)",
        record,
    )
    return int(cursor.lastrowid or 0)


def insert_finding(conn: sqlite3.Connection, record: dict[str, Any]) -> int:
    """One finding of a check run; its id. Inside the caller's write transaction."""
    cursor = conn.execute(
        "INSERT INTO findings (check_id, version_id, kind, summary, input, detail) "
        "VALUES (:check_id, :version_id, :kind, :summary, :input, :detail)",
        record,
    )
    return int(cursor.lastrowid or 0)


def latest_check_rows(conn: sqlite3.Connection, version_id: int) -> list[tuple[Any, ...]]:
    """The newest run of each kind of check of one version (CHECK_COLUMNS), by kind."""
    rows = conn.execute(
        f"SELECT {CHECK_COLUMNS} FROM checks WHERE id IN "
        "(SELECT max(id) FROM checks WHERE version_id = ? GROUP BY kind) ORDER BY kind",
        [version_id],
    ).fetchall()
    return [tuple(r) for r in rows]


def check_rows(conn: sqlite3.Connection, version_id: int, kind: str | None = None) -> list[tuple[Any, ...]]:
    """Every run of the checks of one version (of one kind, if given), oldest first."""
    if kind is None:
        rows = conn.execute(f"SELECT {CHECK_COLUMNS} FROM checks WHERE version_id = ? ORDER BY id", [version_id])
    else:
        rows = conn.execute(
            f"SELECT {CHECK_COLUMNS} FROM checks WHERE version_id = ? AND kind = ? ORDER BY id", [version_id, kind]
        )
    return [tuple(r) for r in rows.fetchall()]


def finding_rows(conn: sqlite3.Connection, check_ids: list[int]) -> list[tuple[Any, ...]]:
    """The findings of these check runs (FINDING_COLUMNS), by id."""
    if not check_ids:
        return []
    marks = ", ".join("?" for _ in check_ids)
    rows = conn.execute(
        f"SELECT {FINDING_COLUMNS} FROM findings WHERE check_id IN ({marks}) ORDER BY id", list(check_ids)
    ).fetchall()
    return [tuple(r) for r in rows]


def finding_row(conn: sqlite3.Connection, finding_id: int) -> tuple[Any, ...] | None:
    """One finding (FINDING_COLUMNS), or None."""
    row = conn.execute(f"SELECT {FINDING_COLUMNS} FROM findings WHERE id = ?", [finding_id]).fetchone()
    return None if row is None else tuple(row)


def mark_drafted(conn: sqlite3.Connection, finding_id: int, *, actor: str, at: str) -> None:
    """Record that a finding was drafted into a test case. Inside the caller's write transaction."""
    conn.execute("UPDATE findings SET drafted_by = ?, drafted_at = ? WHERE id = ?", [actor, at, finding_id])


def check_kind(conn: sqlite3.Connection, check_id: int) -> str:
    """The kind of one check run ('' if there is none)."""
    row = conn.execute("SELECT kind FROM checks WHERE id = ?", [check_id]).fetchone()
    return "" if row is None else str(row[0])
