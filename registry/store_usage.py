"""The store's usage tables (migration m011): what `registry/stats.py`
reports, kept up to date as calls are audited instead of recomputed from the
whole audit log on every `show`.

Triggers on the audit table (``usage_ai``) count every "call" entry by
version and status (``usage_counts``, with the time of the newest) and keep
the duration of each call that ran (``usage_durations``, indexed by version
and duration, so a median or p95 is one indexed step to a rank). They fire
on whichever connection appends the entry, so no writer has to remember
them; the migration fills both from the log already written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "RAN_STATUSES",
    "USAGE_BACKFILL",
    "USAGE_TRIGGERS",
    "called_tools",
    "duration_at_rank",
    "duration_count",
    "status_counts",
]

# Statuses of calls that reached the sandbox (and so have a duration).
RAN_STATUSES = ("ok", "error", "blocked", "limit")
_RAN_SQL = ", ".join(f"'{s}'" for s in RAN_STATUSES)

_STATUS = "coalesce(json_extract(new.details, '$.status'), '')"
_HAS_DURATION = (
    f"json_extract(new.details, '$.status') IN ({_RAN_SQL}) "
    "AND json_type(new.details, '$.duration_ms') IN ('integer', 'real')"
)

USAGE_TRIGGERS: tuple[str, ...] = (
    "CREATE TRIGGER usage_ai AFTER INSERT ON audit WHEN new.event = 'call' AND new.tool IS NOT NULL BEGIN "
    f"INSERT INTO usage_counts (tool, status, calls, last_at) VALUES (new.tool, {_STATUS}, 1, new.at) "
    "ON CONFLICT (tool, status) DO UPDATE SET calls = calls + 1, last_at = excluded.last_at; "
    "INSERT INTO usage_durations (tool, ms) SELECT new.tool, json_extract(new.details, '$.duration_ms') "
    f"WHERE {_HAS_DURATION}; END",
)

# Filling the tables from the log already written (the migration).
USAGE_BACKFILL: tuple[str, ...] = (
    "INSERT INTO usage_counts (tool, status, calls, last_at) "
    "SELECT tool, coalesce(json_extract(details, '$.status'), ''), count(*), max(at) FROM audit "
    "WHERE event = 'call' AND tool IS NOT NULL GROUP BY 1, 2",
    "INSERT INTO usage_durations (tool, ms) SELECT tool, json_extract(details, '$.duration_ms') FROM audit "
    f"WHERE event = 'call' AND tool IS NOT NULL AND json_extract(details, '$.status') IN ({_RAN_SQL}) "
    "AND json_type(details, '$.duration_ms') IN ('integer', 'real') ORDER BY seq",
)


def status_counts(conn: sqlite3.Connection, tools: Sequence[str] | None) -> Iterator[tuple[str, str, int, str]]:
    """(tool, status, calls, newest call's time) per called version and status;
    only those of `tools` (name@version references) when given."""
    sql = "SELECT tool, status, calls, last_at FROM usage_counts"
    params: list[Any] = []
    if tools is not None:
        sql += f" WHERE tool IN ({', '.join('?' for _ in tools)})"
        params = list(tools)
    yield from conn.execute(sql + " ORDER BY tool, status", params)


def called_tools(conn: sqlite3.Connection) -> list[str]:
    """Every version called at least once, sorted."""
    return [str(t) for (t,) in conn.execute("SELECT DISTINCT tool FROM usage_counts ORDER BY tool")]


def duration_count(conn: sqlite3.Connection, tool: str) -> int:
    """How many calls of `tool` ran and have a duration."""
    return int(conn.execute("SELECT count(*) FROM usage_durations WHERE tool = ?", [tool]).fetchone()[0])


def duration_at_rank(conn: sqlite3.Connection, tool: str, rank: int, count: int | None = None) -> float:
    """The `rank`-th smallest duration (0-based) of `tool`'s calls that ran.
    Given their `count`, read from the nearer end of the index: an OFFSET
    walks its entries one by one, and a p95 is 5 % from the top (at 100,000
    calls of one version, 5,000 steps instead of 95,000)."""
    if count is not None and rank > count - 1 - rank:
        sql = "SELECT ms FROM usage_durations WHERE tool = ? ORDER BY ms DESC LIMIT 1 OFFSET ?"
        row = conn.execute(sql, [tool, count - 1 - rank]).fetchone()
    else:
        sql = "SELECT ms FROM usage_durations WHERE tool = ? ORDER BY ms LIMIT 1 OFFSET ?"
        row = conn.execute(sql, [tool, rank]).fetchone()
    return float(row[0])
