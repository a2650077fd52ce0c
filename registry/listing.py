"""Listings that stream (issue 21): `list`, `export` and `audit` read as
they are written, one row at a time, in constant memory, each inside one
read snapshot held until the listing is done (or dropped).

A listing is a generator: the caller writes each item as it comes. Paging
and filters are SQL's (registry/store_listing.py); building each item from
its row is records.py's, bundle.py's and audit.py's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .audit import _row_entry, normalize_since
from .bundle import bundle_entry
from .plain_reads import STATUSES, check_page
from .reading import resolve
from .records import version_of_row
from .store import read_snapshot
from .store_listing import audit_stream, newest_page, versions_of_names, versions_stream
from .versions import parse_version

if TYPE_CHECKING:
    import sqlite_utils

    from .models import AuditEntry, ToolVersion

__all__ = ["STATUSES", "iter_audit", "iter_bundle_entries", "iter_newest"]


def iter_newest(
    db: sqlite_utils.Database,
    *,
    include_yanked: bool = False,
    status: str | None = None,
    name_glob: str | None = None,
    after: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[ToolVersion]:
    """See `Registry.iter_list`. Bad arguments raise here, before any row is read."""
    check_page(status, limit, offset)
    page = {
        "include_yanked": include_yanked,
        "status": status,
        "name_glob": name_glob,
        "after": after,
        "limit": limit,
        "offset": offset,
    }
    return _newest(db, page)


def _newest(db: sqlite_utils.Database, page: dict[str, Any]) -> Iterator[ToolVersion]:
    with read_snapshot(db):
        for row in newest_page(db.conn, **page):
            yield version_of_row(row)


def _semver_order(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Rows grouped by name (as read), each name's sorted by semver precedence."""
    for _name, group in itertools.groupby(rows, key=lambda row: row[1]):
        yield from sorted(group, key=lambda row: parse_version(row[2]).key())


def iter_bundle_entries(db: sqlite_utils.Database, refs: Iterable[str] | None) -> Iterator[dict[str, Any]]:
    """The bundle entries of `Registry.export`, one version at a time, in the
    same order (by name, each name's versions oldest first). A reference
    that resolves to nothing raises here, before anything is read or written."""
    if refs is None:
        return _entries(db, None)
    names: list[str] = []
    with read_snapshot(db):
        for ref in refs:
            name = resolve(db.conn, ref, allow_yanked=True).name
            if name not in names:
                names.append(name)
    return _entries(db, names)


def _entries(db: sqlite_utils.Database, names: list[str] | None) -> Iterator[dict[str, Any]]:
    with read_snapshot(db):
        rows = versions_stream(db.conn) if names is None else versions_of_names(db.conn, names)
        for row in _semver_order(rows):
            yield bundle_entry(version_of_row(row))


def iter_audit(
    db: sqlite_utils.Database,
    *,
    tool: str | None = None,
    event: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> Iterator[AuditEntry]:
    """See `Registry.audit`: the same entries, streamed. A bad `since` or
    `limit` raises here, before any row is read."""
    since_text = None if since is None else normalize_since(since)
    check_page(None, limit, 0)
    return _audit(db, {"tool": tool, "event": event, "since": since_text, "limit": limit})


def _audit(db: sqlite_utils.Database, query: dict[str, Any]) -> Iterator[AuditEntry]:
    with read_snapshot(db):
        for row in audit_stream(db.conn, **query):
            yield _row_entry(row)
