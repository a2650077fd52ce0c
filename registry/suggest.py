""" "Did you mean": the names close to a mistyped one (difflib), for the
not-found errors every door shows."""

from __future__ import annotations

import sqlite3

from .errors import NotFound
from .store_versions import tool_names

__all__ = ["close_names", "no_tool_named"]


def close_names(name: str, names: list[str], n: int = 3) -> list[str]:
    """Up to `n` of `names` close to `name`, closest first."""
    import difflib  # only when a name was not found: kept off the call's import path

    return difflib.get_close_matches(name, names, n=n, cutoff=0.6)


def no_tool_named(conn: sqlite3.Connection | None, name: str) -> NotFound:
    """NotFound for a name no version has, with the closest names when some are close."""
    close = close_names(name, tool_names(conn)) if conn is not None else []
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return NotFound(f"no tool named {name!r}{hint}")
