"""Usage per version, from the audit log's "call" entries.

Every call (run, refused or invalid) is an audit entry with its status and,
for calls that ran, their duration. Since migration m011 a trigger on the
audit table counts each one as it is appended (registry/store_usage.py:
calls per version and status, and each duration in an index), and the
migration counted the entries written before; so the numbers follow the log
exactly, and `show` of a version called a million times reads a few index
entries instead of the log.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field

from .store_usage import duration_at_rank, duration_count, status_counts

__all__ = ["UsageStats", "usage"]


class UsageStats(BaseModel):
    """How one version has been used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str = Field(description="name@version")
    calls: int = Field(0, description="every call: run, refused by policy, or with invalid arguments")
    successes: int = Field(0, description="calls that returned a result (status ok)")
    errors: int = Field(0, description="calls where the tool raised (status error)")
    blocked: int = Field(0, description="calls the sandbox policy stopped (status blocked)")
    limit_hits: int = Field(0, description="calls that hit a resource limit (status limit)")
    refused: int = Field(0, description="calls refused before running: policy or invalid arguments")
    unavailable: int = Field(0, description="calls the sandbox could not run")
    median_ms: float | None = Field(None, description="median duration of the calls that ran")
    p95_ms: float | None = Field(None, description="95th percentile duration (nearest rank) of the calls that ran")
    last_used: str | None = Field(None, description="time of the newest call entry, UTC")


def _median(conn: sqlite3.Connection, tool: str, n: int) -> float:
    """statistics.median of the n durations, read at their ranks."""
    middle = duration_at_rank(conn, tool, n // 2)
    if n % 2:
        return middle
    return (duration_at_rank(conn, tool, n // 2 - 1) + middle) / 2


def _p95_rank(n: int) -> int:
    """The 0-based rank of the 95th percentile (nearest rank) of n values."""
    return max(math.ceil(0.95 * n) - 1, 0)


def _p95(durations: list[float]) -> float:
    return sorted(durations)[_p95_rank(len(durations))]


def usage(db: sqlite_utils.Database, refs: Iterable[str] | None = None) -> dict[str, UsageStats]:
    """Stats of each name@version in `refs` (zeros for one never called), or,
    with refs None, of every version that has been called at least once."""
    wanted = None if refs is None else list(dict.fromkeys(refs))
    if wanted is not None and not wanted:
        return {}
    conn = db.conn
    counts: dict[str, dict[str, int]] = {}
    last: dict[str, str] = {}
    for tool, status, calls, last_at in status_counts(conn, wanted):
        counts.setdefault(tool, {})[status] = calls
        last[tool] = max(last.get(tool, last_at), last_at)
    out: dict[str, UsageStats] = {}
    for tool in wanted if wanted is not None else sorted(counts):
        seen = counts.get(tool, {})
        ran = duration_count(conn, tool) if seen else 0
        out[tool] = UsageStats(
            tool=tool,
            calls=sum(seen.values()),
            successes=seen.get("ok", 0),
            errors=seen.get("error", 0),
            blocked=seen.get("blocked", 0),
            limit_hits=seen.get("limit", 0),
            refused=seen.get("refused", 0) + seen.get("invalid", 0),
            unavailable=seen.get("unavailable", 0),
            median_ms=round(_median(conn, tool, ran), 3) if ran else None,
            p95_ms=round(duration_at_rank(conn, tool, _p95_rank(ran)), 3) if ran else None,
            last_used=last.get(tool),
        )
    return out
