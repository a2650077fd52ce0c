"""`Registry`: the public Python API. The CLI is a thin layer over it.

Every write is one short ``BEGIN IMMEDIATE`` transaction that includes its
audit entry, so a version, its tests, provenance and "add" entry appear
together or not at all. Sandbox runs (verify, call) happen *outside* any
transaction; only their results are written afterwards.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from ..sandbox.backends import Backends, Injected
from ..sandbox.contract import Backend, Cancel, Limits, Lock
from . import review, transparency
from .adding import (
    add_details,
    already_imported,
    draft,
    identical,
    import_details,
    imported_tool,
    new_tool,
    next_number,
    refuse_second_in_batch,
)
from .attest import ReviewKey, Verified, load_private_key, load_signer
from .audit import append_entry, list_entries, verify_chain
from .bundle import BundleEntry, build_bundle, bundle_header, read_bundle
from .calls import (
    DEFAULT_MAX_LIMITS,
    Caller,
    backend_name,
    job_limits,
    job_policy,
    prepare_runtime,
    start_backend,
)
from .checking import Checker, draft_finding, requirements, stored_finding, version_checks
from .checks import CheckRun, Finding
from .diffing import tool_diff
from .errors import (
    InvalidInput,
)
from .finding import find
from .flagging import flag_version
from .limits import operator_maxima, set_maxima, stored_maxima
from .listing import iter_audit, iter_bundle_entries, iter_newest
from .migrations import apply_migrations
from .models import (
    AddResult,
    AuditEntry,
    AuditReport,
    CallOutcome,
    Prelude,
    ProvenanceInput,
    TestCase,
    ToolDiff,
    ToolVersion,
    Verification,
)
from .parallel import workers_for
from .preludes import every_prelude, load_prelude, save_prelude
from .provenance import in_toto_statement
from .reading import exported_tools, newest_tools, resolve, resolved_refs
from .reading import history as tool_history
from .records import tool_of, verification_of_row, version_record
from .search import SearchHit
from .stats import UsageStats, usage
from .store import PerThreadDatabase, default_actor, default_registry_path, read_snapshot, write_transaction
from .store_review import reports_for
from .store_settings import delete_setting, put_setting, read_setting
from .store_versions import (
    SERVABLE,
    VersionRow,
    insert_version,
    latest_verification,
    name_exists,
    newest_per_name,
    pending_rows,
    version_rows,
)
from .verifying import run_cases, store_verification
from .versions import parse_reference

if TYPE_CHECKING:
    import sqlite_utils

    from .checking import BuildOptions, CompareOptions, FuzzOptions

__all__ = ["DEFAULT_MAX_LIMITS", "Registry", "default_registry_path"]


class Registry:
    """A tool registry in one SQLite file.

    ``Registry(path)`` opens (creating and migrating) the database. ``actor`` is
    recorded in provenance and every audit entry (default: $TOOLCRIB_ACTOR,
    else the OS user name). ``max_limits`` caps every declared or requested limit (default:
    the maxima stored in the registry by its operator, `toolcrib limits`). With
    ``create=False`` a missing database file raises NotFound instead of being
    created (read-only CLI commands use that). ``backends`` maps a backend's
    name to a backend (its owner closes it) or a factory of one (called on
    first use, closed with the registry), used by `call` and `verify` before
    the shared ones of `sandbox/backends.py`'s table: how tests run the
    registry on `toolcrib.sandbox.fake.FakeBackend`.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        actor: str | None = None,
        max_limits: Limits | None = None,
        create: bool = True,
        backends: Mapping[str, Injected] | None = None,
    ) -> None:
        self.path: Path = Path(path).expanduser() if path is not None else default_registry_path()
        self._actor: str = actor or default_actor()
        self._acting = threading.local()
        self._max_limits = max_limits
        # Injected backends first, then the table's shared ones (httpx's transport=).
        self._backends = Backends(backends)
        self._locks: dict[tuple[str, ...], Lock] = {}
        # One connection per thread (see PerThreadDatabase for why not a lock):
        # a Registry may be shared by the threads of a server.
        self._databases = PerThreadDatabase(self.path, create=create)
        try:
            apply_migrations(self.db, after=self._initialized)
        except BaseException:
            self._databases.close()
            raise

    @property
    def max_limits(self) -> Limits:
        """The maxima every declared or requested limit is capped by: the
        ``max_limits`` given, else the registry's own, the operator's choice
        (`registry.limits`, `toolcrib limits`), read afresh each time."""
        if self._max_limits is not None:
            return self._max_limits
        return stored_maxima(self.db.conn)

    @property
    def db(self) -> sqlite_utils.Database:
        """The calling thread's connection to the registry file."""
        return self._databases.get()

    @property
    def actor(self) -> str:
        """Who is acting, for provenance and audit entries (see `acting_as`)."""
        acting: str | None = getattr(self._acting, "actor", None)
        return acting or self._actor

    @contextmanager
    def acting_as(self, actor: str) -> Iterator[Registry]:
        """Within the block, this thread's writes are recorded as done by `actor`.

        For a server that shares one Registry among its clients (`toolcrib
        serve` audits each call as the client that made it); other threads
        keep their own actor."""
        previous = getattr(self._acting, "actor", None)
        self._acting.actor = actor
        try:
            yield self
        finally:
            self._acting.actor = previous

    def _initialized(self, applied: list[str]) -> None:
        if "m001_core" in applied:
            append_entry(self.db, actor=self.actor, event="init", details={"migrations": applied})

    path: Path

    def close(self) -> None:
        """Close every thread's database connection and the backends built from
        injected factories (the shared sandbox backends stay up)."""
        self._databases.close()
        self._backends.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internal reading ----------------------------------------------------
    def _rows(self, name: str) -> list[VersionRow]:
        return version_rows(self.db.conn, name)

    def _resolve(self, ref: str, *, allow_yanked: bool = True) -> VersionRow:
        return resolve(self.db.conn, ref, allow_yanked=allow_yanked)

    # -- writing -----------------------------------------------------------
    def add(
        self,
        source: str,
        *,
        name: str | None = None,
        entrypoint: str | None = None,
        tests: Iterable[TestCase | dict[str, Any]] | None = None,
        version: str | None = None,
        provenance: ProvenanceInput | None = None,
        limits: Limits | None = None,
        policy: str | None = None,
        strip_top_level: bool = False,
        markdown: bool | None = None,
        requires: Iterable[str] | None = None,
        prelude: str | None = None,
        prelude_name: str | None = None,
        allow_missing: bool = False,
        as_new_version: bool = False,
        namespace: str | None = None,
        progress: Callable[[str], None] | None = None,
        param_forms: Mapping[str, str] | None = None,
        batch: Mapping[str, str] | None = None,
    ) -> AddResult:
        """Admit and store a new version (or return the identical existing one).

        ``markdown=None`` detects an LLM Markdown reply (```python blocks) by itself.
        ``policy`` is the policy the tool needs: "restricted" (the default) or
        "plain" (ordinary Python, inside the restricted backend's OS jail or a
        Docker container); calls and verification use it unless overridden.
        It is part of the content hash when not the default. None: "plain"
        for a version with requirements (the restricted policy's module
        stand-ins cover no packages), else "restricted".

        ``requires`` (PEP 508 strings, e.g. "sympy>=1.12") are resolved once,
        here, to exact wheels (a `Lock`, `sandbox/packages.py`); ``prelude``
        is code run in the tool's namespace before it (a library's shared
        import block), or ``prelude_name`` names one stored with
        `set_prelude` (its requirements are added). Lock and prelude are
        stored with the version and covered by its hash. Admission refuses a
        tool that imports a module neither the standard library nor the lock
        provides, or reads a name nothing defines (tool, prelude, builtins),
        unless ``allow_missing`` (then they are notes). A new major version
        whose entrypoint body is unlike the newest one's (an unrelated tool
        that happens to share the name) is refused unless ``as_new_version``.
        ``namespace``: the name becomes ``NAMESPACE_name`` (names allow no
        dots), so a library's tools do not collide with others'.
        ``param_forms`` ({parameter: "dataframe" | "ndarray"}) declares the
        form of parameters without an annotation: their JSON is converted
        as for an annotated ``pd.DataFrame``/``np.ndarray``, and the
        declaration is part of the stored schema (and so of the hash).
        ``batch`` (a bulk add's names admitted so far, each with where it came
        from): a different tool under one of them is refused (ConflictError)
        unless ``as_new_version``: one run of tools holds one tool per name.
        Raises AdmissionError, TestsFormatError, ConflictError, NotFound
        (parent, prelude name), InvalidInput (requirements that do not resolve).

        Identical content (same name, same sha256) is a no-op: the existing
        version comes back with ``created=False``, nothing is written and
        nothing is audited. An explicit ``version`` must be valid semver and
        unused for this name (ConflictError otherwise, even if that version was
        yanked); it need not be the highest, so a fix can be back-ported.
        """
        d = draft(
            source,
            name=name,
            entrypoint=entrypoint,
            tests=tests,
            version=version,
            provenance=provenance,
            limits=limits,
            policy=policy,
            strip_top_level=strip_top_level,
            markdown=markdown,
            requires=requires,
            prelude=prelude,
            prelude_name=prelude_name,
            allow_missing=allow_missing,
            namespace=namespace,
            prelude_of=self.get_prelude,
            lock_of=lambda wants: self._lock(wants, progress),
            param_forms=param_forms,
        )
        with write_transaction(self.db):
            rows = self._rows(d.name)
            existing = identical(rows, d)
            if existing is not None:
                return AddResult(tool=existing, created=False, bump="existing", notes=d.notes)
            new_version, bump = next_number(rows, d, as_new_version=as_new_version)
            if batch is not None and not as_new_version:
                refuse_second_in_batch(d, batch, new_version)
            parent = self._parent(d.given)
            tool = new_tool(d, new_version, actor=self.actor, parent=parent)
            self._store(tool, "add", add_details(d, bump, parent))
        return AddResult(tool=tool, created=True, bump=bump, notes=d.notes)

    def _parent(self, given: ProvenanceInput) -> tuple[str, str] | None:
        """(ref, sha256) of the version `given` names as its parent; NotFound if none."""
        if given.parent is None:
            return None
        row = self._resolve(given.parent, allow_yanked=True)
        return row.ref, row.sha256

    def _lock(self, requires: builtins.list[str], progress: Callable[[str], None] | None) -> Lock:
        """Requirements resolved to a lock, once per distinct set for this
        Registry (a bulk add of a library resolves its shared requirements once)."""
        from ..sandbox.packages import PackagesError, check_requirement, resolve

        try:
            key = tuple(sorted({check_requirement(r) for r in requires}))
            cached = self._locks.get(key)
            if cached is None:
                cached = self._locks[key] = resolve(key, progress=progress)
        except PackagesError as exc:
            raise InvalidInput(f"requirements: {exc}") from None
        return cached

    # -- preludes --------------------------------------------------------------
    def set_prelude(self, name: str, text: str, *, requires: Iterable[str] = ()) -> Prelude:
        """Store (or replace) a named prelude. Versions copy its text at add
        time, so replacing it never changes a stored version. Audited."""
        return save_prelude(self.db, actor=self.actor, name=name, text=text, requires=requires)

    def get_prelude(self, name: str) -> Prelude:
        """A stored prelude; NotFound if there is none by that name."""
        return load_prelude(self.db, name)

    def preludes(self) -> builtins.list[Prelude]:
        """Every stored prelude, by name."""
        return every_prelude(self.db)

    def _store(self, tool: ToolVersion, event: str, details: dict[str, Any]) -> None:
        """Insert a new version and its audit entry (inside the caller's transaction)."""
        insert_version(self.db, version_record(tool))
        append_entry(self.db, actor=self.actor, event=event, tool=tool.ref, details=details)

    def _flag(self, ref: str, column: str, event: str, text: str) -> ToolVersion:
        with write_transaction(self.db):
            return flag_version(self.db, actor=self.actor, ref=ref, column=column, event=event, text=text)

    def deprecate(self, ref: str, message: str) -> ToolVersion:
        """Mark a version deprecated (still callable); the message is shown to users."""
        return self._flag(ref, "deprecated", "deprecate", message)

    def yank(self, ref: str, reason: str) -> ToolVersion:
        """Yank a version: NAME no longer resolves to it and pinned calls are refused
        unless allow_yanked. Its version number stays taken."""
        return self._flag(ref, "yanked", "yank", reason)

    # -- reading -----------------------------------------------------------
    def get(self, ref: str, *, allow_yanked: bool = True) -> ToolVersion:
        """Resolve NAME (newest non-yanked version), NAME@1.2.0 or NAME@sha256:<prefix>."""
        return tool_of(self._resolve(ref, allow_yanked=allow_yanked))

    def list(self, *, include_yanked: bool = False) -> list[ToolVersion]:
        """The newest version of every tool.

        That is the version NAME resolves to; tools whose every version is
        yanked appear (with their highest version) only with include_yanked."""
        with read_snapshot(self.db):
            return newest_tools(self.db.conn, include_yanked=include_yanked)

    def iter_list(
        self,
        *,
        include_yanked: bool = False,
        status: str | None = None,
        name_glob: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[ToolVersion]:
        """`list`, streamed (one version read at a time, in one read snapshot)
        and paged: only names matching `name_glob` (GLOB: ``*``, ``?``,
        ``[...]``), whose version has `status`, after the name `after` (a
        cursor: the last name of the previous page); `offset` skipped, at
        most `limit`."""
        return iter_newest(
            self.db,
            include_yanked=include_yanked,
            status=status,
            name_glob=name_glob,
            after=after,
            limit=limit,
            offset=offset,
        )

    def history(self, name: str) -> builtins.list[ToolVersion]:
        """Every version of one tool, oldest first (semver precedence)."""
        return tool_history(self.db.conn, name)

    def search(
        self,
        query: str,
        *,
        limit: int = 20,
        verified_only: bool = False,
        min_score: float | None = None,
    ) -> builtins.list[SearchHit]:
        """The newest versions that fit `query`, best first, each with its score.

        Any word may match (porter-stemmed, identifiers split into words); a
        hit's ``score`` (0..1) is the idf-weighted share of the query's words
        it covers, ``bm25`` breaks ties (see registry/search.py). Hits scoring
        below ``min_score`` (default FIT_THRESHOLD) are left out, so an empty
        list means "no tool fits"; ``min_score=0`` keeps every hit.
        ``verified_only`` keeps only versions that passed their tests."""
        with read_snapshot(self.db):
            return find(self.db, query, limit=limit, verified_only=verified_only, min_score=min_score)

    def diff(self, old_ref: str, new_ref: str) -> ToolDiff:
        """Unified diffs of source and signature JSON, and the semver bump the change implies."""
        return tool_diff(self.get(old_ref), self.get(new_ref))

    def provenance(self, ref: str) -> dict[str, Any]:
        """An in-toto Statement (v1) with a SLSA-style predicate for that version."""
        return in_toto_statement(self.get(ref))

    def usage(self, refs: Iterable[str] | None = None) -> dict[str, UsageStats]:
        """Calls, outcomes, median/p95 duration and last use per version, from
        the audit log. ``refs`` are resolved like `get` (NAME is its newest
        version); None means every version ever called."""
        with read_snapshot(self.db):
            return usage(self.db, resolved_refs(self.db.conn, refs))

    def verification(self, ref: str) -> Verification | None:
        """The newest stored verification evidence of that version, if any."""
        row = self._resolve(ref)
        found = latest_verification(self.db.conn, row.id)
        return None if found is None else verification_of_row(row.ref, found)

    def servable(self) -> builtins.list[tuple[str, str, str]]:
        """(name, version, sha256) of what a door serves, by name: per name, the
        highest version that is verified, not yanked and not deprecated
        (`store_versions.SERVABLE`) and that review lets run."""
        # Human review: only what may be called (registry/review.py).
        newest = newest_per_name(self.db.conn, SERVABLE, skip=review.held_back_ids(self.db.conn))
        return [(name, version, sha256) for name, (_id, version, sha256) in sorted(newest.items())]

    def pending(self) -> builtins.list[ToolVersion]:
        """Every version awaiting verification (unverified, not yanked), by
        name then version: what ``toolcrib verify --all`` runs."""
        with read_snapshot(self.db):
            return [tool_of(row) for row in pending_rows(self.db.conn)]

    def has_tool(self, name: str) -> bool:
        """Whether any version (yanked included) of `name` exists."""
        return name_exists(self.db.conn, name)

    # -- human review (registry/review.py, registry/attest.py) ---------------
    def review_mode(self) -> str:
        """Which versions need approval: none, models or all."""
        return review.review_mode(self.db.conn)

    def set_review(self, mode: str) -> bool:
        """Change which versions need approval (audited); False if unchanged."""
        with write_transaction(self.db):
            return review.set_mode(self.db.conn, mode, actor=self.actor)

    def review_allows(self, ref: str) -> bool:
        """Whether review lets this version be called (a door lists only those)."""
        row = self._resolve(ref)
        return review.allows(self.db.conn, row.id, row.ref)

    def review_queue(self) -> builtins.list[review.QueueItem]:
        """Versions waiting for a reviewer, oldest first, each with why."""
        with read_snapshot(self.db):
            return review.queue(self.db.conn)

    def decisions(self, ref: str) -> builtins.list[review.Decision]:
        """Every review decision on one version, oldest first."""
        return review.decisions(self.db.conn, self._resolve(ref))

    def _decide(self, ref: str, decision: str, note: str | None, key: str | Path | None) -> review.Decision:
        signer = None if key is None else load_signer(Path(key).expanduser(), name=self.actor)
        with write_transaction(self.db):
            row = self._resolve(ref)
            status = tool_of(row).status
            return review.decide(
                self.db.conn, row, decision=decision, actor=self.actor, note=note, signer=signer, status=status
            )

    def approve(self, ref: str, *, key: str | Path, note: str | None = None) -> review.Decision:
        """Approve a queued, verified version, signed by `key` (an Ed25519
        private key file the registry trusts). PolicyRefused otherwise."""
        return self._decide(ref, "approved", note, key)

    def reject(self, ref: str, reason: str, *, key: str | Path | None = None) -> review.Decision:
        """Reject a queued version with a reason (signed when `key` is given)."""
        return self._decide(ref, "rejected", reason, key)

    def task_rejection(self, task: str) -> review.Decision | None:
        """The newest rejection of a version `make` made for `task`, if any."""
        return review.task_rejection(self.db.conn, task)

    def trust_key(self, key: ReviewKey) -> bool:
        """Trust a reviewer's public key (audited); False if trusted already."""
        with write_transaction(self.db):
            return review.trust(self.db.conn, key, actor=self.actor)

    def untrust_key(self, keyid: str) -> None:
        """Stop trusting a key (audited): the approvals it signed stop counting."""
        with write_transaction(self.db):
            review.untrust(self.db.conn, keyid, actor=self.actor)

    def reviewer_keys(self) -> builtins.list[ReviewKey]:
        """The reviewer keys this registry trusts."""
        return review.trusted_keys(self.db.conn)

    def verify_attestations(self, ref: str) -> builtins.list[tuple[review.Decision, str | None]]:
        """Each decision on a version, with None when its envelope verifies
        against a trusted key, else why not."""
        with read_snapshot(self.db):
            return review.check_attestations(self.db.conn, self._resolve(ref))

    def attest_evidence(self, ref: str, *, key: str | Path) -> dict[str, Any]:
        """The version's newest verification evidence as an in-toto Test
        Result statement in a DSSE envelope signed by `key`."""
        signer = load_signer(Path(key).expanduser(), name=self.actor)
        with read_snapshot(self.db):
            return review.sign_evidence(self.db.conn, self._resolve(ref), signer)

    def verify_envelope(self, ref: str, envelope: Any) -> Verified:
        """Check a DSSE envelope (a review decision or signed evidence) against
        the trusted keys and the version's sha256; VerificationFailed otherwise."""
        with read_snapshot(self.db):
            return review.verify_any(self.db.conn, self._resolve(ref), envelope)

    def review_reports(self, ref: str) -> dict[str, builtins.list[dict[str, Any]]]:
        """Reports of the other verification steps about a version, when the
        registry has them (fuzzing, mutation: issue 19)."""
        row = self._resolve(ref)
        return reports_for(self.db.conn, row.id, row.sha256)

    # -- settings ----------------------------------------------------------
    def setting(self, key: str) -> str | None:
        """A registry-wide setting (e.g. the LATM loop's model), None if unset."""
        return read_setting(self.db.conn, key)

    def set_setting(self, key: str, value: str | None) -> None:
        """Set (or, with None, clear) a setting, with its ``setting`` audit entry."""
        if value is not None and not value.strip():
            raise InvalidInput(f"{key} must not be empty")
        with write_transaction(self.db):
            if value is None:
                delete_setting(self.db.conn, key)
            else:
                put_setting(self.db.conn, key, value, actor=self.actor)
            append_entry(self.db, actor=self.actor, event="setting", details={"key": key, "value": value})

    def operator_maxima(self) -> dict[str, Any]:
        """Each limit maximum the operator set, with who set it and when."""
        return operator_maxima(self.db.conn)

    def set_maxima(self, changes: Mapping[str, float] | None = None, *, unset: Iterable[str] = ()) -> Limits:
        """Set some maxima and return others (``unset``) to their defaults, in
        one transaction with a ``setting`` audit entry each; the new maxima
        (`limits.set_maxima`; `toolcrib limits`)."""
        return set_maxima(self.db.conn, actor=self.actor, changes=changes, unset=builtins.list(unset))

    # -- running -----------------------------------------------------------
    def verify(
        self,
        ref: str,
        *,
        backend: str | None = None,
        limits: dict[str, float] | None = None,
        policy: str | None = None,
        on_case: Callable[[int, int], None] | None = None,
        no_build: bool = False,
        progress: Callable[[str], None] | None = None,
        requirements: bool = True,
    ) -> Verification:
        """Run every test case (each in its own fresh sandbox), store evidence and verdict.

        ``limits`` overrides (e.g. {"cpu": 10}) must stay within ``max_limits``.
        ``policy``: None means the tool's declared policy on the restricted
        backend and "plain" on Docker (see `calls.job_policy`); "restricted" on Docker
        is defence in depth. The evidence records the policy and the
        isolation layers in force for *every* case (the intersection of what
        the backend reported per case, in the first case's order): evidence
        never claims a layer that one case ran without.
        If any case finds the sandbox unavailable, SandboxUnavailable is
        raised and nothing is stored. ``no_build``/``progress``: as for `call`
        (a version with packages on Docker needs its runtime image).
        ``requirements``: when the tests pass, also run the checks the
        registry requires (`toolcrib checks`: a minimum mutation score, no
        fuzz findings) and return "failed" when the version misses them
        (registry/checking.py); False leaves that to the caller.
        """
        row = self._resolve(ref, allow_yanked=True)
        tool = tool_of(row)
        if not tool.tests:
            raise InvalidInput(f"{tool.ref} has no test cases: add it again with tests to verify it")
        limits_used = job_limits(tool.limits, self.max_limits, limits)
        backend = backend_name(backend)
        runner = start_backend(backend, self._backends)
        policy_used = job_policy(runner, policy, tool.policy)
        prepare_runtime(runner, tool.ref, tool.lock, no_build=no_build, progress=progress)
        verification = run_cases(tool, runner, backend=backend, limits=limits_used, policy=policy_used, on_case=on_case)
        with write_transaction(self.db):
            store_verification(
                self.db, actor=self.actor, version_id=row.id, verification=verification, limits=limits_used
            )
        if requirements and verification.status == "verified":
            reasons = self._checker().enforce_required(
                tool.ref, backend=backend, limits=limits, policy=policy, no_build=no_build, progress=progress
            )
            if reasons:
                verification = verification.model_copy(update={"status": "failed"})
        return verification

    def call(
        self,
        ref: str,
        args: dict[str, Any] | None = None,
        *,
        snippet: str | None = None,
        backend: str | None = None,
        limits: dict[str, float] | None = None,
        policy: str | None = None,
        allow_unverified: bool = False,
        allow_yanked: bool = False,
        cancel: Cancel | None = None,
        no_build: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> CallOutcome:
        """Validate arguments against the version's stored input schema, run, audit, return.

        Raises PolicyRefused (unverified/yanked), ArgumentsError, NotFound.
        Tool errors and limits are *outcomes* (status), not exceptions; so is a
        sandbox that cannot run (status "unavailable", exit code 6 in the CLI).
        Refused and invalid calls are audited too (status "refused"/"invalid").
        ``cancel``: cancelling it from another thread kills the sandboxed
        process; the outcome is then an error of type "Cancelled" (audited as
        status "cancelled").
        ``no_build``: a version that needs packages whose Docker runtime
        image is missing is "unavailable" (naming the command that builds
        it) instead of building it first, with ``progress`` lines.
        """
        return self.caller().call(
            ref,
            args,
            snippet=snippet,
            backend=backend,
            limits=limits,
            policy=policy,
            allow_unverified=allow_unverified,
            allow_yanked=allow_yanked,
            cancel=cancel,
            no_build=no_build,
            progress=progress,
        )

    def backend(self, name: str | None = None) -> Backend:
        """The backend called `name` as this registry's calls get it (an
        injected one first, then the table's shared one): how a door warms
        the sandbox up without reaching past the registry into it. None:
        this machine's default (`calls.backend_name`)."""
        return start_backend(backend_name(name), self._backends)

    def parallelism(self, backend: str | None = None) -> int:
        """How many calls (or verifications) to keep in flight on `backend`:
        one per spare sandbox it keeps ready, capped by this machine's cores
        unless its calls run elsewhere (a Ray cluster's actors)."""
        return workers_for(self.backend(backend))

    def caller(self) -> Caller:
        """The running module (`registry/calls.py`) on this thread's
        connection, as this registry's actor, maxima and backends: what
        `call` forwards to, and how a door runs calls without reaching for
        the connection itself."""
        return Caller(self.db.conn, actor=self.actor, max_limits=self.max_limits, backends=self._backends)

    # -- checks beyond the tests (issue 19, registry/checking.py) -------------
    def _checker(self) -> Checker:
        return Checker(self.db, actor=self.actor, backends=self._backends, max_limits=self.max_limits)

    def fuzz(self, ref: str, n: int, **options: Unpack[FuzzOptions]) -> CheckRun:
        """Run `n` argument sets generated from the version's input schema
        (seeded: the same ``seed``, default 0, the same inputs) in the sandbox, with the
        limits and policy `verify` uses; store and return what they show
        (docs/verification.md). Bounded by ``budget`` seconds (None: 60). ExtraMissing
        without the ``fuzz`` extra. ``backend``, ``limits``, ``policy``,
        ``no_build`` and ``progress``: as for `verify` (checking.FuzzOptions)."""
        return self._checker().fuzz(ref, n, **options)

    def compare(self, ref: str, **options: Unpack[CompareOptions]) -> CheckRun | None:
        """Run the predecessor's test cases (and ``n`` generated inputs, default 0,
        from ``seed``) through this version and the one it replaces (the highest lower
        version, not yanked), each in the sandbox; store and return every
        input where they answer differently. A patch release that changes
        an answer on the predecessor's own tests is ``summary["flagged"]``.
        None when the version replaces none. ``budget``, ``backend``,
        ``limits``, ``policy``: as for `fuzz` (checking.CompareOptions)."""
        return self._checker().compare(ref, **options)

    def mutants(self, ref: str, **options: Unpack[BuildOptions]) -> CheckRun:
        """Mutation testing: small changes to the tool's code (operators,
        constants and boundaries, a removed statement, a swapped return),
        each run against the stored tests in the sandbox; store and return
        the score (killed of those that ran) and the surviving mutants as
        diffs (registry/mutants.py). Bounded by ``budget`` seconds (None: 60).
        The other options as for `fuzz` (checking.BuildOptions)."""
        return self._checker().mutants(ref, **options)

    def enforce_requirements(
        self, ref: str, *, fuzzed: CheckRun | None, mutated: CheckRun | None
    ) -> builtins.list[str]:
        """Hold a version to the registry's requirements beyond its tests
        (`toolcrib checks`: a minimum mutation score, no fuzz findings)
        given the check runs just made: the reasons it misses them (a
        verified version then becomes 'failed', audited), else []."""
        return self._checker().hold(ref, requirements(self.setting), fuzzed, mutated)

    def checks(self, ref: str) -> builtins.list[CheckRun]:
        """The newest run of each check of a version (fuzz, predecessor,
        mutants), with its findings: what `show` and a reviewer read."""
        return version_checks(self.db, ref)

    def finding(self, finding_id: int) -> tuple[Finding, str]:
        """A stored finding and the reference of its version; NotFound if none."""
        return stored_finding(self.db, finding_id)

    def draft_case(
        self, finding_id: int, *, expected: Any = None, has_expected: bool = False
    ) -> tuple[dict[str, Any], str]:
        """The test case a finding becomes, for a tests file: its input as
        ``args``; ``expected`` only when a person gives one (otherwise the
        case has none, and `add` refuses it until one is written). Audited."""
        return draft_finding(
            self.db, actor=self.actor, finding_id=finding_id, expected=expected, has_expected=has_expected
        )

    # -- audit -------------------------------------------------------------
    def audit(
        self,
        *,
        tool: str | None = None,
        event: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[AuditEntry]:
        """Audit entries, oldest first. `tool` is NAME (every version) or
        NAME@VERSION; `since` an ISO 8601 date or time (UTC if no zone);
        `limit` keeps the newest N of the matches."""
        return list_entries(self.db, tool=tool, event=event, since=since, limit=limit)

    def iter_audit(
        self,
        *,
        tool: str | None = None,
        event: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> Iterator[AuditEntry]:
        """`audit`, streamed: the same entries, one read at a time."""
        return iter_audit(self.db, tool=tool, event=event, since=since, limit=limit)

    def audit_verify(self) -> AuditReport:
        """Recompute the hash chain; the first bad seq and what is wrong, if any."""
        with read_snapshot(self.db):
            return verify_chain(self.db)

    def audit_checkpoint(self, key: str | Path) -> str:
        """The signed checkpoint (C2SP signed note) of the whole audit log,
        signed with the Ed25519 private key file `key` (registry/transparency.py)."""
        private = load_private_key(Path(key).expanduser())
        with read_snapshot(self.db):
            return transparency.checkpoint(self.db.conn, private)

    def audit_prove(self, seq: int) -> dict[str, Any]:
        """An RFC 9162 inclusion proof of entry `seq` in today's log (JSON-ready)."""
        with read_snapshot(self.db):
            return transparency.prove_entry(self.db.conn, seq)

    def audit_prove_since(self, checkpoint: str) -> dict[str, Any]:
        """An RFC 9162 consistency proof that today's log extends `checkpoint`."""
        with read_snapshot(self.db):
            return transparency.prove_since(self.db.conn, checkpoint)

    def audit_verify_checkpoint(self, checkpoint: str, verifiers: builtins.list[str] | None = None) -> str:
        """Check a checkpoint against the log (VerificationFailed naming what fails)."""
        with read_snapshot(self.db):
            return transparency.verify_checkpoint(self.db.conn, checkpoint, verifiers)

    # -- bundles -------------------------------------------------------------
    def export(self, refs: Iterable[str] | None = None) -> dict[str, Any]:
        """A portable JSON bundle (all versions of the named tools, or everything).

        Each reference picks a tool by name (a version or digest in it just has
        to exist); every version of that tool goes in, yanked ones included."""
        with read_snapshot(self.db):
            bundle = build_bundle(exported_tools(self.db.conn, refs))
            # Signed review decisions travel with their versions (issue 18).
            carried = review.exported_attestations(
                self.db.conn, {f"{t['name']}@{t['version']}" for t in bundle["tools"]}
            )
            if carried:
                bundle["attestations"] = carried
            return bundle

    def iter_export(self, refs: Iterable[str] | None = None) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
        """`export` streamed: the bundle's header fields and its ``tools``
        entries, one version at a time (in one read snapshot), in the same order."""
        head = bundle_header()
        # Signed review decisions travel with their versions (issue 18), in the
        # header: every version of each named tool, as the entries are.
        refs = None if refs is None else builtins.list(refs)
        names = None if refs is None else {parse_reference(r).name for r in refs}
        carried = review.exported_attestations(self.db.conn, names=names)
        if carried:
            head["attestations"] = carried
        return head, iter_bundle_entries(self.db, refs)

    def import_bundle(self, bundle: dict[str, Any]) -> builtins.list[AddResult]:
        """Import a bundle, checking every digest; all-or-nothing.

        Versions already present with the same sha256 are skipped
        (created=False); the same name@version with other content refuses
        the whole bundle. New versions start unverified (evidence from another
        registry is not trusted) and get one "import" audit entry each.
        """
        entries = read_bundle(bundle)
        exported_at = bundle.get("exported_at")
        results: list[AddResult] = []
        with write_transaction(self.db):
            for entry in entries:
                results.append(self._import_entry(entry, exported_at))
            # Approvals count only when signed by a key this registry trusts.
            review.import_attestations(self.db.conn, bundle.get("attestations"), actor=self.actor)
        return results

    def _import_entry(self, entry: BundleEntry, exported_at: Any) -> AddResult:
        rows = self._rows(entry.name)
        existing = already_imported(rows, entry)
        if existing is not None:
            return AddResult(tool=existing, created=False, bump="existing")
        tool = imported_tool(entry)
        self._store(tool, "import", import_details(entry, exported_at))
        return AddResult(tool=tool, created=True, bump="explicit")
