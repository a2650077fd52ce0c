"""The store's read-only review queries: what `toolcrib browse` (Datasette,
docs/browse.md) offers as canned queries, and the two statements it runs on
its own connections. Kept with the rest of the SQL so a schema change meets
every statement that reads the tables."""

from __future__ import annotations

import sqlite3

__all__ = ["REVIEW_QUERIES", "make_query_only", "table_names"]

_CALL_STATUS = "json_extract(details, '$.status')"

# The canned queries of `toolcrib browse` (Datasette "metadata"): name ->
# title, description, SQL.
# Read-only SELECTs over the tables of registry/migrations.py; `:tool` makes
# a query parameterised (Datasette shows a form field for it).
REVIEW_QUERIES: dict[str, dict[str, str]] = {
    "unverified_versions": {
        "title": "Unverified versions",
        "description": "Versions that calls refuse (never verified, or their tests failed), newest first; yanked ones left out.",
        "sql": (
            "SELECT name || '@' || version AS ref, status, created_at, registered_by, generator, "
            "substr(sha256, 1, 12) AS sha256\n"
            "FROM versions WHERE status != 'verified' AND yanked IS NULL\n"
            "ORDER BY created_at DESC, name"
        ),
    },
    "recent_failures": {
        "title": "Recent failures",
        "description": "The newest 100 calls that did not end ok (error, blocked, limit, refused, invalid, "
        "unavailable, cancelled) and verifications that failed.",
        "sql": (
            f"SELECT seq, at, actor, event, tool, {_CALL_STATUS} AS status,\n"
            "  coalesce(json_extract(details, '$.error_type'), json_extract(details, '$.limit'),\n"
            "           json_extract(details, '$.reason'),\n"
            "           json_extract(details, '$.failed') || ' of ' ||\n"
            "           (json_extract(details, '$.failed') + json_extract(details, '$.passed')) || ' case(s) failed')\n"
            "    AS detail\n"
            "FROM audit\n"
            f"WHERE (event = 'call' AND {_CALL_STATUS} != 'ok')\n"
            f"   OR (event = 'verify' AND {_CALL_STATUS} = 'failed')\n"
            "ORDER BY seq DESC LIMIT 100"
        ),
    },
    "calls_per_tool": {
        "title": "Calls per tool",
        "description": "Every call in the audit log, counted per version by outcome, most called first.",
        "sql": (
            "SELECT tool, count(*) AS calls,\n"
            f"  sum({_CALL_STATUS} = 'ok') AS ok,\n"
            f"  sum({_CALL_STATUS} = 'error') AS error,\n"
            f"  sum({_CALL_STATUS} = 'blocked') AS blocked,\n"
            f"  sum({_CALL_STATUS} = 'limit') AS limit_hit,\n"
            f"  sum({_CALL_STATUS} IN ('refused', 'invalid')) AS refused,\n"
            "  max(at) AS last_call\n"
            "FROM audit WHERE event = 'call'\n"
            "GROUP BY tool ORDER BY calls DESC, tool"
        ),
    },
    "tool_audit_log": {
        "title": "Audit log of one tool",
        "description": "Every audit entry of one tool, oldest first: give its NAME (all versions) or NAME@VERSION.",
        "sql": (
            "SELECT seq, at, actor, event, tool, details FROM audit\n"
            "WHERE tool = :tool OR substr(tool, 1, length(:tool) + 1) = :tool || '@'\n"
            "ORDER BY seq"
        ),
    },
}


def make_query_only(conn: sqlite3.Connection) -> None:
    """From now on this connection refuses every write (PRAGMA query_only)."""
    conn.execute("PRAGMA query_only = 1")


def table_names(conn: sqlite3.Connection) -> set[str]:
    """The tables of the file behind `conn`."""
    return {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
