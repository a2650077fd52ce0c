"""Which version a reference names: `choose_version` among one name's
versions (the call path's and every door's), and `resolve` on a
connection. A module of its own, importing only the store's version rows
and the reference parser: `toolcrib call` and `toolcrib show` both start
here, and neither should pay for anything else."""

from __future__ import annotations

import sqlite3

from .errors import InvalidInput, NotFound, PolicyRefused
from .store_versions import NEWEST, VersionRow, version_rows
from .versions import parse_reference

__all__ = ["choose_version", "resolve"]


def choose_version(
    rows: list[VersionRow], ref: str, *, allow_yanked: bool = True, conn: sqlite3.Connection | None = None
) -> VersionRow:
    """The row `ref` names among `rows` (one name's versions, oldest first;
    `store_versions.version_rows`): `name@1.2.0`,
    `name@sha256:PREFIX`, or `name` alone for its newest version (the `NEWEST` rule: not yanked).
    With `conn`, a name no version has is NotFound naming the close ones ("did you mean")."""
    parsed = parse_reference(ref)
    if not rows:
        from .suggest import no_tool_named  # only on a miss: difflib and the names stay off the call path

        raise no_tool_named(conn, parsed.name)
    if parsed.version is not None:
        found = [r for r in rows if r.version == parsed.version]
        if not found:
            known = ", ".join(r.version for r in rows)
            raise NotFound(f"{parsed.name}@{parsed.version} not found (versions: {known})")
        row = found[0]
    elif parsed.sha_prefix is not None:
        found = [r for r in rows if r.sha256.startswith(parsed.sha_prefix)]
        if not found:
            raise NotFound(f"no version of {parsed.name} has a sha256 starting with {parsed.sha_prefix}")
        if len(found) > 1:
            matches = ", ".join(f"{r.ref} (sha256:{r.sha256[:16]})" for r in found)
            raise InvalidInput(f"ambiguous reference {ref!r} matches {matches}: use more hex digits")
        row = found[0]
    else:
        newest = NEWEST.newest_of(rows)
        if newest is None:
            raise NotFound(f"every version of {parsed.name} is yanked; pin one explicitly (e.g. {rows[-1].ref})")
        return newest
    if row.yanked is not None and not allow_yanked:
        raise PolicyRefused(
            f"{row.ref} is yanked ({row.yanked}); pass --allow-yanked (allow_yanked=True) to use it anyway"
        )
    return row


def resolve(conn: sqlite3.Connection, ref: str, *, allow_yanked: bool = True) -> VersionRow:
    """The row NAME, NAME@VERSION or NAME@sha256:<prefix> resolves to."""
    return choose_version(version_rows(conn, parse_reference(ref).name), ref, allow_yanked=allow_yanked, conn=conn)
