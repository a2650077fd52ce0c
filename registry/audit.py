"""The hash-chained, append-only audit log.

Every entry commits to the one before it: ``entry_hash = sha256(prev_hash +
canonical_json(entry without entry_hash))``, starting from 64 zeros. Appends
happen inside the caller's ``BEGIN IMMEDIATE`` transaction, so seq and
prev_hash are read and written under the write lock and the chain cannot fork.
The entries are also the leaves of an RFC 6962 Merkle tree (registry/audit_tree.py),
appended in the same transaction, for signed checkpoints and proofs.
Format: docs/formats.md.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .audit_tree import append_leaf, entry_leaf
from .errors import InvalidInput
from .store import utc_now
from .store_audit import audit_count, audit_head, audit_rows, insert_audit_row, select_audit_rows
from .versions import canonical_json, sha256_text

if TYPE_CHECKING:
    import sqlite3

    import sqlite_utils

    from .models import AuditEntry, AuditReport

__all__ = [
    "CAP_BYTES",
    "GENESIS_HASH",
    "append_entry",
    "append_row",
    "bounded_details",
    "cap_text",
    "cap_value",
    "entry_hash",
    "list_entries",
    "normalize_since",
    "verify_chain",
    "verify_chain_rows",
]

GENESIS_HASH = "0" * 64
CAP_BYTES = 2048
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def entry_hash(entry: dict[str, Any]) -> str:
    """The hash of one entry (a dict with seq, at, actor, event, tool, details, prev_hash)."""
    body = {k: entry[k] for k in ("seq", "at", "actor", "event", "tool", "details", "prev_hash")}
    return sha256_text(body["prev_hash"] + canonical_json(body))


def _safe_json(value: Any) -> str:
    """The canonical JSON text of `value`, with every lone surrogate (which
    UTF-8 cannot encode, and so neither SQLite nor sha256 can take) replaced
    by U+FFFD. Raises TypeError/ValueError for what is not JSON at all, and
    ValueError for values nested too deeply to encode."""
    try:
        text = canonical_json(value)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return _LONE_SURROGATE.sub("\ufffd", text)


def cap_value(value: Any, limit: int = CAP_BYTES) -> Any:
    """`value` itself if its canonical JSON fits in `limit` bytes, else a marker
    object holding the first `limit` bytes of that JSON text. Lone surrogates
    come back as U+FFFD, so the result can always be stored and hashed."""
    try:
        text = _safe_json(value)
    except (TypeError, ValueError):
        return {"$truncated": True, "bytes": None, "prefix": _LONE_SURROGATE.sub("\ufffd", _short_repr(value, limit))}
    data = text.encode("utf-8")
    if len(data) <= limit:
        return json.loads(text)
    return {"$truncated": True, "bytes": len(data), "prefix": data[:limit].decode("utf-8", "ignore")}


def cap_text(text: str, limit: int = CAP_BYTES) -> str:
    """`text` if its UTF-8 is at most `limit` bytes, else its first bytes (cut
    back to a whole character) and ``…(+N bytes)`` naming how much was cut,
    within `limit` bytes in all. Lone surrogates come back as U+FFFD."""
    text = _LONE_SURROGATE.sub("\ufffd", text)
    if len(text) * 4 <= limit:  # no encoding needed: even four bytes a character fit
        return text
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    kept = data[: limit - 32].decode("utf-8", "ignore")
    return f"{kept}…(+{len(data) - len(kept.encode('utf-8'))} bytes)"


def _is_marker(value: Any) -> bool:
    return (
        isinstance(value, dict) and value.get("$truncated") is True and set(value) == {"$truncated", "bytes", "prefix"}
    )


def bounded_details(details: dict[str, Any]) -> dict[str, Any]:
    """The one place an entry's details are bounded, whoever built them: every
    field at most CAP_BYTES. A string (a refusal reason, a yank reason, a
    field error) is cut by `cap_text`; any other value by `cap_value` (a
    ``$truncated`` marker when its JSON is longer); a marker `cap_value`
    already made is kept. So an invalid call with a 10 MB argument, whose
    reason and field errors quote it, still writes an entry of a few KiB."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        key = cap_text(str(key), 256)
        if isinstance(value, str):
            out[key] = cap_text(value)
        elif _is_marker(value):
            out[key] = value
        else:
            capped = cap_value(value)
            # Not JSON at all: left as it is, for append_row to record why.
            out[key] = value if _is_marker(capped) and capped["bytes"] is None else capped
    return out


def _short_repr(value: Any, limit: int) -> str:
    try:
        return repr(value)[:limit]
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"


def append_entry(
    db: sqlite_utils.Database,
    *,
    actor: str,
    event: str,
    tool: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. Must run inside a write transaction (see store.write_transaction)."""
    from .models import AuditEntry

    return AuditEntry(**append_row(db.conn, actor=actor, event=event, tool=tool, details=details))


def append_row(
    conn: sqlite3.Connection,
    *,
    actor: str,
    event: str,
    tool: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`append_entry` on a plain connection (a call's path builds no models):
    the entry as stored, as a dict. Must run inside a write transaction."""
    if not conn.in_transaction:
        raise RuntimeError("audit entries are appended inside a write transaction")
    last = audit_head(conn)
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    # Round-trip through canonical JSON so what is hashed is exactly what is
    # stored; whatever bytes a tool returned, the entry can be written.
    # Whatever the caller passed, and whoever chose the actor (`--actor`, an
    # MCP client's name): bounded before it is hashed and stored.
    actor = cap_text(actor)
    try:
        details_text = _safe_json(bounded_details(details or {}))
    except (TypeError, ValueError) as exc:
        # Never lose the entry itself over a detail that is not JSON.
        details_text = _safe_json({"unrecordable_details": f"{type(exc).__name__}: {exc}"[:CAP_BYTES]})
    entry: dict[str, Any] = {
        "seq": seq,
        "at": utc_now(),
        "actor": actor,
        "event": event,
        "tool": tool,
        "details": json.loads(details_text),
        "prev_hash": prev,
    }
    body_json = canonical_json(entry)
    entry["entry_hash"] = sha256_text(prev + body_json)  # = entry_hash(entry), the body encoded once
    insert_audit_row(conn, (seq, entry["at"], actor, event, tool, details_text, prev, entry["entry_hash"]))
    # The Merkle tree over the log (registry/audit_tree.py): leaf seq-1 is the same body.
    append_leaf(conn, seq - 1, entry_leaf(body_json), prev_hash=prev, entry_hash=entry["entry_hash"])
    return entry


def normalize_since(since: str) -> str:
    """An ISO 8601 date or date-time as the audit log's UTC text form.

    A value without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(since.strip())
    except ValueError:
        raise InvalidInput(
            f"invalid time {since!r}: expected ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _row_entry(row: tuple[Any, ...]) -> AuditEntry:
    from .models import AuditEntry

    seq, at, actor, event, tool, details, prev, digest = row
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        event=event,
        tool=tool,
        details=json.loads(details),
        prev_hash=prev,
        entry_hash=digest,
    )


def list_entries(
    db: sqlite_utils.Database,
    *,
    tool: str | None = None,
    event: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Entries matching every given filter, oldest first; `limit` keeps the newest N.

    `tool` is a name (every version) or name@version (that one)."""
    since_text = None if since is None else normalize_since(since)
    if limit is not None and limit < 0:
        raise InvalidInput("limit must be zero or more")
    rows = select_audit_rows(db.conn, tool=tool, event=event, since=since_text, limit=limit)
    return [_row_entry(row) for row in rows]


def verify_chain(db: sqlite_utils.Database) -> AuditReport:
    """Recompute the whole chain; report the first entry that is out of place.

    Checks, in seq order: seq is 1, 2, 3, ... with no gap; each prev_hash is the
    previous entry's entry_hash (64 zeros for seq 1); each entry_hash matches
    the recomputed hash of its own fields. Removing entries from the *end*
    cannot be seen from inside the log: compare the head hash with a copy kept
    elsewhere for that (docs/formats.md).
    """
    return verify_chain_rows(db.conn)


def verify_chain_rows(conn: sqlite3.Connection, *, limit: int | None = None) -> AuditReport:
    """`verify_chain` on a plain connection, over the first `limit` entries
    when given (what a checkpoint of that size commits to)."""
    from .models import AuditReport

    expected_seq = 1
    prev = GENESIS_HASH
    count = audit_count(conn)
    for row in audit_rows(conn):
        if limit is not None and expected_seq > limit:
            break
        seq, at, actor, event, tool, details_text, prev_hash, stored = row
        if seq != expected_seq:
            return AuditReport(
                ok=False, entries=count, first_bad=seq, problem=f"gap in seq: expected {expected_seq}, found {seq}"
            )
        if prev_hash != prev:
            return AuditReport(
                ok=False,
                entries=count,
                first_bad=seq,
                problem=f"broken link: prev_hash does not match the entry_hash of seq {seq - 1}"
                if seq > 1
                else "broken link: the first entry's prev_hash is not 64 zeros",
            )
        try:
            details = json.loads(details_text)
        except (TypeError, ValueError):
            return AuditReport(ok=False, entries=count, first_bad=seq, problem="details are not valid JSON")
        entry = {
            "seq": seq,
            "at": at,
            "actor": actor,
            "event": event,
            "tool": tool,
            "details": details,
            "prev_hash": prev_hash,
        }
        if entry_hash(entry) != stored:
            return AuditReport(ok=False, entries=count, first_bad=seq, problem="hash mismatch: the entry was altered")
        prev = stored
        expected_seq += 1
    return AuditReport(ok=True, entries=count)
