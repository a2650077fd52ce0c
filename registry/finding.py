"""Finding tools: the newest versions that fit a query, best first.

Ranking itself (words, idf, bm25) is `search.py`'s job; this module applies
it to the versions names resolve to and builds the hits.
"""

from __future__ import annotations

import sqlite_utils

from .reading import tools_by_ids
from .search import CANDIDATE_POOL, FIT_THRESHOLD, SearchHit, rank

__all__ = ["find"]


def find(
    db: sqlite_utils.Database, query: str, *, limit: int, verified_only: bool, min_score: float | None
) -> list[SearchHit]:
    """See `Registry.search`: run inside the caller's read snapshot."""
    threshold = FIT_THRESHOLD if min_score is None else min_score
    if limit <= 0:
        return []
    pool = max(CANDIDATE_POOL, limit)
    ranked = [s for s in rank(db, query, verified_only=verified_only, pool=pool) if s.score >= threshold][:limit]
    tools = tools_by_ids(db.conn, (s.id for s in ranked))
    return [SearchHit(**dict(tools[s.id]), score=s.score, bm25=s.bm25, matched=list(s.matched)) for s in ranked]
