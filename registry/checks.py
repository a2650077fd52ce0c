"""Checks beyond a version's own tests (issue 19, docs/verification.md):
their public data types, and storing and reading them as evidence of the
version (the ``checks`` and ``findings`` tables, `store_checks`).

A check run (`CheckRun`) is one fuzz, predecessor or mutants run with its
settings and summary; each `Finding` is one thing it found, with the input
that shows it. A finding can be drafted into a test case
(`draft_case`): the arguments come from the finding, the expected value
never does (a person writes it).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .audit import append_entry, cap_value
from .errors import InvalidInput, NotFound
from .store import utc_now
from .store_checks import (
    check_kind,
    check_rows,
    finding_row,
    finding_rows,
    insert_check,
    insert_finding,
    latest_check_rows,
    mark_drafted,
)
from .versions import canonical_json

if TYPE_CHECKING:
    import sqlite3

    import sqlite_utils

    from .models import ToolVersion

__all__ = [
    "CheckKind",
    "CheckRun",
    "Finding",
    "StartedRun",
    "check_budget",
    "check_runs",
    "draft_case",
    "finding_by_id",
    "latest_checks",
    "record_draft",
    "store_check",
]

CheckKind = Literal["fuzz", "predecessor", "mutants"]

# A stored finding keeps bounded copies of what it shows (inputs, results).
_VALUE_CAP = 4096


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Finding(_Model):
    """One thing a check found about a version.

    ``kind``: for fuzzing, ``exception`` (an undocumented exception on
    schema-valid input), ``blocked`` (the policy refused the tool on that
    input), ``limit`` (a limit hit on a small input), ``return_schema`` (a
    result the declared return type forbids), ``not_json`` (a result that is
    not JSON), ``nondeterministic`` (two runs of one input, two results);
    for the predecessor check, ``changed_answer``; for mutants,
    ``surviving_mutant``. ``input`` is the (shrunk) arguments that show it."""

    id: int | None = None
    check: CheckKind
    kind: str
    summary: str
    input: dict[str, Any] | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    drafted_by: str | None = Field(None, description="who drafted a test case from this finding")
    drafted_at: str | None = None


class CheckRun(_Model):
    """One run of a check of one version: its settings, its summary and its findings."""

    id: int | None = None
    tool: str = Field(description="name@version")
    sha256: str
    kind: CheckKind
    settings: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)
    backend: str
    policy: str | None = None
    ran_by: str | None = None
    ran_at: str | None = None
    findings: list[Finding] = Field(default_factory=list)


def check_budget(budget: float) -> float:
    """A check's budget in seconds; InvalidInput unless it is a positive number."""
    if not (isinstance(budget, (int, float)) and budget > 0):
        raise InvalidInput("--budget must be a positive number of seconds")
    return float(budget)


class StartedRun:
    """A check of one version, started now with a budget of seconds: when
    the budget runs out (`deadline`), and once done, its run (`finish`)."""

    def __init__(
        self,
        tool: ToolVersion,
        kind: CheckKind,
        *,
        budget: float,
        settings: dict[str, Any],
        backend: str,
        policy: str | None,
    ) -> None:
        self.tool, self.kind, self.settings, self.backend, self.policy = tool, kind, settings, backend, policy
        self.started = time.monotonic()
        self.deadline = self.started + float(budget)

    def finish(self, summary: dict[str, Any], findings: list[Finding]) -> CheckRun:
        """The run with its `summary` (and how long it took, ``duration_ms``) and `findings`."""
        summary["duration_ms"] = round((time.monotonic() - self.started) * 1000, 1)
        return CheckRun(
            tool=self.tool.ref,
            sha256=self.tool.sha256,
            kind=self.kind,
            settings=self.settings,
            summary=summary,
            backend=self.backend,
            policy=self.policy,
            findings=findings,
        )


def store_check(db: sqlite_utils.Database, *, actor: str, version_id: int, run: CheckRun) -> CheckRun:
    """The run, its findings and a ``check`` audit entry (inside the caller's
    write transaction); the run as stored (ids, who and when)."""
    at = utc_now()
    check_id = insert_check(
        db.conn,
        {
            "version_id": version_id,
            "sha256": run.sha256,
            "kind": run.kind,
            "settings": canonical_json(run.settings),
            "summary": canonical_json(run.summary),
            "backend": run.backend,
            "policy": run.policy,
            "ran_by": actor,
            "ran_at": at,
        },
    )
    stored: list[Finding] = []
    for finding in run.findings:
        args = None if finding.input is None else cap_value(finding.input, _VALUE_CAP)
        detail = cap_value(finding.detail, _VALUE_CAP)
        finding_id = insert_finding(
            db.conn,
            {
                "check_id": check_id,
                "version_id": version_id,
                "kind": finding.kind,
                "summary": finding.summary,
                "input": None if args is None else canonical_json(args),
                "detail": canonical_json(detail),
            },
        )
        stored.append(finding.model_copy(update={"id": finding_id}))
    append_entry(
        db,
        actor=actor,
        event="check",
        tool=run.tool,
        details={"kind": run.kind, "sha256": run.sha256, "findings": len(stored), **_audit_summary(run.summary)},
    )
    return run.model_copy(update={"id": check_id, "ran_by": actor, "ran_at": at, "findings": stored})


def _audit_summary(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("generated", "ran", "score", "killed", "survived", "mutants", "differing", "error", "budget_exhausted")
    return {key: summary[key] for key in keep if key in summary}


def _finding(row: tuple[Any, ...], check: str) -> Finding:
    _id, _check_id, _version_id, kind, summary, args, detail, drafted_by, drafted_at = row
    return Finding(
        id=_id,
        check=check,  # type: ignore[arg-type]
        kind=kind,
        summary=summary,
        input=None if args is None else json.loads(args),
        detail=json.loads(detail),
        drafted_by=drafted_by,
        drafted_at=drafted_at,
    )


def _runs(conn: sqlite3.Connection, ref: str, rows: list[tuple[Any, ...]]) -> list[CheckRun]:
    found: dict[int, list[tuple[Any, ...]]] = {}
    for row in finding_rows(conn, [int(r[0]) for r in rows]):
        found.setdefault(int(row[1]), []).append(row)
    runs = []
    for _id, _version_id, sha256, kind, settings, summary, backend, policy, ran_by, ran_at in rows:
        runs.append(
            CheckRun(
                id=_id,
                tool=ref,
                sha256=sha256,
                kind=kind,
                settings=json.loads(settings),
                summary=json.loads(summary),
                backend=backend,
                policy=policy,
                ran_by=ran_by,
                ran_at=ran_at,
                findings=[_finding(f, kind) for f in found.get(int(_id), [])],
            )
        )
    return runs


def latest_checks(conn: sqlite3.Connection, ref: str, version_id: int) -> list[CheckRun]:
    """The newest run of each kind of check of a version, with its findings, by kind."""
    return _runs(conn, ref, latest_check_rows(conn, version_id))


def check_runs(conn: sqlite3.Connection, ref: str, version_id: int, kind: str | None = None) -> list[CheckRun]:
    """Every run of the checks of a version (of one kind), oldest first."""
    return _runs(conn, ref, check_rows(conn, version_id, kind))


def finding_by_id(conn: sqlite3.Connection, finding_id: int) -> tuple[Finding, int]:
    """A stored finding and the id of its version; NotFound if there is none."""
    row = finding_row(conn, finding_id)
    if row is None:
        raise NotFound(f"no finding {finding_id}")
    return _finding(row, check_kind(conn, int(row[1]))), int(row[2])


def draft_case(finding: Finding, *, expected: Any = None, has_expected: bool = False) -> dict[str, Any]:
    """The test case a finding becomes (docs/tests-format.md): its input as
    ``args`` and a name that points back at it. ``expected`` only when a
    person gave one (``has_expected``); otherwise the case has no
    ``expected`` key, which every reader of tests refuses ("missing
    'expected'") until a person fills it in."""
    if finding.input is None:
        raise InvalidInput(f"finding {finding.id} has no input to make a test case of ({finding.kind})")
    case: dict[str, Any] = {"name": f"finding-{finding.id}", "args": finding.input}
    if has_expected:
        case["expected"] = expected
    return case


def record_draft(db: sqlite_utils.Database, *, actor: str, finding: Finding, tool: str) -> None:
    """Mark the finding drafted, with a ``draft-case`` audit entry (inside the caller's write transaction)."""
    assert finding.id is not None
    mark_drafted(db.conn, finding.id, actor=actor, at=utc_now())
    append_entry(db, actor=actor, event="draft-case", tool=tool, details={"finding": finding.id, "kind": finding.kind})
