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

from collections.abc import Iterable

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field

from .usage_numbers import p95_rank, usage_numbers

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


def _p95(durations: list[float]) -> float:
    return sorted(durations)[p95_rank(len(durations))]


def usage(db: sqlite_utils.Database, refs: Iterable[str] | None = None) -> dict[str, UsageStats]:
    """Stats of each name@version in `refs` (zeros for one never called), or,
    with refs None, of every version that has been called at least once
    (registry/usage_numbers.py reads them)."""
    return {tool: UsageStats(**numbers) for tool, numbers in usage_numbers(db.conn, refs).items()}
