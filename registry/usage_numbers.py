"""Usage per version as plain numbers (no pydantic): what `stats.usage`
wraps in `UsageStats` and what the lean `show` (registry/plain_reads.py)
prints. Read from the counts the audit trigger keeps (registry/store_usage.py)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from typing import Any

from .store_usage import duration_at_rank, duration_count, status_counts

__all__ = ["p95_rank", "usage_numbers"]


def _median(conn: sqlite3.Connection, tool: str, n: int) -> float:
    """statistics.median of the n durations, read at their ranks."""
    middle = duration_at_rank(conn, tool, n // 2, n)
    if n % 2:
        return middle
    return (duration_at_rank(conn, tool, n // 2 - 1, n) + middle) / 2


def p95_rank(n: int) -> int:
    """The 0-based rank of the 95th percentile (nearest rank) of n values."""
    return max(math.ceil(0.95 * n) - 1, 0)


def usage_numbers(conn: sqlite3.Connection, refs: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The fields of `stats.UsageStats` of each name@version in `refs` (zeros
    for one never called), or, with refs None, of every version called at
    least once."""
    wanted = None if refs is None else list(dict.fromkeys(refs))
    if wanted is not None and not wanted:
        return {}
    counts: dict[str, dict[str, int]] = {}
    last: dict[str, str] = {}
    for tool, status, calls, last_at in status_counts(conn, wanted):
        counts.setdefault(tool, {})[status] = calls
        last[tool] = max(last.get(tool, last_at), last_at)
    out: dict[str, dict[str, Any]] = {}
    for tool in wanted if wanted is not None else sorted(counts):
        seen = counts.get(tool, {})
        ran = duration_count(conn, tool) if seen else 0
        out[tool] = {
            "tool": tool,
            "calls": sum(seen.values()),
            "successes": seen.get("ok", 0),
            "errors": seen.get("error", 0),
            "blocked": seen.get("blocked", 0),
            "limit_hits": seen.get("limit", 0),
            "refused": seen.get("refused", 0) + seen.get("invalid", 0),
            "unavailable": seen.get("unavailable", 0),
            "median_ms": round(_median(conn, tool, ran), 3) if ran else None,
            "p95_ms": round(duration_at_rank(conn, tool, p95_rank(ran), ran), 3) if ran else None,
            "last_used": last.get(tool),
        }
    return out
