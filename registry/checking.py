"""Running the checks beyond a version's own tests and storing what they
find (issue 19): what `Registry.fuzz`, `Registry.mutants`,
`Registry.compare` (a `Checker`, on the registry's connection, actor,
maxima and backends), `Registry.checks`, `Registry.finding` and
`Registry.draft_case` do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ..sandbox.backends import Backends
from ..sandbox.contract import Backend, Limits
from .audit import append_entry
from .calls import backend_name, job_limits, job_policy, prepare_runtime, start_backend
from .checks import CheckRun, Finding, draft_case, finding_by_id, latest_checks, record_draft, store_check
from .errors import ArgumentsError, ToolcribError
from .fuzzing import DEFAULT_BUDGET, DEFAULT_SEED, fuzz
from .mutants import mutation_check
from .predecessor import compare_versions, predecessor_row
from .reading import resolve
from .records import tool_of, version_of_row
from .schema_check import validate_stored_arguments
from .store import read_snapshot, write_transaction
from .store_settings import read_setting
from .store_versions import full_row, set_status, version_rows

if TYPE_CHECKING:
    import sqlite_utils

    from .models import ToolVersion

__all__ = [
    "DEFAULT_BUDGET",
    "FUZZ_SETTING",
    "MIN_SCORE_SETTING",
    "NO_FINDINGS_SETTING",
    "REQUIRED_FUZZ",
    "BuildOptions",
    "CheckOptions",
    "Checker",
    "CompareOptions",
    "FuzzOptions",
    "default_fuzz",
    "draft_finding",
    "enforce",
    "requirements",
    "stored_finding",
    "unmet",
    "version_checks",
]

# The registry setting that makes every `toolcrib verify` fuzz (N inputs).
FUZZ_SETTING = "verify.fuzz"


def default_fuzz(value: str | None) -> int | None:
    """The registry's default N for fuzzing from its setting's text
    (``verify.fuzz``, `Registry.setting`): None when unset or unreadable."""
    try:
        n = int(value) if value is not None else 0
    except ValueError:
        return None
    return n if n > 0 else None


def valid_arguments(tool: ToolVersion) -> Callable[[dict[str, Any]], bool]:
    """Whether generated arguments pass the registry's own check of a call's
    (the stored schema, integers strict): only those are run."""

    def valid(args: dict[str, Any]) -> bool:
        try:
            validate_stored_arguments(tool.signature.input_schema, args, function=tool.entrypoint)
        except ArgumentsError:
            return False
        return True

    return valid


def version_checks(db: sqlite_utils.Database, ref: str) -> list[CheckRun]:
    """The newest run of each check of a version, with its findings."""
    with read_snapshot(db):
        row = resolve(db.conn, ref, allow_yanked=True)
        return latest_checks(db.conn, row.ref, row.id)


def stored_finding(db: sqlite_utils.Database, finding_id: int) -> tuple[Finding, str]:
    """A stored finding and the reference of its version."""
    with read_snapshot(db):
        found, version_id = finding_by_id(db.conn, finding_id)
        row = full_row(db.conn, version_id)
    return found, version_of_row(row).ref if row is not None else "?"


def draft_finding(
    db: sqlite_utils.Database, *, actor: str, finding_id: int, expected: Any = None, has_expected: bool = False
) -> tuple[dict[str, Any], str]:
    """The test case a finding becomes (its expected value only if a person
    gave one) and the version's reference; the finding is marked drafted, audited."""
    found, ref = stored_finding(db, finding_id)
    case = draft_case(found, expected=expected, has_expected=has_expected)
    with write_transaction(db):
        record_draft(db, actor=actor, finding=found, tool=ref)
    return case, ref


# What a version needs, beyond its tests, to count as verified (settings).
MIN_SCORE_SETTING = "verify.min_mutation_score"
NO_FINDINGS_SETTING = "verify.require_no_findings"


def requirements(setting: Callable[[str], str | None]) -> dict[str, Any]:
    """The registry's requirements read through `setting` (`Registry.setting`):
    a minimum mutation score (0..1, or None) and whether fuzzing must find nothing."""
    try:
        score = float(setting(MIN_SCORE_SETTING) or "")
    except ValueError:
        score = None
    return {
        "min_mutation_score": score if score is not None and 0 <= score <= 1 else None,
        "require_no_findings": (setting(NO_FINDINGS_SETTING) or "").lower() in ("1", "true", "yes"),
    }


def unmet(reqs: dict[str, Any], fuzzed: CheckRun | None, mutated: CheckRun | None) -> list[str]:
    """Why these check runs do not meet the requirements (empty: they do)."""
    reasons = []
    minimum = reqs.get("min_mutation_score")
    if minimum is not None:
        score = mutated.summary.get("score") if mutated is not None else None
        if score is None:
            why = mutated.summary.get("error") if mutated is not None else None
            reasons.append(
                f"a mutation score of at least {minimum} is required and none was measured ({why or 'not run'})"
            )
        elif score < minimum:
            reasons.append(f"mutation score {score} is below the required {minimum}")
    if reqs.get("require_no_findings"):
        if fuzzed is None or fuzzed.summary.get("error") or not fuzzed.summary.get("ran"):
            reasons.append("fuzzing must run and find nothing, and it did not run")
        elif fuzzed.findings:
            reasons.append(f"fuzzing must find nothing, and it found {len(fuzzed.findings)} finding(s)")
    return reasons


def enforce(db: sqlite_utils.Database, *, actor: str, ref: str, reasons: list[str]) -> bool:
    """A verified version that misses the requirements becomes 'failed',
    with a ``verify`` audit entry giving the reasons; whether it changed."""
    if not reasons:
        return False
    with write_transaction(db):
        row = resolve(db.conn, ref, allow_yanked=True)
        if tool_of(row).status != "verified":
            return False
        set_status(db.conn, row.id, "failed")
        append_entry(
            db, actor=actor, event="verify", tool=row.ref, details={"status": "failed", "requirements": reasons}
        )
    return True


# Inputs fuzzed when the registry requires no findings and sets no N.
REQUIRED_FUZZ = 50


class CheckOptions(TypedDict, total=False):
    """How a check runs (defaults: `Checker._run`): its budget in seconds
    (None: DEFAULT_BUDGET), the backend's name, limit overrides (within the
    maxima) and the policy (None: the one verification uses)."""

    budget: float | None
    backend: str | None
    limits: dict[str, float] | None
    policy: str | None


class BuildOptions(CheckOptions, total=False):
    """`CheckOptions`, and as for `call`: whether a version's missing
    runtime (its packages) may not be built, and who hears how it goes."""

    no_build: bool
    progress: Callable[[str], None] | None


class FuzzOptions(BuildOptions, total=False):
    """`BuildOptions` and the seed of the generated inputs."""

    seed: int


class CompareOptions(CheckOptions, total=False):
    """`CheckOptions`, how many inputs to generate besides the
    predecessor's tests (0: none) and their seed."""

    n: int
    seed: int


@dataclass(frozen=True)
class Checker:
    """Runs the checks beyond a version's tests on the registry behind
    `db` with these maxima and backends, storing each run as `actor`
    (what `Registry.fuzz`, `mutants`, `compare` and `verify` call)."""

    db: sqlite_utils.Database
    actor: str
    backends: Backends
    max_limits: Limits

    def _store(self, version_id: int, run: CheckRun) -> CheckRun:
        with write_transaction(self.db):
            return store_check(self.db, actor=self.actor, version_id=version_id, run=run)

    def _run(
        self,
        ref: str,
        check: Callable[..., CheckRun],
        *,
        budget: float | None = None,
        backend: str | None = None,
        limits: dict[str, float] | None = None,
        policy: str | None = None,
        no_build: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> CheckRun:
        """``check(tool, runner, backend=, limits=, policy=, budget=)`` on
        one version, with the limits and policy its verification uses; the
        run, stored (with a ``check`` audit entry)."""
        row = resolve(self.db.conn, ref, allow_yanked=True)
        tool = tool_of(row)
        limits_used = job_limits(tool.limits, self.max_limits, limits)
        backend = backend_name(backend)
        runner = start_backend(backend, self.backends)
        policy_used = job_policy(runner, policy, tool.policy)
        prepare_runtime(runner, tool.ref, tool.lock, no_build=no_build, progress=progress)
        budget_used = DEFAULT_BUDGET if budget is None else budget
        run = check(tool, runner, backend=backend, limits=limits_used, policy=policy_used, budget=budget_used)
        return self._store(row.id, run)

    def fuzz(self, ref: str, n: int, *, seed: int = DEFAULT_SEED, **options: Unpack[BuildOptions]) -> CheckRun:
        """Fuzz one version with `n` inputs (see `_run`); the run and its findings, stored."""

        def check(tool: ToolVersion, runner: Backend, **job: Any) -> CheckRun:
            return fuzz(tool, runner, n=n, seed=seed, valid=valid_arguments(tool), **job)

        return self._run(ref, check, **options)

    def mutants(self, ref: str, **options: Unpack[BuildOptions]) -> CheckRun:
        """Mutation-test one version against its stored tests (see `_run`);
        the run (score, surviving mutants), stored."""
        return self._run(ref, mutation_check, **options)

    def compare(
        self,
        ref: str,
        *,
        n: int = 0,
        seed: int = DEFAULT_SEED,
        budget: float | None = None,
        backend: str | None = None,
        limits: dict[str, float] | None = None,
        policy: str | None = None,
    ) -> CheckRun | None:
        """Run the predecessor's tests (and `n` generated inputs) through a
        version and the one it replaces; the run, stored, or None when the
        version replaces none."""
        with read_snapshot(self.db):
            row = resolve(self.db.conn, ref, allow_yanked=True)
            previous = predecessor_row(version_rows(self.db.conn, row.name), row)
            if previous is None:
                return None
            new, old = tool_of(row), tool_of(previous)
        backend = backend_name(backend)
        runner = start_backend(backend, self.backends)
        for tool in (new, old):  # a version with packages needs its runtime (built if missing)
            prepare_runtime(runner, tool.ref, tool.lock, no_build=False, progress=None)
        run = compare_versions(
            new,
            old,
            runner,
            backend=backend,
            limits=(job_limits(new.limits, self.max_limits, limits), job_limits(old.limits, self.max_limits, limits)),
            policy=(job_policy(runner, policy, new.policy), job_policy(runner, policy, old.policy)),
            n=n,
            seed=seed,
            budget=DEFAULT_BUDGET if budget is None else budget,
            valid=(valid_arguments(new), valid_arguments(old)),
        )
        return self._store(row.id, run)

    def hold(self, ref: str, reqs: dict[str, Any], fuzzed: CheckRun | None, mutated: CheckRun | None) -> list[str]:
        """Hold a version to the requirements `reqs` given these check runs
        (`unmet`, then `enforce`): the reasons it misses them, [] when none."""
        reasons = unmet(reqs, fuzzed, mutated)
        enforce(self.db, actor=self.actor, ref=ref, reasons=reasons)
        return reasons

    def enforce_required(self, ref: str, **options: Unpack[BuildOptions]) -> list[str]:
        """After a verification that passed: run the checks the registry
        requires (`toolcrib checks`: mutation testing for a minimum score,
        fuzzing for no findings), store them, and hold the version to them
        (`hold`); the reasons it misses them, [] when it meets them or
        nothing is required."""
        reqs = requirements(lambda key: read_setting(self.db.conn, key))
        if reqs["min_mutation_score"] is None and not reqs["require_no_findings"]:
            return []
        mutated = fuzzed = None
        try:
            if reqs["min_mutation_score"] is not None:
                mutated = self.mutants(ref, **options)
            if reqs["require_no_findings"]:
                n = default_fuzz(read_setting(self.db.conn, FUZZ_SETTING)) or REQUIRED_FUZZ
                fuzzed = self.fuzz(ref, n, **options)
        except ToolcribError as exc:
            # Fail closed: a required check that cannot run (no fuzz extra, no
            # sandbox) leaves the version unverified, then the error goes on.
            enforce(self.db, actor=self.actor, ref=ref, reasons=[f"a required check could not run: {exc}"])
            raise
        return self.hold(ref, reqs, fuzzed, mutated)
