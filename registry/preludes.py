"""Named preludes: code a library's tools share (an import block), stored
once and copied into each version that names it at add time, so replacing a
prelude never changes a stored version. Its text is checked here; its rows
are the store's (store_versions)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .admission import MAX_SOURCE_BYTES, check_name
from .audit import append_entry
from .errors import AdmissionError, InvalidInput, NotFound
from .models import Prelude
from .store import utc_now, write_transaction
from .store_versions import prelude_names, prelude_row, upsert_prelude
from .versions import canonical_json, sha256_text

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["every_prelude", "load_prelude", "prelude_text", "refuse_restricted_prelude", "save_prelude"]


def prelude_text(text: str | None) -> str | None:
    """A prelude as stored: Unicode text that parses, "\n" line endings;
    None stays None (no prelude)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput("a prelude must be text")
    body = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("the prelude is not Unicode text (it holds a lone surrogate)") from None
    if size > MAX_SOURCE_BYTES:
        raise InvalidInput(f"the prelude is {size} bytes; the limit is {MAX_SOURCE_BYTES}")
    if not body.strip():
        raise InvalidInput("the prelude is empty")
    try:
        ast.parse(body)
    except SyntaxError as exc:
        raise AdmissionError(f"the prelude does not parse: {exc.msg} (prelude line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError):
        raise AdmissionError("the prelude cannot be parsed") from None
    return body.rstrip() + "\n"


def refuse_restricted_prelude(text: str) -> None:
    """Refuse, at add, a prelude the restricted policy would refuse on every
    call: a star import (RestrictedPython binds no names it cannot see). The
    error names the prelude's own line, not the tool's."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            module = "." * node.level + (node.module or "")
            raise AdmissionError(
                f"the prelude's line {node.lineno}: 'from {module} import *' is refused under the restricted "
                "policy (every call would be blocked): import the names the tool uses, or declare the plain policy"
            )


def save_prelude(db: sqlite_utils.Database, *, actor: str, name: str, text: str, requires: Iterable[str]) -> Prelude:
    """Store (or replace) a named prelude, with its ``prelude`` audit entry, in one transaction."""
    from ..sandbox.packages import PackagesError, check_requirement

    check_name(name)
    body = prelude_text(text)
    assert body is not None
    try:
        wants = sorted({check_requirement(r) for r in requires})
    except PackagesError as exc:
        raise InvalidInput(f"requirements: {exc}") from None
    now = utc_now()
    record = {
        "name": name,
        "text": body,
        "sha256": sha256_text(body),
        "requires": canonical_json(wants),
        "updated_by": actor,
        "updated_at": now,
    }
    with write_transaction(db):
        upsert_prelude(db, record)
        append_entry(
            db,
            actor=actor,
            event="prelude",
            tool=None,
            details={"name": name, "sha256": record["sha256"], "requires": wants},
        )
    return Prelude(name=name, text=body, sha256=str(record["sha256"]), requires=wants, updated_by=actor, updated_at=now)


def load_prelude(db: sqlite_utils.Database, name: str) -> Prelude:
    """A stored prelude; NotFound if there is none by that name."""
    row = prelude_row(db.conn, name)
    if row is None:
        raise NotFound(f"no prelude named {name!r}")
    return Prelude(
        name=row[0], text=row[1], sha256=row[2], requires=json.loads(row[3]), updated_by=row[4], updated_at=row[5]
    )


def every_prelude(db: sqlite_utils.Database) -> list[Prelude]:
    """Every stored prelude, by name."""
    return [load_prelude(db, n) for n in prelude_names(db.conn)]
