"""Finding tools: the newest versions that fit a query, best first.

Ranking itself (words, idf, bm25) is `search.py`'s job; this module applies
it to the versions names resolve to and builds the hits.
"""

from __future__ import annotations

import sqlite_utils

from .reading import newest_ids, tools_by_ids
from .search import FIT_THRESHOLD, SearchHit, rank
from .store_versions import verified_ids

__all__ = ["find"]


def find(
    db: sqlite_utils.Database, query: str, *, limit: int, verified_only: bool, min_score: float | None
) -> list[SearchHit]:
    """See `Registry.search`: run inside the caller's read snapshot."""
    threshold = FIT_THRESHOLD if min_score is None else min_score
    if limit <= 0:
        return []
    newest = set(newest_ids(db.conn).values())
    if verified_only and newest:
        newest = verified_ids(db.conn, newest)
    ranked = [s for s in rank(db, query, newest) if s.score >= threshold][:limit]
    tools = tools_by_ids(db.conn, (s.id for s in ranked))
    return [SearchHit(**dict(tools[s.id]), score=s.score, bm25=s.bm25, matched=list(s.matched)) for s in ranked]
