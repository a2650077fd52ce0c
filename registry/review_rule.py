"""The review rule on the call path (issue 18): which versions need a
reviewer's approval before they may run, and the refusal when one has none.

Kept apart from `review.py` (decisions, the queue, signing) so that a call,
which asks only "may this version run?", imports neither the decisions'
machinery nor the attestations (`registry/attest.py`).
"""

from __future__ import annotations

import sqlite3

from .errors import PolicyRefused
from .store_review import review_standing, review_state

__all__ = ["MODES", "allows", "gate", "needs_review"]

MODES = ("none", "models", "all")
_BLANK = " \t\n\r\x0b\x0c"  # what SQLite's trim in store_review.held_back_rows strips too


def needs_review(mode: str, generator: str | None, registered_by: str | None, task: str | None) -> str | None:
    """Why a version with these facts needs approval under `mode`, or None."""
    if mode == "all":
        return "review is 'all': every version needs approval"
    if mode != "models":
        return None
    if task is not None and task != "":
        return f"made by 'toolcrib make' (task {task})"
    if registered_by is not None and registered_by.startswith("mcp:"):
        return f"added over MCP by {registered_by.removeprefix('mcp:')}"
    if generator is not None and generator.strip(_BLANK).lower() not in ("", "human"):
        return f"its generator {generator!r} is taken as a model"
    return None


def gate(
    conn: sqlite3.Connection,
    version_id: int,
    ref: str,
    *,
    maker: tuple[str | None, str | None, str | None] | None = None,
) -> None:
    """PolicyRefused (exit 4, naming the command that approves it) if the
    review rule keeps this version from being called; None if it may run.
    ``maker`` (generator, registered_by, latm.task), when the caller read the
    version row already (the call path), spares reading it again."""
    if maker is not None:
        standing_row = review_standing(conn, version_id)
        if standing_row is None:
            return
        mode, standing = standing_row
        generator, registered_by, task = maker
    else:
        state = review_state(conn, version_id)
        if state is None:
            return
        mode, generator, registered_by, task, standing = state
    why = needs_review(mode if mode in MODES else "none", generator, registered_by, task)
    if why is None or standing == "approved":
        return
    if standing == "rejected":
        raise PolicyRefused(f"{ref} was rejected by its reviewer (toolcrib review {ref} shows why)")
    raise PolicyRefused(
        f"{ref} awaits review ({why}): a reviewer runs 'toolcrib review {ref}' and 'toolcrib approve {ref}'"
    )


def allows(conn: sqlite3.Connection, version_id: int, ref: str) -> bool:
    """Whether the review rule lets this version be called (`gate` without raising)."""
    try:
        gate(conn, version_id, ref)
    except PolicyRefused:
        return False
    return True
