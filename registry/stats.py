"""Usage per version, read from the audit log's "call" entries.

Nothing new is stored: every call (run, refused or invalid) is already an
audit entry with its status and, for calls that ran, their duration. So the
numbers cannot drift from the log, and they cover calls made before this
module existed.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field

from .store_audit import call_rows

__all__ = ["UsageStats", "usage"]

# Statuses of calls that reached the sandbox (and so have a duration).
_RAN = ("ok", "error", "blocked", "limit")


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


def _p95(durations: list[float]) -> float:
    ordered = sorted(durations)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def usage(db: sqlite_utils.Database, refs: Iterable[str] | None = None) -> dict[str, UsageStats]:
    """Stats of each name@version in `refs` (zeros for one never called), or,
    with refs None, of every version that has been called at least once."""
    wanted = None if refs is None else list(dict.fromkeys(refs))
    if wanted is not None and not wanted:
        return {}
    counts: dict[str, dict[str, int]] = {}
    durations: dict[str, list[float]] = {}
    last: dict[str, str] = {}
    for tool, at, details in call_rows(db.conn, wanted):
        info = json.loads(details)
        status = info.get("status")
        seen = counts.setdefault(tool, {})
        seen[status] = seen.get(status, 0) + 1
        if status in _RAN and isinstance(info.get("duration_ms"), (int, float)):
            durations.setdefault(tool, []).append(float(info["duration_ms"]))
        last[tool] = at
    out: dict[str, UsageStats] = {}
    for tool in wanted if wanted is not None else sorted(counts):
        seen = counts.get(tool, {})
        took = durations.get(tool, [])
        out[tool] = UsageStats(
            tool=tool,
            calls=sum(seen.values()),
            successes=seen.get("ok", 0),
            errors=seen.get("error", 0),
            blocked=seen.get("blocked", 0),
            limit_hits=seen.get("limit", 0),
            refused=seen.get("refused", 0) + seen.get("invalid", 0),
            unavailable=seen.get("unavailable", 0),
            median_ms=round(statistics.median(took), 3) if took else None,
            p95_ms=round(_p95(took), 3) if took else None,
            last_used=last.get(tool),
        )
    return out
