"""`list`'s page and `show`'s version on a plain `sqlite3` connection, as
plain values (issue 21).

Why a module of its own: a one-shot `toolcrib list` or `toolcrib show`
paid for pydantic, sqlite-utils and the whole `Registry` (about 200 ms on
the shared machine) before it read a page of 20 rows or one version. Here
the rows become small frozen dataclasses with the attribute names of
`ToolVersion`, `Verification` and `UsageStats` (what the CLI's tables and
`show` read), built exactly as records.py builds the models from the same
rows; `--json` output, which is the models' own dump, still goes through
`Registry`. Nothing here imports pydantic or sqlite-utils, except the
checks of a version that has stored check runs (registry/checks.py, read
only then).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .choosing import resolve
from .errors import InvalidInput
from .store_listing import newest_page
from .store_versions import VersionFields

# What `show` needs beyond a page of `list` is imported by `shown_version`:
# a first page imports the store's listing and nothing more.
if TYPE_CHECKING:
    from ..sandbox.contract import Limits, Lock
    from .checks import CheckRun

__all__ = [
    "STATUSES",
    "Evidence",
    "Listed",
    "PlainReader",
    "Shown",
    "VersionView",
    "check_page",
    "newest_listed",
    "shown_version",
]

STATUSES = ("unverified", "verified", "failed")


def check_page(status: str | None, limit: int | None, offset: int) -> None:
    """A listing's filters, refused before any row is read (InvalidInput)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    for value, what in ((limit, "limit"), (offset, "offset")):
        if value is not None and value < 0:
            raise InvalidInput(f"{what} must be zero or more")


@dataclass(frozen=True)
class Description:
    """What a listing reads of a version's signature."""

    description: str | None


@dataclass(frozen=True)
class Listed:
    """One row of `list`: the version a name resolves to."""

    name: str
    version: str
    status: str
    deprecated: str | None
    yanked: str | None
    signature: Description


def newest_listed(
    conn: sqlite3.Connection,
    *,
    include_yanked: bool = False,
    status: str | None = None,
    name_glob: str | None = None,
    after: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[Listed]:
    """`Registry.iter_list`'s rows, plain. Bad arguments raise here, before any row is read."""
    check_page(status, limit, offset)
    rows = newest_page(
        conn,
        include_yanked=include_yanked,
        status=status,
        name_glob=name_glob,
        after=after,
        limit=limit,
        offset=offset,
    )
    return (
        Listed(
            name=row[1],
            version=row[2],
            status=row[9],
            deprecated=row[10],
            yanked=row[11],
            signature=Description(json.loads(row[6]).get("description")),
        )
        for row in rows
    )


@dataclass(frozen=True)
class SignatureView:
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    untyped: list[str] = field(default_factory=list)
    description: str | None = None


@dataclass(frozen=True)
class CaseView:
    name: str | None = None
    args: dict[str, Any] | None = None
    snippet: str | None = None
    expected: Any = None
    comparator: str = "exact"
    tolerance: float | None = None


@dataclass(frozen=True)
class ProvenanceView:
    registered_by: str
    registered_at: str
    source_sha256: str
    generator: str | None = None
    prompt: str | None = None
    prompt_sha256: str | None = None
    parent: str | None = None
    parent_sha256: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionView:
    """A version's stored row, read as `records.version_of_row` reads it."""

    name: str
    version: str
    sha256: str
    entrypoint: str
    source: str
    signature: SignatureView
    tests: list[CaseView]
    limits: Limits | None
    policy: str
    lock: Lock | None
    prelude: str | None
    status: str
    deprecated: str | None
    yanked: str | None
    provenance: ProvenanceView
    created_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def requires(self) -> list[str]:
        return list(self.lock.requirements) if self.lock else []


def version_view(row: tuple[Any, ...]) -> VersionView:
    """A whole `versions` row (VERSION_COLUMNS order) as `records.version_of_row` reads it."""
    from ..sandbox.contract import Limits
    from .pyast import stored_in_declared_order
    from .versions import stored_lock

    f = VersionFields._make(row)
    sig = json.loads(f.signature)
    return VersionView(
        name=f.name,
        version=f.version,
        sha256=f.sha256,
        entrypoint=f.entrypoint,
        source=f.source,
        signature=SignatureView(
            input_schema=stored_in_declared_order(sig["input_schema"], f.source, f.entrypoint),
            output_schema=sig.get("output_schema"),
            untyped=sig.get("untyped") or [],
            description=sig.get("description"),
        ),
        tests=[CaseView(**case) for case in json.loads(f.tests)],
        limits=Limits.from_json(json.loads(f.limits)) if f.limits else None,
        policy=f.policy,
        lock=stored_lock(f"{f.name}@{f.version}", f.lock),
        prelude=f.prelude,
        status=f.status,
        deprecated=f.deprecated,
        yanked=f.yanked,
        provenance=ProvenanceView(
            generator=f.generator,
            prompt=f.prompt,
            prompt_sha256=f.prompt_sha256,
            parent=f.parent,
            parent_sha256=f.parent_sha256,
            registered_by=f.registered_by,
            registered_at=f.registered_at,
            source_sha256=f.source_sha256,
            metadata=json.loads(f.metadata),
        ),
        created_at=f.created_at,
    )


@dataclass(frozen=True)
class Evidence:
    """What `show` prints of a version's newest verification."""

    status: str
    backend: str
    policy: str | None
    layers: list[str]
    passed: int
    failed: int
    verified_at: str


@dataclass(frozen=True)
class Usage:
    """`stats.UsageStats`'s fields, plain."""

    tool: str
    calls: int
    successes: int
    errors: int
    blocked: int
    limit_hits: int
    refused: int
    unavailable: int
    median_ms: float | None
    p95_ms: float | None
    last_used: str | None


@dataclass(frozen=True)
class Shown:
    """Everything `show` prints of one version, read in one snapshot."""

    tool: VersionView
    evidence: Evidence | None
    usage: Usage
    max_limits: Limits
    checks: list[CheckRun]


def shown_version(conn: sqlite3.Connection, ref: str) -> Shown:
    """The version `ref` resolves to (yanked ones too, as `Registry.get`),
    its newest verification, usage, the registry's maxima and its checks."""
    from .limits import stored_maxima
    from .store import conn_snapshot
    from .store_checks import latest_check_rows
    from .store_versions import latest_verification
    from .usage_numbers import usage_numbers

    with conn_snapshot(conn):
        row = resolve(conn, ref)
        tool = version_view(row.full())
        found = latest_verification(conn, row.id)
        evidence = None
        if found is not None:
            _sha, status, backend, policy, layers, _digest, passed, failed, _cases, verified_at = found
            evidence = Evidence(status, backend, policy, json.loads(layers), passed, failed, verified_at)
        usage = Usage(**usage_numbers(conn, [row.ref])[row.ref])
        checks: list[CheckRun] = []
        if latest_check_rows(conn, row.id):
            from .checks import latest_checks  # pydantic: only for a version with stored checks

            checks = latest_checks(conn, row.ref, row.id)
        return Shown(tool, evidence, usage, stored_maxima(conn), checks)


class PlainReader:
    """The reads above on one connection (the CLI's `open_reader`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def listed(self, **page: Any) -> Iterator[Listed]:
        """See `newest_listed`."""
        return newest_listed(self._conn, **page)

    def shown(self, ref: str) -> Shown:
        """See `shown_version`."""
        return shown_version(self._conn, ref)
