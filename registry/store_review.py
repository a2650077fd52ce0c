"""The store's review tables and queries: what `toolcrib browse` (Datasette,
docs/browse.md) offers as canned queries and the two statements it runs on
its own connections; and the human review of issue 18 (migration
m007_review): reviewers' decisions, trusted reviewer keys, what the call
path reads to know whether a version may run. Kept with the rest of the SQL
so a schema change meets every statement that reads the tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = [
    "signed_decision_rows",
    "REVIEW_QUERIES",
    "delete_key",
    "held_back_rows",
    "insert_key",
    "insert_review",
    "key_rows",
    "make_query_only",
    "maker_rows",
    "reports_for",
    "review_rows",
    "review_state",
    "standing_decisions",
    "task_rejection",
    "table_names",
    "version_and_predecessor",
]

_CALL_STATUS = "json_extract(details, '$.status')"

# The canned queries of `toolcrib browse` (Datasette "metadata"): name ->
# title, description, SQL.
# Read-only SELECTs over the tables of registry/migrations.py; `:tool` makes
# a query parameterised (Datasette shows a form field for it).
REVIEW_QUERIES: dict[str, dict[str, str]] = {
    "unverified_versions": {
        "title": "Unverified versions",
        "description": "Versions that calls refuse (never verified, or their tests failed), newest first; yanked ones left out.",
        "sql": (
            "SELECT name || '@' || version AS ref, status, created_at, registered_by, generator, "
            "substr(sha256, 1, 12) AS sha256\n"
            "FROM versions WHERE status != 'verified' AND yanked IS NULL\n"
            "ORDER BY created_at DESC, name"
        ),
    },
    "recent_failures": {
        "title": "Recent failures",
        "description": "The newest 100 calls that did not end ok (error, blocked, limit, refused, invalid, "
        "unavailable, cancelled) and verifications that failed.",
        "sql": (
            f"SELECT seq, at, actor, event, tool, {_CALL_STATUS} AS status,\n"
            "  coalesce(json_extract(details, '$.error_type'), json_extract(details, '$.limit'),\n"
            "           json_extract(details, '$.reason'),\n"
            "           json_extract(details, '$.failed') || ' of ' ||\n"
            "           (json_extract(details, '$.failed') + json_extract(details, '$.passed')) || ' case(s) failed')\n"
            "    AS detail\n"
            "FROM audit\n"
            f"WHERE (event = 'call' AND {_CALL_STATUS} != 'ok')\n"
            f"   OR (event = 'verify' AND {_CALL_STATUS} = 'failed')\n"
            "ORDER BY seq DESC LIMIT 100"
        ),
    },
    "calls_per_tool": {
        "title": "Calls per tool",
        "description": "Every call in the audit log, counted per version by outcome, most called first.",
        "sql": (
            "SELECT tool, count(*) AS calls,\n"
            f"  sum({_CALL_STATUS} = 'ok') AS ok,\n"
            f"  sum({_CALL_STATUS} = 'error') AS error,\n"
            f"  sum({_CALL_STATUS} = 'blocked') AS blocked,\n"
            f"  sum({_CALL_STATUS} = 'limit') AS limit_hit,\n"
            f"  sum({_CALL_STATUS} IN ('refused', 'invalid')) AS refused,\n"
            "  max(at) AS last_call\n"
            "FROM audit WHERE event = 'call'\n"
            "GROUP BY tool ORDER BY calls DESC, tool"
        ),
    },
    "review_queue": {
        "title": "Review queue",
        "description": "Versions waiting for a reviewer under the registry's review setting (none, models, all), "
        "oldest first, with why; decide with 'toolcrib approve' or 'toolcrib reject' (browse only reads).",
        "sql": (
            "WITH mode AS (SELECT coalesce((SELECT value FROM settings WHERE key = 'review'), 'none') AS m),\n"
            "made AS (SELECT v.*, CASE\n"
            "  WHEN (SELECT m FROM mode) = 'all' THEN 'review is all'\n"
            "  WHEN (SELECT m FROM mode) != 'models' THEN NULL\n"
            "  WHEN json_extract(v.metadata, '$.\"latm.task\"') IS NOT NULL THEN 'made by toolcrib make'\n"
            "  WHEN v.registered_by LIKE 'mcp:%' THEN 'added over MCP by ' || substr(v.registered_by, 5)\n"
            "  WHEN v.generator IS NOT NULL AND lower(trim(v.generator)) NOT IN ('', 'human')\n"
            "    THEN 'generator ' || v.generator || ' taken as a model'\n"
            "  END AS why FROM versions v)\n"
            "SELECT name || '@' || version AS ref, status, created_at, why, registered_by, generator\n"
            "FROM made WHERE why IS NOT NULL AND yanked IS NULL\n"
            "  AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.version_id = made.id)\n"
            "ORDER BY created_at, id"
        ),
    },
    "version_review": {
        "title": "One version for review",
        "description": "What a reviewer reads about NAME@VERSION: its source, the source of the version before it, "
        "the newest verification evidence, the maker and transcript, and every decision so far.",
        "sql": (
            "SELECT v.name || '@' || v.version AS ref, v.status, v.sha256, v.source,\n"
            "  (SELECT p.version || char(10) || p.source FROM versions p WHERE p.name = v.name AND p.id < v.id\n"
            "   ORDER BY p.id DESC LIMIT 1) AS previous_source,\n"
            "  (SELECT e.status || ' ' || e.passed || '/' || (e.passed + e.failed) || ' on ' || e.backend\n"
            "     || char(10) || e.cases FROM verifications e WHERE e.version_id = v.id\n"
            "   ORDER BY e.id DESC LIMIT 1) AS evidence,\n"
            "  v.generator, v.registered_by, v.prompt AS transcript,\n"
            "  (SELECT group_concat(r.decided_at || ' ' || r.decision || ' by ' || r.reviewer\n"
            "     || coalesce(': ' || r.note, '') || CASE WHEN r.keyid IS NULL THEN ' (unsigned)'\n"
            "     ELSE ' (signed ' || substr(r.keyid, 1, 16) || ')' END, char(10))\n"
            "   FROM reviews r WHERE r.version_id = v.id) AS decisions\n"
            "FROM versions v WHERE v.name || '@' || v.version = :ref"
        ),
    },
    "tool_audit_log": {
        "title": "Audit log of one tool",
        "description": "Every audit entry of one tool, oldest first: give its NAME (all versions) or NAME@VERSION.",
        "sql": (
            "SELECT seq, at, actor, event, tool, details FROM audit\n"
            "WHERE tool = :tool OR substr(tool, 1, length(:tool) + 1) = :tool || '@'\n"
            "ORDER BY seq"
        ),
    },
    "case_evidence": {
        "title": "Evidence, case by case",
        "description": "Each test case of the newest verification of NAME@VERSION: passed or not, "
        "what was expected and what the sandbox answered, the error or limit, how long it ran.",
        "sql": (
            "WITH chosen AS (SELECT e.* FROM verifications e JOIN versions v ON v.id = e.version_id\n"
            "  WHERE v.name || '@' || v.version = :ref ORDER BY e.id DESC LIMIT 1)\n"
            "SELECT json_extract(c.value, '$.index') + 1 AS case_number, json_extract(c.value, '$.name') AS name,\n"
            "  CASE json_extract(c.value, '$.passed') WHEN 1 THEN 'pass' ELSE 'FAIL' END AS result,\n"
            "  json_extract(c.value, '$.status') AS status,\n"
            "  json_extract(c.value, '$.expected') AS expected, json_extract(c.value, '$.actual') AS actual,\n"
            "  coalesce(json_extract(c.value, '$.error.type') || ': ' || json_extract(c.value, '$.error.message'),\n"
            "           json_extract(c.value, '$.limit')) AS error,\n"
            "  round(json_extract(c.value, '$.duration_ms'), 1) AS ms,\n"
            "  chosen.backend, chosen.verified_at\n"
            "FROM chosen, json_each(chosen.cases) AS c ORDER BY c.key"
        ),
    },
    "check_findings": {
        "title": "Findings of the checks",
        "description": "What fuzzing, the predecessor comparison and mutation testing found (docs/verification.md), "
        "newest first: the version, the check, the kind, the input that shows it, whether it was drafted into "
        "a test case.",
        "sql": (
            "SELECT f.id AS finding, v.name || '@' || v.version AS ref, c.kind AS check_kind, f.kind, f.summary,\n"
            "  f.input, f.drafted_by, c.ran_at\n"
            "FROM findings f JOIN checks c ON c.id = f.check_id JOIN versions v ON v.id = f.version_id\n"
            "ORDER BY f.id DESC LIMIT 500"
        ),
    },
    "transcript": {
        "title": "Transcript of a version",
        "description": "The prompt or transcript NAME@VERSION was made from, as its maker gave it "
        "(with its sha256), and the generator.",
        "sql": (
            "SELECT name || '@' || version AS ref, generator, registered_by, registered_at,\n"
            "  prompt_sha256, prompt AS transcript\n"
            "FROM versions WHERE name || '@' || version = :ref"
        ),
    },
}


def version_and_predecessor(
    conn: sqlite3.Connection, ref: str
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(ref, source) of the version NAME@VERSION names and of the one of its
    name stored before it (None where there is none): what browse's diff
    page compares."""
    row = conn.execute(
        "SELECT id, name, name || '@' || version, source FROM versions WHERE name || '@' || version = ?", [ref]
    ).fetchone()
    if row is None:
        return None, None
    before = conn.execute(
        "SELECT name || '@' || version, source FROM versions WHERE name = ? AND id < ? ORDER BY id DESC LIMIT 1",
        [row[1], row[0]],
    ).fetchone()
    return (str(row[2]), str(row[3])), ((str(before[0]), str(before[1])) if before else None)


def make_query_only(conn: sqlite3.Connection) -> None:
    """From now on this connection refuses every write (PRAGMA query_only)."""
    conn.execute("PRAGMA query_only = 1")


def table_names(conn: sqlite3.Connection) -> set[str]:
    """The tables of the file behind `conn`."""
    return {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# -- human review (issue 18) ---------------------------------------------------

# A version's standing decision: its newest rejection or trusted approval (an
# approval whose key the registry no longer trusts, or signed at or after the
# key's expiry, does not count).
_STANDING = (
    "SELECT decision FROM reviews r WHERE r.version_id = {vid} AND (r.decision = 'rejected' OR "
    "r.keyid IN (SELECT k.keyid FROM reviewer_keys k WHERE k.expires IS NULL OR r.decided_at < k.expires)) "
    "ORDER BY r.id DESC LIMIT 1"
)


def review_state(conn: sqlite3.Connection, version_id: int) -> tuple[Any, ...] | None:
    """What the call path needs to apply the review rule to one version, in
    one read: (review setting, generator, registered_by, the metadata's
    latm.task, standing decision). None if the schema predates review."""
    try:
        row = conn.execute(
            "SELECT (SELECT value FROM settings WHERE key = 'review'), v.generator, v.registered_by, "
            "json_extract(v.metadata, '$.\"latm.task\"'), (" + _STANDING.format(vid="v.id") + ") "
            "FROM versions v WHERE v.id = ?",
            [version_id],
        ).fetchone()
    except sqlite3.OperationalError:  # no reviews table: a file from before m007
        return None
    return None if row is None else tuple(row)


def review_standing(conn: sqlite3.Connection, version_id: int) -> tuple[Any, Any] | None:
    """(review setting, standing decision) of one version, reading nothing of
    the version row itself (the call path read it already). None if the
    schema predates review."""
    try:
        row = conn.execute(
            "SELECT (SELECT value FROM settings WHERE key = 'review'), (" + _STANDING.format(vid="?") + ")",
            [version_id],
        ).fetchone()
    except sqlite3.OperationalError:  # no reviews table: a file from before m007
        return None
    return None if row is None else (row[0], row[1])


def maker_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """(id, name, version, sha256, status, yanked, deprecated, created_at,
    generator, registered_by, latm.task, standing decision) of every version."""
    rows = conn.execute(
        "SELECT v.id, v.name, v.version, v.sha256, v.status, v.yanked, v.deprecated, v.created_at, "
        "v.generator, v.registered_by, json_extract(v.metadata, '$.\"latm.task\"'), ("
        + _STANDING.format(vid="v.id")
        + ") FROM versions v ORDER BY v.created_at, v.id"
    )
    return [tuple(r) for r in rows.fetchall()]


def standing_decisions(conn: sqlite3.Connection) -> dict[int, str]:
    """version id -> its standing decision, for every version that has one."""
    rows = conn.execute("SELECT DISTINCT version_id FROM reviews").fetchall()
    out: dict[int, str] = {}
    for (vid,) in rows:
        found = conn.execute(_STANDING.format(vid="?"), [vid]).fetchone()
        if found is not None:
            out[int(vid)] = str(found[0])
    return out


REVIEW_COLUMNS = "id, version_id, sha256, decision, reviewer, note, keyid, envelope, origin, decided_at"


def signed_decision_rows(conn: sqlite3.Connection) -> Iterator[tuple[str, str, str, str]]:
    """(name, version, sha256, envelope) of every signed decision, by the
    version's creation then the decision's id; streamed (an export of
    100,000 versions reads only the decisions, one at a time)."""
    yield from conn.execute(
        "SELECT v.name, v.version, r.sha256, r.envelope FROM reviews r JOIN versions v ON v.id = r.version_id "
        "WHERE r.envelope IS NOT NULL AND r.envelope != '' ORDER BY v.created_at, v.id, r.id"
    )


def review_rows(conn: sqlite3.Connection, version_id: int) -> list[tuple[Any, ...]]:
    """Every decision on one version, oldest first (REVIEW_COLUMNS order)."""
    rows = conn.execute(f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE version_id = ? ORDER BY id", [version_id])
    return [tuple(r) for r in rows.fetchall()]


def insert_review(conn: sqlite3.Connection, record: dict[str, Any]) -> int:
    """One decision. Inside the caller's write transaction; its new id."""
    names = [c.strip() for c in REVIEW_COLUMNS.split(",")][1:]
    cursor = conn.execute(
        f"INSERT INTO reviews ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        [record.get(n) for n in names],
    )
    return int(cursor.lastrowid or 0)


def key_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """(keyid, name, public, added_by, added_at, expires) of every trusted reviewer key."""
    return [
        tuple(r) for r in conn.execute("SELECT keyid, name, public, added_by, added_at, expires FROM reviewer_keys")
    ]


def insert_key(
    conn: sqlite3.Connection, *, keyid: str, name: str, public: str, actor: str, at: str, expires: str | None = None
) -> bool:
    """Trust one key, or change a trusted key's expiry; False if nothing
    changed. Inside a write transaction."""
    found = conn.execute("SELECT expires FROM reviewer_keys WHERE keyid = ?", [keyid]).fetchone()
    if found is not None:
        if found[0] == expires:
            return False
        conn.execute("UPDATE reviewer_keys SET expires = ? WHERE keyid = ?", [expires, keyid])
        return True
    conn.execute(
        "INSERT INTO reviewer_keys (keyid, name, public, added_by, added_at, expires) VALUES (?, ?, ?, ?, ?, ?)",
        [keyid, name, public, actor, at, expires],
    )
    return True


def delete_key(conn: sqlite3.Connection, keyid: str) -> bool:
    """Stop trusting one key; False if it was not trusted. Inside a write transaction."""
    return conn.execute("DELETE FROM reviewer_keys WHERE keyid = ?", [keyid]).rowcount == 1


def reports_for(conn: sqlite3.Connection, version_id: int, sha256: str) -> dict[str, list[dict[str, Any]]]:
    """Reports another verification step keeps about a version (issue 19:
    fuzzing, mutation, differences from the previous version), when the file
    has such tables: table -> its rows about this version, as dicts. Tolerant
    by design: any table whose name says fuzz, mutation, report, check or
    finding and that has a version_id or sha256 column (issue 19's ``checks``
    and ``findings``); none at all is an empty answer."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table in sorted(table_names(conn)):
        lowered = table.lower()
        if not any(word in lowered for word in ("fuzz", "mutation", "report", "strength", "check", "finding")):
            continue
        if lowered.endswith(("_fts", "_data", "_idx", "_docsize", "_config", "_content")):
            continue
        columns = [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
        value: object
        if "version_id" in columns:
            where, value = "version_id = ?", version_id
        elif "sha256" in columns:
            where, value = "sha256 = ?", sha256
        else:
            continue
        rows = conn.execute(f'SELECT * FROM "{table}" WHERE {where} LIMIT 50', [value]).fetchall()
        if rows:
            out[table] = [dict(zip(columns, row, strict=False)) for row in rows]
    return out


def task_rejection(conn: sqlite3.Connection, task: str) -> tuple[Any, ...] | None:
    """(id, name@version, reviewer, note, decided_at) of the newest rejection
    of a version `toolcrib make` made for `task` (metadata latm.task), if any."""
    row = conn.execute(
        "SELECT r.id, v.name || '@' || v.version, r.reviewer, r.note, r.decided_at FROM reviews r "
        "JOIN versions v ON v.id = r.version_id "
        "WHERE r.decision = 'rejected' AND json_extract(v.metadata, '$.\"latm.task\"') = ? "
        "ORDER BY r.id DESC LIMIT 1",
        [task],
    ).fetchone()
    return None if row is None else tuple(row)


def held_back_rows(conn: sqlite3.Connection, *, every: bool) -> set[int]:
    """Ids of the versions that need approval (every one, or those made by a
    model: registry/review.py `needs_review`, the same rule) and whose
    standing decision is not an approval."""
    made_by_model = (
        "(coalesce(json_extract(v.metadata, '$.\"latm.task\"'), '') != '' "
        "OR substr(v.registered_by, 1, 4) = 'mcp:' "
        "OR (v.generator IS NOT NULL AND lower(trim(v.generator, ' ' || char(9, 10, 13, 11, 12))) NOT IN ('', 'human')))"
    )
    rows = conn.execute(
        f"SELECT v.id FROM versions v WHERE {'1' if every else made_by_model} "
        "AND coalesce((" + _STANDING.format(vid="v.id") + "), '') != 'approved'"
    )
    return {int(r[0]) for r in rows}
