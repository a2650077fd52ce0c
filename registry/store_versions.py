"""The store's ``versions``, ``verifications`` and ``preludes`` tables.

One row type for a version's identity (`VersionRow`: enough to choose among
a name's versions, its full row read only for the one chosen), and ONE rule
for "the newest version of a name" (`NewestRule`, kept as data: `NEWEST`,
`NEWEST_OR_YANKED`, `SERVABLE`), used by `Registry.list`/`search`, the MCP
server's listing (`Registry.servable`) and, through `choose_version`, every
call. Plain sqlite3 at module level: the call path imports this module and
must load neither sqlite-utils nor pydantic (tests/cli/test_startup.py); the two
writes that go through sqlite-utils take its Database from the caller.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .store_newest import version_sort_key
from .versions import SemVer, parse_version

if TYPE_CHECKING:
    import sqlite_utils

__all__ = [
    "NEWEST",
    "NEWEST_OR_YANKED",
    "SERVABLE",
    "VERSION_COLUMNS",
    "VersionFields",
    "NewestRule",
    "VersionRow",
    "call_row",
    "full_row",
    "full_rows",
    "insert_verification",
    "insert_version",
    "latest_verification",
    "name_exists",
    "newest_per_name",
    "pending_rows",
    "prelude_names",
    "prelude_row",
    "set_status",
    "set_version_flag",
    "tool_names",
    "upsert_prelude",
    "verified_ids",
    "version_rows",
]


class VersionFields(NamedTuple):
    """A whole `versions` row by name, in VERSION_COLUMNS order: the one place
    that order is written (`records.version_of_row` and
    `plain_reads.version_view` read rows through it)."""

    id: int
    name: str
    version: str
    sha256: str
    entrypoint: str
    source: str
    signature: str
    tests: str
    limits: str | None
    status: Any  # a Literal of the models: checked by the model the row becomes
    deprecated: str | None
    yanked: str | None
    created_at: str
    generator: str | None
    prompt: str | None
    prompt_sha256: str | None
    parent: str | None
    parent_sha256: str | None
    registered_by: str
    registered_at: str
    source_sha256: str
    metadata: str
    policy: Any  # likewise
    lock: str | None
    prelude: str | None


VERSION_COLUMNS = ", ".join(VersionFields._fields)


class VersionRow:
    """One version's identity (id, version, digest, yank state): enough to
    choose among the versions of a name. `full` reads (once) its whole row,
    in VERSION_COLUMNS order, for the one chosen."""

    __slots__ = ("_conn", "_full", "id", "name", "version", "sha256", "yanked", "semver")

    def __init__(self, row: tuple[Any, ...], conn: sqlite3.Connection | None = None) -> None:
        self._conn = conn
        self._full: tuple[Any, ...] | None = None
        self.id: int = row[0]
        self.name: str = row[1]
        self.version: str = row[2]
        self.sha256: str = row[3]
        self.yanked: str | None = row[4]
        self.semver: SemVer = parse_version(self.version)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def full(self) -> tuple[Any, ...]:
        if self._full is None:
            if self._conn is None:
                raise RuntimeError("a VersionRow read without its connection cannot load its full row")
            found = full_row(self._conn, self.id)
            if found is None:
                raise LookupError(f"version {self.ref} (id {self.id}) is gone")
            self._full = found
        return self._full

    @staticmethod
    def of_name(conn: sqlite3.Connection, name: str) -> list[VersionRow]:
        """Every version of `name`, oldest first (semver order)."""
        return version_rows(conn, name)


def version_rows(conn: sqlite3.Connection, name: str) -> list[VersionRow]:
    """Every version of `name`, oldest first (semver order)."""
    cursor = conn.execute("SELECT id, name, version, sha256, yanked FROM versions WHERE name = ?", [name])
    return sorted((VersionRow(r, conn) for r in cursor.fetchall()), key=lambda r: r.semver.key())


@dataclass(frozen=True, slots=True)
class NewestRule:
    """Which version of each name counts as "the newest": the highest
    version (semver precedence) among those the rule admits.

    ``include_yanked``: a name whose every version is yanked still has one
    (its highest yanked version; a live version always wins).
    ``verified_only``/``skip_deprecated``: only versions that passed their
    tests / are not deprecated count (what a door serves)."""

    include_yanked: bool = False
    verified_only: bool = False
    skip_deprecated: bool = False

    def admits(self, *, yanked: Any, status: str, deprecated: Any) -> bool:
        if yanked is not None and not self.include_yanked:
            return False
        if self.verified_only and status != "verified":
            return False
        return not (self.skip_deprecated and deprecated is not None)

    def newest_of(self, rows: Sequence[VersionRow]) -> VersionRow | None:
        """The newest of one name's rows (oldest first) under this rule
        (what a bare NAME resolves to, for `NEWEST`). A VersionRow carries
        only the yank state, so a rule on status or deprecation picks with
        `newest_per_name` instead."""
        if self.verified_only or self.skip_deprecated:
            raise ValueError("a VersionRow has no status or deprecation: use newest_per_name for this rule")
        live = [r for r in rows if r.yanked is None]
        if live:
            return live[-1]
        return rows[-1] if self.include_yanked and rows else None


# What NAME resolves to (`Registry.get`, `list`, `search`, a call).
NEWEST = NewestRule()
# `list --include-yanked`: also the names with nothing but yanked versions.
NEWEST_OR_YANKED = NewestRule(include_yanked=True)
# What the MCP server lists and serves: verified, not yanked, not deprecated.
SERVABLE = NewestRule(verified_only=True, skip_deprecated=True)


def newest_per_name(
    conn: sqlite3.Connection, rule: NewestRule, *, skip: set[int] | None = None
) -> dict[str, tuple[int, str, str]]:
    """name -> (id, version, sha256) of its newest version under `rule`,
    leaving out the ids in `skip` (what human review holds back)."""
    best: dict[str, tuple[tuple[Any, ...], int, str, str]] = {}
    # Most tools share a few version strings ("1.0.0"): parse each once
    # (this runs on every list, search and listing, over every version).
    keys: dict[str, tuple[Any, ...]] = {}
    rows = conn.execute("SELECT id, name, version, sha256, yanked, status, deprecated FROM versions")
    for vid, name, version, sha256, yanked, status, deprecated in rows:
        if not rule.admits(yanked=yanked, status=status, deprecated=deprecated):
            continue
        if skip and vid in skip:
            continue
        if version not in keys:
            keys[version] = parse_version(version).key()
        key = (yanked is None, keys[version])
        if name not in best or key > best[name][0]:
            best[name] = (key, vid, version, sha256)
    return {name: (vid, version, sha256) for name, (_, vid, version, sha256) in best.items()}


def pending_rows(conn: sqlite3.Connection) -> list[VersionRow]:
    """Every version awaiting verification (unverified, not yanked), by name
    then version (semver order)."""
    cursor = conn.execute(
        "SELECT id, name, version, sha256, yanked FROM versions WHERE status = 'unverified' AND yanked IS NULL"
    )
    return sorted((VersionRow(r, conn) for r in cursor.fetchall()), key=lambda r: (r.name, r.semver.key()))


def full_row(conn: sqlite3.Connection, version_id: int) -> tuple[Any, ...] | None:
    """One version's whole row (VERSION_COLUMNS order), None if there is none."""
    row = conn.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE id = ?", [version_id]).fetchone()
    return None if row is None else tuple(row)


def full_rows(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, tuple[Any, ...]]:
    """id -> whole row of each of `ids` that exists."""
    ids = list(ids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    cursor = conn.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE id IN ({marks})", ids)
    return {row[0]: tuple(row) for row in cursor.fetchall()}


def verified_ids(conn: sqlite3.Connection, ids: Iterable[int]) -> set[int]:
    """Those of `ids` whose status is verified."""
    ids = sorted(ids)
    if not ids:
        return set()
    marks = ",".join("?" * len(ids))
    found = conn.execute(f"SELECT id FROM versions WHERE status = 'verified' AND id IN ({marks})", ids)
    return {vid for (vid,) in found}


def call_row(conn: sqlite3.Connection, version_id: int) -> tuple[Any, ...] | None:
    """What a call needs of a version beyond the `VersionRow` it was chosen
    by (name, version and yank state are not read again): (entrypoint,
    source, signature, limits, policy, lock, prelude, status, and who made it
    for the review rule: generator, registered_by, the metadata's latm.task)."""
    row = conn.execute(
        "SELECT entrypoint, source, signature, limits, policy, lock, prelude, status, "
        "generator, registered_by, json_extract(metadata, '$.\"latm.task\"') FROM versions WHERE id = ?",
        [version_id],
    ).fetchone()
    return None if row is None else tuple(row)


def tool_names(conn: sqlite3.Connection) -> list[str]:
    """Every name with at least one version, sorted."""
    return [str(n) for (n,) in conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]


def name_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM versions WHERE name = ? LIMIT 1", (name,)).fetchone() is not None


# The version columns a person may set after adding (each audited).
_FLAGS = ("deprecated", "yanked")


def set_version_flag(conn: sqlite3.Connection, version_id: int, column: str, text: str) -> None:
    """Deprecate or yank one version. Inside the caller's write transaction."""
    if column not in _FLAGS:
        raise ValueError(f"not a version flag: {column!r}")
    conn.execute(f"UPDATE versions SET {column} = ? WHERE id = ?", [text, version_id])


def set_status(conn: sqlite3.Connection, version_id: int, status: str) -> None:
    """A version's verification status. Inside the caller's write transaction."""
    conn.execute("UPDATE versions SET status = ? WHERE id = ?", [status, version_id])


def insert_version(db: sqlite_utils.Database, record: dict[str, Any]) -> None:
    """A new version (sqlite-utils: the record's keys are its columns), with
    its precedence as text (`store_newest.version_sort_key`, which the
    ``newest`` table's triggers order by)."""
    db.table("versions").insert({**record, "sort_key": version_sort_key(str(record["version"]))})


def insert_verification(db: sqlite_utils.Database, record: dict[str, Any]) -> None:
    db.table("verifications").insert(record)


def latest_verification(conn: sqlite3.Connection, version_id: int) -> tuple[Any, ...] | None:
    """(sha256, status, backend, policy, layers, image_digest, passed, failed,
    cases, verified_at) of the newest verification of a version."""
    found = conn.execute(
        "SELECT sha256, status, backend, policy, layers, image_digest, passed, failed, cases, verified_at "
        "FROM verifications WHERE version_id = ? ORDER BY id DESC LIMIT 1",
        [version_id],
    ).fetchone()
    return None if found is None else tuple(found)


def upsert_prelude(db: sqlite_utils.Database, record: dict[str, Any]) -> None:
    db.table("preludes").upsert(record, pk="name")


def prelude_row(conn: sqlite3.Connection, name: str) -> tuple[Any, ...] | None:
    """(name, text, sha256, requires, updated_by, updated_at) of a prelude."""
    row = conn.execute(
        "SELECT name, text, sha256, requires, updated_by, updated_at FROM preludes WHERE name = ?", [name]
    ).fetchone()
    return None if row is None else tuple(row)


def prelude_names(conn: sqlite3.Connection) -> list[str]:
    return [str(n) for (n,) in conn.execute("SELECT name FROM preludes ORDER BY name")]
