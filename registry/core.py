"""`Registry`: the public Python API. The CLI is a thin layer over it.

Every write is one short ``BEGIN IMMEDIATE`` transaction that includes its
audit entry, so a version, its tests, provenance and "add" entry appear
together or not at all. Sandbox runs (verify, call) happen *outside* any
transaction; only their results are written afterwards.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any


from ..sandbox.contract import Cancel, ErrorInfo, Limits, Lock, Result
from .admission import MAX_SOURCE_BYTES, admit, check_name, find_missing, refuse_missing
from .audit import append_entry, cap_value, list_entries, verify_chain
from .bundle import BundleEntry, build_bundle, read_bundle
from .calls import (
    DEFAULT_MAX_LIMITS,
    Caller,
    choose_version,
    job_limits,
    job_policy,
    policy_name,
    prepare_runtime,
    sandbox_job,
    start_backend,
)
from .cases import compare, parse_tests
from .errors import (
    AdmissionError,
    BundleError,
    ConflictError,
    InvalidInput,
    NotFound,
    SandboxUnavailable,
)
from .limits import stored_maxima
from .migrations import apply_migrations
from .models import (
    AddResult,
    AuditEntry,
    AuditReport,
    Bump,
    CallOutcome,
    Prelude,
    CaseEvidence,
    Provenance,
    ProvenanceInput,
    Signature,
    TestCase,
    ToolDiff,
    ToolVersion,
    Verification,
)
from .provenance import build_provenance, in_toto_statement
from .search import FIT_THRESHOLD, SearchHit, rank, tool_index_terms
from .pyast import function_body
from .signature import bump_kind, derive_signature
from .stats import UsageStats, usage
from .store_versions import (
    NEWEST,
    NEWEST_OR_YANKED,
    SERVABLE,
    VersionRow,
    full_row,
    full_rows,
    insert_verification,
    insert_version,
    latest_verification,
    name_exists,
    newest_per_name,
    prelude_names,
    prelude_row,
    set_status,
    set_version_flag,
    tool_names,
    upsert_prelude,
    verified_ids,
    version_rows,
)
from .store_settings import delete_setting, put_setting, read_setting
from .store import PerThreadDatabase, default_actor, default_registry_path, read_snapshot, utc_now, write_transaction
from .versions import (
    SemVer,
    DEFAULT_POLICY,
    canonical_json,
    content_sha256,
    next_version,
    parse_reference,
    parse_version,
    sha256_text,
    stored_lock,
)

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["DEFAULT_MAX_LIMITS", "Registry", "default_registry_path"]


# Evidence keeps a bounded copy of what a test case returned.
_EVIDENCE_CAP = 4096

# How alike two entrypoint bodies must be (difflib ratio of their normalized
# text) for a new major version of a name to count as the same tool changing.
_RELATED_BODY = 0.5


def _tool(row: VersionRow) -> ToolVersion:
    """The whole version a row names (read now, for the one row chosen)."""
    return _row_version(row.full())


def _row_version(row: sqlite3.Row | tuple[Any, ...]) -> ToolVersion:
    (
        _id, name, version, sha256, entrypoint, source, signature, tests, limits, status, deprecated, yanked,
        created_at, generator, prompt, prompt_sha256, parent, parent_sha256, registered_by, registered_at,
        source_sha256, metadata, policy, lock, prelude,
    ) = row
    return ToolVersion(
        name=name,
        version=version,
        sha256=sha256,
        entrypoint=entrypoint,
        source=source,
        signature=Signature.model_validate(json.loads(signature)),
        tests=[TestCase.model_validate(t) for t in json.loads(tests)],
        limits=Limits.from_json(json.loads(limits)) if limits else None,
        policy=policy,
        lock=stored_lock(f"{name}@{version}", lock),
        prelude=prelude,
        status=status,
        deprecated=deprecated,
        yanked=yanked,
        provenance=Provenance(
            generator=generator,
            prompt=prompt,
            prompt_sha256=prompt_sha256,
            parent=parent,
            parent_sha256=parent_sha256,
            registered_by=registered_by,
            registered_at=registered_at,
            source_sha256=source_sha256,
            metadata=json.loads(metadata),
        ),
        created_at=created_at,
    )


def _prelude_text(text: str | None) -> str | None:
    """A prelude as stored: Unicode text that parses, "\n" line endings;
    None stays None (no prelude)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput("a prelude must be text")
    body = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("the prelude is not Unicode text (it holds a lone surrogate)") from None
    if size > MAX_SOURCE_BYTES:
        raise InvalidInput(f"the prelude is {size} bytes; the limit is {MAX_SOURCE_BYTES}")
    if not body.strip():
        raise InvalidInput("the prelude is empty")
    try:
        ast.parse(body)
    except SyntaxError as exc:
        raise AdmissionError(f"the prelude does not parse: {exc.msg} (prelude line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError):
        raise AdmissionError("the prelude cannot be parsed") from None
    return body.rstrip() + "\n"


def _unrelated(old: ToolVersion, source: str, entrypoint: str) -> bool:
    """True when the entrypoint's body shares little with the old version's:
    with an incompatible signature too, that is another tool, not a change."""
    try:
        before, after = function_body(old.source, old.entrypoint), function_body(source, entrypoint)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return difflib.SequenceMatcher(None, before, after, autojunk=False).ratio() < _RELATED_BODY



def _version_record(tool: ToolVersion) -> dict[str, Any]:
    prov = tool.provenance
    return {
        "name": tool.name,
        "version": tool.version,
        "sha256": tool.sha256,
        "entrypoint": tool.entrypoint,
        "source": tool.source,
        "signature": canonical_json(tool.signature.model_dump(mode="json")),
        "tests": canonical_json([t.model_dump(mode="json") for t in tool.tests]),
        "limits": canonical_json(tool.limits.to_json()) if tool.limits else None,
        "policy": tool.policy,
        "requires": canonical_json(tool.requires) if tool.lock else None,
        "lock": canonical_json(tool.lock.to_json()) if tool.lock else None,
        "prelude": tool.prelude,
        "description": tool.signature.description,
        "status": tool.status,
        "deprecated": tool.deprecated,
        "yanked": tool.yanked,
        "created_at": tool.created_at,
        "generator": prov.generator,
        "prompt": prov.prompt,
        "prompt_sha256": prov.prompt_sha256,
        "parent": prov.parent,
        "parent_sha256": prov.parent_sha256,
        "registered_by": prov.registered_by,
        "registered_at": prov.registered_at,
        "source_sha256": prov.source_sha256,
        "metadata": canonical_json(prov.metadata),
        "search_terms": tool_index_terms(tool),
    }


class Registry:
    """A tool registry in one SQLite file.

    ``Registry(path)`` opens (creating and migrating) the database. ``actor`` is
    recorded in provenance and every audit entry (default: $TOOLCRIB_ACTOR,
    else the OS user name). ``max_limits`` caps every declared or requested limit (default:
    the maxima stored in the registry by its operator, `toolcrib limits`). With
    ``create=False`` a missing database file raises NotFound instead of being
    created (read-only CLI commands use that).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        actor: str | None = None,
        max_limits: Limits | None = None,
        create: bool = True,
    ) -> None:
        self.path: Path = Path(path).expanduser() if path is not None else default_registry_path()
        self._actor: str = actor or default_actor()
        self._acting = threading.local()
        self._max_limits = max_limits
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
        """Close every thread's database connection (the shared sandbox backends stay up)."""
        self._databases.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internal reading ----------------------------------------------------
    def _rows(self, name: str) -> list[VersionRow]:
        return version_rows(self.db.conn, name)

    def _resolve(self, ref: str, *, allow_yanked: bool = True) -> VersionRow:
        row: VersionRow = choose_version(self._rows(parse_reference(ref).name), ref, allow_yanked=allow_yanked)
        return row

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
        Raises AdmissionError, TestsFormatError, ConflictError, NotFound
        (parent, prelude name), InvalidInput (requirements that do not resolve).

        Identical content (same name, same sha256) is a no-op: the existing
        version comes back with ``created=False``, nothing is written and
        nothing is audited. An explicit ``version`` must be valid semver and
        unused for this name (ConflictError otherwise, even if that version was
        yanked); it need not be the highest, so a fix can be back-ported.
        """
        admitted = admit(source, entrypoint=entrypoint, strip_top_level=strip_top_level, markdown=markdown)
        notes = list(admitted.notes)
        tool_name = check_name(name if name is not None else admitted.entrypoint)
        if namespace is not None:
            tool_name = check_name(f"{check_name(namespace)}_{tool_name}")
        signature = derive_signature(admitted.source, admitted.entrypoint)
        raw_tests = [t.model_dump() if isinstance(t, TestCase) else t for t in (tests or [])]
        cases = parse_tests(raw_tests)
        wanted = str(parse_version(version)) if version is not None else None
        wants = [] if requires is None else ([requires] if isinstance(requires, str) else list(requires))
        if prelude_name is not None:
            if prelude is not None:
                raise InvalidInput("give a prelude's text or the name of a stored prelude, not both")
            stored = self.get_prelude(prelude_name)
            prelude = stored.text
            wants += stored.requires
        prelude = _prelude_text(prelude)
        lock = self._lock(wants, progress) if wants else None
        missing = find_missing(admitted.source, prelude=prelude, provided=lock.imports if lock else ())
        if not allow_missing:
            refuse_missing(missing)
        notes += [f"missing: {m.describe()}" for m in missing]
        declared = policy_name(policy if policy is not None else ("plain" if lock else DEFAULT_POLICY))
        if lock is not None and declared == "restricted":
            raise InvalidInput(
                "a version with requirements runs under the plain policy (the restricted policy's module "
                "stand-ins cover no packages): drop --policy restricted"
            )
        sha256 = content_sha256(admitted.source, admitted.entrypoint, signature, cases, declared, lock, prelude)
        given = provenance or ProvenanceInput()

        with write_transaction(self.db):
            rows = self._rows(tool_name)
            same = [r for r in rows if r.sha256 == sha256]
            if same:
                existing = _tool(same[0])
                if wanted is not None and wanted != existing.version:
                    raise ConflictError(
                        f"identical content is already stored as {existing.ref}; {tool_name}@{wanted} would duplicate it"
                    )
                return AddResult(tool=existing, created=False, bump="existing", notes=notes)
            bump: Bump
            if wanted is not None:
                if any(r.version == wanted for r in rows):
                    raise ConflictError(f"{tool_name}@{wanted} already exists (a version is never reused, even after a yank)")
                new_version, bump = wanted, "explicit"
            elif not rows:
                new_version, bump = "1.0.0", "initial"
            else:
                # The highest version ever published, yanked or not, is the
                # base: numbers only go up and are never handed out twice.
                newest = rows[-1]
                bump = bump_kind(_tool(newest).signature, signature)
                new_version = str(next_version(newest.semver, bump))
                if bump == "major" and not as_new_version and _unrelated(_tool(newest), admitted.source, admitted.entrypoint):
                    raise ConflictError(
                        f"{tool_name} already names an unrelated tool ({newest.ref}: another signature and another "
                        f"body): register this one under another name (--name, --namespace), or pass "
                        f"--as-new-version (as_new_version=True) to make it {tool_name}@{new_version}"
                    )
            parent = None
            if given.parent is not None:
                parent_row = self._resolve(given.parent, allow_yanked=True)
                parent = (parent_row.ref, parent_row.sha256)
            now = utc_now()
            tool = ToolVersion(
                name=tool_name,
                version=new_version,
                sha256=sha256,
                entrypoint=admitted.entrypoint,
                source=admitted.source,
                signature=signature,
                tests=cases,
                limits=limits,
                policy=declared,
                lock=lock,
                prelude=prelude,
                status="unverified",
                provenance=build_provenance(
                    given, source=admitted.source, registered_by=self.actor, registered_at=now, parent=parent
                ),
                created_at=now,
            )
            self._store(
                tool,
                "add",
                {
                    "sha256": sha256,
                    "bump": bump,
                    "generator": given.generator,
                    "parent": parent[0] if parent else None,
                    "tests": len(cases),
                    "policy": declared,
                    **({"lock": lock.digest(), "requires": list(lock.requirements)} if lock else {}),
                    **({"prelude_sha256": sha256_text(prelude)} if prelude is not None else {}),
                    **({"prelude": prelude_name} if prelude_name is not None else {}),
                    **({"missing": [m.describe() for m in missing]} if missing else {}),
                },
            )
        return AddResult(tool=tool, created=True, bump=bump, notes=notes)

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
        from ..sandbox.packages import PackagesError, check_requirement

        check_name(name)
        body = _prelude_text(text)
        assert body is not None
        try:
            wants = sorted({check_requirement(r) for r in requires})
        except PackagesError as exc:
            raise InvalidInput(f"requirements: {exc}") from None
        now = utc_now()
        record = {"name": name, "text": body, "sha256": sha256_text(body), "requires": canonical_json(wants),
                  "updated_by": self.actor, "updated_at": now}
        with write_transaction(self.db):
            upsert_prelude(self.db, record)
            append_entry(self.db, actor=self.actor, event="prelude", tool=None,
                         details={"name": name, "sha256": record["sha256"], "requires": wants})
        return Prelude(name=name, text=body, sha256=str(record["sha256"]), requires=wants,
                       updated_by=self.actor, updated_at=now)

    def get_prelude(self, name: str) -> Prelude:
        """A stored prelude; NotFound if there is none by that name."""
        row = prelude_row(self.db.conn, name)
        if row is None:
            raise NotFound(f"no prelude named {name!r}")
        return Prelude(name=row[0], text=row[1], sha256=row[2], requires=json.loads(row[3]),
                       updated_by=row[4], updated_at=row[5])

    def preludes(self) -> builtins.list[Prelude]:
        """Every stored prelude, by name."""
        return [self.get_prelude(n) for n in prelude_names(self.db.conn)]

    def _store(self, tool: ToolVersion, event: str, details: dict[str, Any]) -> None:
        """Insert a new version and its audit entry (inside the caller's transaction)."""
        insert_version(self.db, _version_record(tool))
        append_entry(self.db, actor=self.actor, event=event, tool=tool.ref, details=details)

    def _set_flag(self, ref: str, column: str, event: str, text: str) -> ToolVersion:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"{event} needs a non-empty {'message' if column == 'deprecated' else 'reason'}")
        with write_transaction(self.db):
            row = self._resolve(ref, allow_yanked=True)
            set_version_flag(self.db.conn, row.id, column, text)
            append_entry(self.db, actor=self.actor, event=event, tool=row.ref, details={column: text})
            fresh = full_row(self.db.conn, row.id)
        assert fresh is not None  # read inside the transaction that just updated it
        return _row_version(fresh)

    def deprecate(self, ref: str, message: str) -> ToolVersion:
        """Mark a version deprecated (still callable); the message is shown to users."""
        return self._set_flag(ref, "deprecated", "deprecate", message)

    def yank(self, ref: str, reason: str) -> ToolVersion:
        """Yank a version: NAME no longer resolves to it and pinned calls are refused
        unless allow_yanked. Its version number stays taken."""
        return self._set_flag(ref, "yanked", "yank", reason)

    # -- reading -----------------------------------------------------------
    def get(self, ref: str, *, allow_yanked: bool = True) -> ToolVersion:
        """Resolve NAME (newest non-yanked version), NAME@1.2.0 or NAME@sha256:<prefix>."""
        return _tool(self._resolve(ref, allow_yanked=allow_yanked))

    def _newest_ids(self, *, include_yanked: bool = False) -> dict[str, int]:
        """name -> id of the version NAME resolves to (or, with include_yanked, the
        newest yanked one for tools with nothing else)."""
        rule = NEWEST_OR_YANKED if include_yanked else NEWEST
        return {name: vid for name, (vid, _v, _sha) in newest_per_name(self.db.conn, rule).items()}

    def _by_ids(self, ids: Iterable[int]) -> dict[int, ToolVersion]:
        ids = list(ids)
        if not ids:
            return {}
        return {vid: _row_version(row) for vid, row in full_rows(self.db.conn, ids).items()}

    def list(self, *, include_yanked: bool = False) -> list[ToolVersion]:
        """The newest version of every tool.

        That is the version NAME resolves to; tools whose every version is
        yanked appear (with their highest version) only with include_yanked."""
        with read_snapshot(self.db):
            newest = self._newest_ids(include_yanked=include_yanked)
            tools = self._by_ids(newest.values())
        return [tools[newest[name]] for name in sorted(newest)]

    def history(self, name: str) -> builtins.list[ToolVersion]:
        """Every version of one tool, oldest first (semver precedence)."""
        check_name(name)
        rows = self._rows(name)
        if not rows:
            raise NotFound(f"no tool named {name!r}")
        return [_tool(r) for r in rows]

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
        threshold = FIT_THRESHOLD if min_score is None else min_score
        if limit <= 0:
            return []
        with read_snapshot(self.db):
            newest = set(self._newest_ids().values())
            if verified_only and newest:
                newest = verified_ids(self.db.conn, newest)
            ranked = [s for s in rank(self.db, query, newest) if s.score >= threshold][:limit]
            tools = self._by_ids(s.id for s in ranked)
        return [
            SearchHit(**dict(tools[s.id]), score=s.score, bm25=s.bm25, matched=list(s.matched)) for s in ranked
        ]

    def diff(self, old_ref: str, new_ref: str) -> ToolDiff:
        """Unified diffs of source and signature JSON, and the semver bump the change implies."""
        old, new = self.get(old_ref), self.get(new_ref)
        source_diff = "".join(
            difflib.unified_diff(
                old.source.splitlines(keepends=True), new.source.splitlines(keepends=True), old.ref, new.ref
            )
        )

        def schema_lines(tool: ToolVersion) -> builtins.list[str]:
            text = json.dumps(tool.signature.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False)
            return [line + "\n" for line in text.splitlines()]

        schema_diff = "".join(difflib.unified_diff(schema_lines(old), schema_lines(new), old.ref, new.ref))
        bump = "none" if old.sha256 == new.sha256 else bump_kind(old.signature, new.signature)
        return ToolDiff(old=old.ref, new=new.ref, source_diff=source_diff, schema_diff=schema_diff, bump=bump)

    def provenance(self, ref: str) -> dict[str, Any]:
        """An in-toto Statement (v1) with a SLSA-style predicate for that version."""
        return in_toto_statement(self.get(ref))

    def usage(self, refs: Iterable[str] | None = None) -> dict[str, UsageStats]:
        """Calls, outcomes, median/p95 duration and last use per version, from
        the audit log. ``refs`` are resolved like `get` (NAME is its newest
        version); None means every version ever called."""
        with read_snapshot(self.db):
            resolved = None if refs is None else [self._resolve(r).ref for r in refs]
            return usage(self.db, resolved)

    def verification(self, ref: str) -> Verification | None:
        """The newest stored verification evidence of that version, if any."""
        row = self._resolve(ref)
        found = latest_verification(self.db.conn, row.id)
        if found is None:
            return None
        sha256, status, backend, policy, layers, digest, passed, failed, cases, verified_at = found
        return Verification(
            tool=row.ref,
            sha256=sha256,
            status=status,
            backend=backend,
            policy=policy,
            layers=json.loads(layers),
            image_digest=digest,
            passed=passed,
            failed=failed,
            cases=[CaseEvidence.model_validate(c) for c in json.loads(cases)],
            verified_at=verified_at,
        )

    def servable(self) -> builtins.list[tuple[str, str, str]]:
        """(name, version, sha256) of what a door serves, by name: per name, the
        highest version that is verified, not yanked and not deprecated
        (`store_versions.SERVABLE`)."""
        newest = newest_per_name(self.db.conn, SERVABLE)
        return [(name, version, sha256) for name, (_id, version, sha256) in sorted(newest.items())]

    def has_tool(self, name: str) -> bool:
        """Whether any version (yanked included) of `name` exists."""
        return name_exists(self.db.conn, name)

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

    # -- running -----------------------------------------------------------
    def verify(
        self,
        ref: str,
        *,
        backend: str = "restricted",
        limits: dict[str, float] | None = None,
        policy: str | None = None,
        on_case: Callable[[int, int], None] | None = None,
        no_build: bool = False,
        progress: Callable[[str], None] | None = None,
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
        """
        row = self._resolve(ref, allow_yanked=True)
        tool = _tool(row)
        if not tool.tests:
            raise InvalidInput(f"{tool.ref} has no test cases: add it again with tests to verify it")
        limits_used = job_limits(tool.limits, self.max_limits, limits)
        policy_used = job_policy(backend, policy, tool.policy)
        runner = start_backend(backend)
        prepare_runtime(runner, tool.ref, tool.lock, no_build=no_build, progress=progress)
        evidence: list[CaseEvidence] = []
        digest: str | None = None
        layers: list[str] | None = None
        total = len(tool.tests)
        for index, case in enumerate(tool.tests):
            job = sandbox_job(tool, tool.signature.input_schema, limits_used, policy_used,
                              args=case.args, snippet=case.snippet)
            result = runner.run(job)
            if result.status == "unavailable":
                raise SandboxUnavailable(self._unavailable_message(backend, result))
            digest = result.image_digest or digest
            layers = list(result.layers) if layers is None else [x for x in layers if x in result.layers]
            evidence.append(self._evidence(index, case, result))
            if on_case is not None:
                on_case(index + 1, total)
        passed = sum(1 for e in evidence if e.passed)
        verification = Verification(
            tool=tool.ref,
            sha256=tool.sha256,
            status="verified" if passed == total else "failed",
            backend=backend,
            policy=policy_used,
            layers=layers or [],
            image_digest=digest,
            passed=passed,
            failed=total - passed,
            cases=evidence,
            verified_at=utc_now(),
        )
        with write_transaction(self.db):
            insert_verification(
                self.db,
                {
                    "version_id": row.id,
                    "sha256": tool.sha256,
                    "status": verification.status,
                    "backend": backend,
                    "policy": policy_used,
                    "layers": canonical_json(verification.layers),
                    "image_digest": digest,
                    "passed": passed,
                    "failed": total - passed,
                    "cases": canonical_json([e.model_dump(mode="json") for e in evidence]),
                    "limits": canonical_json(limits_used.to_json()),
                    "verified_at": verification.verified_at,
                }
            )
            set_status(self.db.conn, row.id, verification.status)
            append_entry(
                self.db,
                actor=self.actor,
                event="verify",
                tool=tool.ref,
                details={
                    "status": verification.status,
                    "passed": passed,
                    "failed": total - passed,
                    "backend": backend,
                    "policy": policy_used,
                    "layers": verification.layers,
                    "image_digest": digest,
                    "sha256": tool.sha256,
                },
            )
        return verification

    @staticmethod
    def _unavailable_message(backend: str, result: Result) -> str:
        why = result.error.message if result.error else "no reason given"
        return f"the {backend} backend is unavailable: {why}"

    @staticmethod
    def _evidence(index: int, case: TestCase, result: Result) -> CaseEvidence:
        passed = False
        error = result.error
        if result.status == "ok":
            passed, why = compare(case, result.result)
            if not passed:
                error = ErrorInfo(type="Mismatch", message=why or "the result differs from the expected value")
        return CaseEvidence(
            index=index,
            name=case.name,
            passed=passed,
            status=result.status,
            expected=case.expected,
            actual=cap_value(result.result, _EVIDENCE_CAP),
            error=error,
            limit=result.limit,
            duration_ms=result.duration_ms,
        )

    def call(
        self,
        ref: str,
        args: dict[str, Any] | None = None,
        *,
        snippet: str | None = None,
        backend: str = "restricted",
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
        return Caller(self.db.conn, actor=self.actor, max_limits=self.max_limits).call(
            ref, args, snippet=snippet, backend=backend, limits=limits, policy=policy,
            allow_unverified=allow_unverified, allow_yanked=allow_yanked, cancel=cancel, no_build=no_build,
            progress=progress,
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

    def audit_verify(self) -> AuditReport:
        """Recompute the hash chain; the first bad seq and what is wrong, if any."""
        with read_snapshot(self.db):
            return verify_chain(self.db)

    # -- bundles -------------------------------------------------------------
    def export(self, refs: Iterable[str] | None = None) -> dict[str, Any]:
        """A portable JSON bundle (all versions of the named tools, or everything).

        Each reference picks a tool by name (a version or digest in it just has
        to exist); every version of that tool goes in, yanked ones included."""
        with read_snapshot(self.db):
            if refs is None:
                names = tool_names(self.db.conn)
            else:
                names = []
                for ref in refs:
                    name = self._resolve(ref, allow_yanked=True).name
                    if name not in names:
                        names.append(name)
            return build_bundle([tool for name in names for tool in self.history(name)])

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
        return results

    def _import_entry(self, entry: BundleEntry, exported_at: Any) -> AddResult:
        rows = self._rows(entry.name)
        same = [r for r in rows if r.sha256 == entry.sha256]
        if same:
            return AddResult(tool=_tool(same[0]), created=False, bump="existing")
        clash = [r for r in rows if r.version == entry.version]
        if clash:
            raise BundleError(
                f"{entry.ref} already exists here with different content "
                f"(sha256 {_tool(clash[0]).sha256[:16]}..., bundle has {entry.sha256[:16]}...)"
            )
        tool = ToolVersion(
            name=entry.name,
            version=entry.version,
            sha256=entry.sha256,
            entrypoint=entry.entrypoint,
            source=entry.source,
            signature=entry.signature,
            tests=entry.tests,
            limits=entry.limits,
            policy=entry.policy,
            lock=entry.lock,
            prelude=entry.prelude,
            status="unverified",
            deprecated=entry.deprecated,
            yanked=entry.yanked,
            provenance=entry.provenance,
            created_at=utc_now(),
        )
        self._store(
            tool,
            "import",
            {
                "sha256": tool.sha256,
                "exported_at": exported_at if isinstance(exported_at, str) else None,
                "registered_by": entry.provenance.registered_by,
                "policy": entry.policy,
                **({"lock": entry.lock.digest()} if entry.lock else {}),
            },
        )
        return AddResult(tool=tool, created=True, bump="explicit")
