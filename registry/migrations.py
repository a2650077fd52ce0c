"""The registry schema, created and evolved by `sqlite_utils.Migrations`.

APPEND-ONLY: a migration that has shipped is never edited, renamed or removed;
every schema change is a new ``mNNN_...`` function at the end of this file.
Databases record which migrations they have applied (``_sqlite_migrations``)
and every `Registry` open applies the pending ones.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable

import sqlite_utils
from sqlite_utils.db import Table

from .audit_tree import backfill
from .search import index_terms
from .store import SCHEMA_MIGRATIONS, utc_now, write_transaction
from .store_audit import audit_rows
from .store_newest import NEWEST_TRIGGERS, SEARCH_PRUNE, SEARCH_TRIGGERS, backfill_sort_keys, rebuild_newest
from .store_usage import USAGE_BACKFILL, USAGE_TRIGGERS

__all__ = ["MIGRATIONS", "apply_migrations", "pending_migrations"]

MIGRATIONS = sqlite_utils.Migrations("toolcrib")


@MIGRATIONS()
def m001_core(db: sqlite_utils.Database) -> None:
    """Versions (content + lifecycle + provenance), verification evidence, the audit log."""
    db.execute(
        """
        CREATE TABLE versions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            entrypoint TEXT NOT NULL,
            source TEXT NOT NULL,
            signature TEXT NOT NULL,
            tests TEXT NOT NULL,
            limits TEXT,
            description TEXT,
            status TEXT NOT NULL DEFAULT 'unverified'
                CHECK (status IN ('unverified', 'verified', 'failed')),
            deprecated TEXT,
            yanked TEXT,
            created_at TEXT NOT NULL,
            generator TEXT,
            prompt TEXT,
            prompt_sha256 TEXT,
            parent TEXT,
            parent_sha256 TEXT,
            registered_by TEXT NOT NULL,
            registered_at TEXT NOT NULL,
            source_sha256 TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE UNIQUE INDEX versions_name_version ON versions (name, version)")
    db.execute("CREATE UNIQUE INDEX versions_name_sha256 ON versions (name, sha256)")
    db.execute("CREATE INDEX versions_sha256 ON versions (sha256)")
    db.execute(
        """
        CREATE TABLE verifications (
            id INTEGER PRIMARY KEY,
            version_id INTEGER NOT NULL REFERENCES versions (id),
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('verified', 'failed')),
            backend TEXT NOT NULL,
            image_digest TEXT,
            passed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            cases TEXT NOT NULL,
            limits TEXT NOT NULL,
            verified_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX verifications_version ON verifications (version_id)")
    db.execute(
        """
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            event TEXT NOT NULL,
            tool TEXT,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            entry_hash TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX audit_tool ON audit (tool)")
    # The log is append-only from the first day; triggers make an accidental
    # UPDATE/DELETE fail loudly (a deliberate attacker can drop them, which is
    # what the hash chain is for).
    db.execute(
        """
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END
        """
    )
    db.execute(
        """
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END
        """
    )


@MIGRATIONS()
def m002_search_index(db: sqlite_utils.Database) -> None:
    """FTS5 index over name, entrypoint and docstring, kept in sync by triggers."""
    table = db["versions"]
    assert isinstance(table, Table)
    table.enable_fts(["name", "entrypoint", "description"], create_triggers=True, tokenize="porter")


# m003 was numbered before m004 was written and both landed in the same
# development window; they touch different columns, so a database that applied
# m004 first gets m003 on its next open with the same result.
@MIGRATIONS()
def m003_version_policy(db: sqlite_utils.Database) -> None:
    """The policy a version declares (existing versions: 'restricted', the only
    one there was), and what a verification ran under: its policy and the
    isolation layers in force (JSON list; '[]' for evidence from before)."""
    db.execute(
        "ALTER TABLE versions ADD COLUMN policy TEXT NOT NULL DEFAULT 'restricted' "
        "CHECK (policy IN ('restricted', 'plain'))"
    )
    db.execute(
        "ALTER TABLE verifications ADD COLUMN policy TEXT CHECK (policy IS NULL OR policy IN ('restricted', 'plain'))"
    )
    db.execute("ALTER TABLE verifications ADD COLUMN layers TEXT NOT NULL DEFAULT '[]'")


@MIGRATIONS()
def m004_search_ranking(db: sqlite_utils.Database) -> None:
    """The dispatcher's index (registry/search.py) replaces m002's.

    Fields: name words, docstring, parameters, examples (test names and
    snippets). Identifiers are split into words in Python when a version is
    stored (``versions.search_terms``, a JSON object of the four fields);
    plain SQL triggers copy it into the index, falling back to the raw
    columns for a row written without it, so no connection needs a
    Python function registered to write a version.
    """
    versions = db["versions"]
    assert isinstance(versions, Table)
    versions.disable_fts()  # m002's index and its triggers: nothing reads them any more
    db.execute("ALTER TABLE versions ADD COLUMN search_terms TEXT")
    db.execute(
        "CREATE VIRTUAL TABLE search_index USING fts5 (name, about, params, examples, tokenize = 'porter unicode61')"
    )
    fields = (
        "coalesce(json_extract(new.search_terms, '$.name'), new.name || ' ' || new.entrypoint), "
        "coalesce(json_extract(new.search_terms, '$.about'), new.description, ''), "
        "coalesce(json_extract(new.search_terms, '$.params'), new.signature), "
        "coalesce(json_extract(new.search_terms, '$.examples'), new.tests)"
    )
    insert = f"INSERT INTO search_index (rowid, name, about, params, examples) VALUES (new.id, {fields});"
    db.execute(f"CREATE TRIGGER search_index_ai AFTER INSERT ON versions BEGIN {insert} END")
    db.execute(
        "CREATE TRIGGER search_index_ad AFTER DELETE ON versions BEGIN DELETE FROM search_index WHERE rowid = old.id; END"
    )
    # Only the indexed columns: status, yank and deprecation updates leave the index alone.
    db.execute(
        "CREATE TRIGGER search_index_au AFTER UPDATE OF name, entrypoint, description, signature, tests, "
        f"search_terms ON versions BEGIN DELETE FROM search_index WHERE rowid = old.id; {insert} END"
    )
    rows = db.execute("SELECT id, name, entrypoint, description, signature, tests FROM versions").fetchall()
    for vid, name, entrypoint, description, signature, tests in rows:
        terms = index_terms(name, entrypoint, description, json.loads(signature), json.loads(tests))
        db.execute("UPDATE versions SET search_terms = ? WHERE id = ?", [terms, vid])
    db.execute("INSERT INTO search_index (search_index) VALUES ('optimize')")


@MIGRATIONS()
def m005_latm(db: sqlite_utils.Database) -> None:
    """Registry settings, one value per key (the LATM loop's default model is
    "latm.model"); a change is audited by whoever writes it."""
    db.execute(
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
        "updated_by TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )


@MIGRATIONS()
def m006_packages(db: sqlite_utils.Database) -> None:
    """Tools that need packages (issue 10). Per version: the requirements it
    declared (JSON list), the lock they resolved to (JSON, a
    `sandbox.contract.Lock`) and its prelude (text); NULL for every version
    stored before, which keeps their content hashes. Named preludes: shared
    code a version copies at add time, with the requirements it brings."""
    db.execute("ALTER TABLE versions ADD COLUMN requires TEXT")
    db.execute("ALTER TABLE versions ADD COLUMN lock TEXT")
    db.execute("ALTER TABLE versions ADD COLUMN prelude TEXT")
    db.execute(
        "CREATE TABLE preludes (name TEXT PRIMARY KEY, text TEXT NOT NULL, sha256 TEXT NOT NULL, "
        "requires TEXT NOT NULL DEFAULT '[]', updated_by TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )


@MIGRATIONS()
def m007_review(db: sqlite_utils.Database) -> None:
    """Human review (issue 18): each reviewer's decision on a version
    (approved or rejected, with the DSSE envelope that signs it), the
    reviewer keys the registry trusts, and the ``review`` setting (which
    versions need approval before they are called or served). A new registry
    (an empty audit log) starts at "models"; an existing one at "none", so an
    upgrade never makes a tool that was callable refuse."""
    db.execute(
        """
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            version_id INTEGER NOT NULL REFERENCES versions (id),
            sha256 TEXT NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
            reviewer TEXT NOT NULL,
            note TEXT,
            keyid TEXT,
            envelope TEXT,
            origin TEXT NOT NULL DEFAULT 'local' CHECK (origin IN ('local', 'import')),
            decided_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX reviews_version ON reviews (version_id)")
    db.execute(
        "CREATE TABLE reviewer_keys (keyid TEXT PRIMARY KEY, name TEXT NOT NULL, public TEXT NOT NULL, "
        "added_by TEXT NOT NULL, added_at TEXT NOT NULL)"
    )
    fresh = db.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
    db.execute(
        "INSERT INTO settings (key, value, updated_by, updated_at) VALUES ('review', ?, 'migration', ?)",
        ["models" if fresh else "none", utc_now()],
    )


@MIGRATIONS()
def m008_checks(db: sqlite_utils.Database) -> None:
    """Checks beyond a version's own tests (issue 19): each run of one
    (``fuzz``: inputs generated from the input schema; ``predecessor``: the
    same inputs through the version it replaces; ``mutants``: the tests
    against changed copies of the code), with its settings and summary, and
    what each run found (a finding can become a drafted test case)."""
    db.execute(
        """
        CREATE TABLE checks (
            id INTEGER PRIMARY KEY,
            version_id INTEGER NOT NULL REFERENCES versions (id),
            sha256 TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('fuzz', 'predecessor', 'mutants')),
            settings TEXT NOT NULL,
            summary TEXT NOT NULL,
            backend TEXT NOT NULL,
            policy TEXT,
            ran_by TEXT NOT NULL,
            ran_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX checks_version ON checks (version_id, kind)")
    db.execute(
        """
        CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            check_id INTEGER NOT NULL REFERENCES checks (id),
            version_id INTEGER NOT NULL REFERENCES versions (id),
            kind TEXT NOT NULL,
            summary TEXT NOT NULL,
            input TEXT,
            detail TEXT NOT NULL,
            drafted_by TEXT,
            drafted_at TEXT
        )
        """
    )
    db.execute("CREATE INDEX findings_check ON findings (check_id)")


@MIGRATIONS()
def m010_audit_tree(db: sqlite_utils.Database) -> None:
    """The audit log as a verifiable log (issue 18): the hash of every perfect
    subtree of an RFC 6962 Merkle tree over the entries (registry/audit_tree.py),
    built here over an existing log (the entries themselves are not touched:
    the chain stays as it was) and appended with each entry from now on; and
    the log's origin, the name its signed checkpoints carry."""
    db.execute(
        "CREATE TABLE audit_tree (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, "
        "PRIMARY KEY (level, idx)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree "
        "BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree "
        "BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END"
    )
    backfill(db.conn, audit_rows(db.conn))
    db.execute(
        "INSERT INTO settings (key, value, updated_by, updated_at) VALUES ('audit.origin', ?, 'migration', ?)",
        [f"toolcrib.local/audit/{secrets.token_hex(8)}", utc_now()],
    )


@MIGRATIONS()
def m011_scale(db: sqlite_utils.Database) -> None:
    """Reading that stays fast at 100,000 versions and 1,000,000 audit
    entries (issue 21):

    - ``versions.sort_key`` (semver precedence as text) and the ``newest``
      table, one row per name, kept by triggers (registry/store_newest.py):
      search and listings read it instead of every version; the search
      index holds only those versions (the live ones), kept by triggers on
      ``newest``;
    - ``usage_counts`` and ``usage_durations``, kept by a trigger on the
      audit table (registry/store_usage.py): `show` reads a version's usage
      without reading the log;
    - an index on the audit log's time, for ``audit --since``."""
    db.execute("ALTER TABLE versions ADD COLUMN sort_key TEXT")
    db.execute("CREATE TABLE newest (name TEXT PRIMARY KEY, id INTEGER NOT NULL, live INTEGER NOT NULL)")
    db.execute("CREATE INDEX newest_id ON newest (id)")
    db.execute("CREATE INDEX newest_live ON newest (live)")
    backfill_sort_keys(db.conn)
    rebuild_newest(db.conn)
    for statement in (*NEWEST_TRIGGERS, *SEARCH_PRUNE, *SEARCH_TRIGGERS):
        db.execute(statement)
    db.execute(
        "CREATE TABLE usage_counts (tool TEXT NOT NULL, status TEXT NOT NULL, calls INTEGER NOT NULL, "
        "last_at TEXT NOT NULL, PRIMARY KEY (tool, status))"
    )
    db.execute("CREATE TABLE usage_durations (tool TEXT NOT NULL, ms REAL NOT NULL)")
    db.execute("CREATE INDEX usage_durations_tool_ms ON usage_durations (tool, ms)")
    for statement in (*USAGE_BACKFILL, *USAGE_TRIGGERS):
        db.execute(statement)
    db.execute("CREATE INDEX audit_at ON audit (at)")


@MIGRATIONS()
def m012_reviewer_key_expiry(db: sqlite_utils.Database) -> None:
    """A trusted reviewer key may expire (issue 18): an approval it signed at
    or after ``expires`` (UTC text, as the audit log writes time) does not
    count, and verifying its envelope fails naming the expiry."""
    db.execute("ALTER TABLE reviewer_keys ADD COLUMN expires TEXT")


def pending_migrations(db: sqlite_utils.Database) -> list[str]:
    """Names of the migrations this database has not applied yet (read-only)."""
    return [m.name for m in MIGRATIONS.pending(db)]


def apply_migrations(
    db: sqlite_utils.Database,
    *,
    stop_before: str | None = None,
    after: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Apply pending migrations; returns the names applied by this call.

    Runs under one ``BEGIN IMMEDIATE`` so two processes opening a new registry
    at once do not both try to create the tables: the second waits, then sees
    nothing pending. ``after(applied)`` runs inside that same transaction (the
    registry writes its "init" audit entry there).
    """
    if not pending_migrations(db):
        return []
    with write_transaction(db):
        todo = pending_migrations(db)
        MIGRATIONS.apply(db, stop_before=stop_before)
        done = set(pending_migrations(db))
        applied = [name for name in todo if name not in done]
        if after is not None and applied:
            after(applied)
    return applied


# A call checks a file against store.SCHEMA_MIGRATIONS without importing this
# module: the two lists must be the same.
if tuple(m.name for m in MIGRATIONS._migrations) != SCHEMA_MIGRATIONS:  # pragma: no cover - a developer's slip
    raise RuntimeError("store.SCHEMA_MIGRATIONS must list exactly the migrations defined here, in order")
