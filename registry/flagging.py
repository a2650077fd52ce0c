"""Flagging a version deprecated or yanked: the flag, its audit entry, and
the version as it now reads, inside the caller's write transaction."""

from __future__ import annotations

import sqlite_utils

from .audit import append_entry
from .errors import InvalidInput
from .models import ToolVersion
from .reading import resolve
from .records import version_of_row
from .store_versions import full_row, set_version_flag

__all__ = ["flag_version"]


def flag_version(db: sqlite_utils.Database, *, actor: str, ref: str, column: str, event: str, text: str) -> ToolVersion:
    """Set `column` ("deprecated" or "yanked") of the version `ref` names
    (yanked ones included) to `text`, with an `event` audit entry."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{event} needs a non-empty {'message' if column == 'deprecated' else 'reason'}")
    row = resolve(db.conn, ref, allow_yanked=True)
    set_version_flag(db.conn, row.id, column, text)
    append_entry(db, actor=actor, event=event, tool=row.ref, details={column: text})
    fresh = full_row(db.conn, row.id)
    assert fresh is not None  # read inside the transaction that just updated it
    return version_of_row(fresh)
