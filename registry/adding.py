"""Adding a version: what `Registry.add` decides, in two halves.

`draft` does everything that needs no database (admission, signature, tests,
requirements resolved to a lock, the prelude, the policy, the content hash);
inside the add's write transaction, `identical`, `next_number` and
`new_tool` place it among the name's stored versions, and `add_details` is
its audit entry. Each raises the same errors `Registry.add` documents.
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..sandbox.backends import lock_problem
from ..sandbox.contract import Limits, Lock, PolicyName
from ..sandbox.default_backend import configured_backend
from .admission import admit, check_name, find_missing, refuse_missing
from .bundle import BundleEntry
from .calls import policy_name
from .cases import parse_tests
from .errors import ArgumentsError, BundleError, ConflictError, InvalidInput, TestsFormatError
from .models import Bump, Prelude, ProvenanceInput, Signature, TestCase, ToolVersion
from .preludes import prelude_text, refuse_restricted_prelude
from .provenance import build_provenance
from .pyast import function_body
from .records import tool_of
from .signature import bump_kind, derive_signature, validate_arguments
from .store import utc_now
from .store_versions import VersionRow
from .versions import DEFAULT_POLICY, content_sha256, next_version, parse_version, sha256_text

__all__ = [
    "Draft",
    "add_details",
    "already_imported",
    "check_param_forms",
    "draft",
    "identical",
    "import_details",
    "imported_tool",
    "new_tool",
    "next_number",
    "refuse_second_in_batch",
    "refuse_unrunnable_lock",
    "unrelated",
]

# The longest tool name (versions._NAME).
MAX_NAME_CHARS = 64

# How alike two entrypoint bodies must be (difflib ratio of their normalized
# text) for a new version of a name (any bump) to count as the same tool changing.
_RELATED_BODY = 0.5


@dataclass(frozen=True)
class Draft:
    """A version ready to be stored, all but its number and provenance."""

    name: str
    source: str
    entrypoint: str
    signature: Signature
    tests: list[TestCase]
    wanted: str | None
    lock: Lock | None
    prelude: str | None
    prelude_name: str | None
    missing: list[Any]
    policy: PolicyName
    sha256: str
    given: ProvenanceInput
    limits: Limits | None
    notes: list[str]


def _check_case_arguments(
    source: str,
    entrypoint: str,
    cases: builtins.list[TestCase],
    forms: Mapping[str, str] | None = None,
    prelude: str | None = None,
) -> None:
    """Each case's arguments fit the signature, or the add is refused naming
    the case and the field (a case that cannot be called would only fail at
    verify, after the version is stored)."""
    for index, case in enumerate(cases, start=1):
        if case.args is None:
            continue
        try:
            validate_arguments(source, entrypoint, case.args, forms=forms, prelude=prelude)
        except ArgumentsError as exc:
            label = f"case {index}" + (f" (name {case.name!r})" if case.name else "")
            detail = "; ".join(f"{name}: {why}" for name, why in exc.fields.items()) or exc.message
            raise TestsFormatError(f"{label}: 'args' do not fit the signature of {entrypoint}: {detail}") from None


def refuse_unrunnable_lock(lock: Lock) -> None:
    """At `add`, not at the first call: InvalidInput (exit 2, nothing stored)
    when the backend calls use here (`configured_backend`: wasm where the
    Linux jail does not exist) cannot run the lock, with the backend's
    one-line reason naming the backends that can."""
    name = configured_backend()
    problem = lock_problem(name, lock)
    if problem is not None:
        raise InvalidInput(f"the {name} backend, which calls use here, cannot run these packages: {problem}")


def draft(
    source: str,
    *,
    name: str | None,
    entrypoint: str | None,
    tests: Iterable[TestCase | dict[str, Any]] | None,
    version: str | None,
    provenance: ProvenanceInput | None,
    limits: Limits | None,
    policy: str | None,
    strip_top_level: bool,
    markdown: bool | None,
    requires: Iterable[str] | None,
    prelude: str | None,
    prelude_name: str | None,
    allow_missing: bool,
    namespace: str | None,
    prelude_of: Callable[[str], Prelude],
    lock_of: Callable[[builtins.list[str]], Lock],
    param_forms: Mapping[str, str] | None = None,
) -> Draft:
    """Admit `source` and everything given with it (see `Registry.add`)."""
    forms = check_param_forms(param_forms)
    wants = [] if requires is None else ([requires] if isinstance(requires, str) else list(requires))
    if prelude_name is not None:
        if prelude is not None:
            raise InvalidInput("give a prelude's text or the name of a stored prelude, not both")
        stored = prelude_of(prelude_name)
        prelude = stored.text
        wants += stored.requires
    prelude = prelude_text(prelude)
    admitted = admit(
        source, entrypoint=entrypoint, strip_top_level=strip_top_level, markdown=markdown, forms=forms, prelude=prelude
    )
    notes = list(admitted.notes)
    tool_name = check_name(name if name is not None else admitted.entrypoint)
    if namespace is not None:
        tool_name = _namespaced(check_name(namespace), tool_name)
    raw_tests = [t.model_dump() if isinstance(t, TestCase) else t for t in (tests or [])]
    cases = parse_tests(raw_tests)
    wanted = str(parse_version(version)) if version is not None else None
    # Read through the prelude's imports: a type the docstring or annotation
    # names by the prelude's `pd` is the prelude's pandas.
    signature = derive_signature(admitted.source, admitted.entrypoint, forms=forms, prelude=prelude)
    _check_case_arguments(admitted.source, admitted.entrypoint, cases, forms, prelude)
    lock = lock_of(wants) if wants else None
    if lock is not None:
        refuse_unrunnable_lock(lock)
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
    if prelude is not None and declared == "restricted":
        refuse_restricted_prelude(prelude)
    sha256 = content_sha256(admitted.source, admitted.entrypoint, signature, cases, declared, lock, prelude)
    return Draft(
        name=tool_name,
        source=admitted.source,
        entrypoint=admitted.entrypoint,
        signature=signature,
        tests=cases,
        wanted=wanted,
        lock=lock,
        prelude=prelude,
        prelude_name=prelude_name,
        missing=list(missing),
        policy=declared,
        sha256=sha256,
        given=provenance or ProvenanceInput(),
        limits=limits,
        notes=notes,
    )


def check_param_forms(forms: Mapping[str, str] | None) -> dict[str, str] | None:
    """Declared parameter forms as a plain dict (None: none), or
    InvalidInput when they are not names and form names (text)."""
    if not forms:
        return None
    if not isinstance(forms, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in forms.items()):
        raise InvalidInput("parameter forms are {parameter name: form name}, both text")
    return dict(forms)


def identical(rows: builtins.list[VersionRow], d: Draft) -> ToolVersion | None:
    """The stored version with the draft's content, if any (adding it again
    is a no-op); ConflictError if the draft asks for another number."""
    same = [r for r in rows if r.sha256 == d.sha256]
    if not same:
        return None
    existing = tool_of(same[0])
    if d.wanted is not None and d.wanted != existing.version:
        raise ConflictError(
            f"identical content is already stored as {existing.ref}; {d.name}@{d.wanted} would duplicate it"
        )
    return existing


def _namespaced(namespace: str, name: str) -> str:
    """NAMESPACE_name, refused naming both parts when it is past the 64
    characters a name may have (each part alone is valid)."""
    full = f"{namespace}_{name}"
    if len(full) > MAX_NAME_CHARS:
        room = MAX_NAME_CHARS - 1 - len(name)
        shorter = f"a namespace of at most {room} characters" if room > 0 else "a shorter --name"
        raise InvalidInput(
            f"namespace {namespace!r} makes the name {name!r} {len(full)} characters long "
            f"({len(namespace)} + 1 + {len(name)}), past the {MAX_NAME_CHARS} a name may have: use {shorter}"
        )
    return check_name(full)


def next_number(rows: builtins.list[VersionRow], d: Draft, *, as_new_version: bool) -> tuple[str, Bump]:
    """The new version's number and the kind of bump it is."""
    if d.wanted is not None:
        if any(r.version == d.wanted for r in rows):
            raise ConflictError(f"{d.name}@{d.wanted} already exists (a version is never reused, even after a yank)")
        return d.wanted, "explicit"
    if not rows:
        return "1.0.0", "initial"
    # The highest version ever published, yanked or not, is the
    # base: numbers only go up and are never handed out twice.
    newest = rows[-1]
    bump = bump_kind(tool_of(newest).signature, d.signature)
    new_version = str(next_version(newest.semver, bump))
    # The same check whatever the bump: two unrelated tools that happen to
    # share a function name and signature are not a patch of each other.
    if not as_new_version and unrelated(tool_of(newest), d.source, d.entrypoint):
        what = "another signature and another body" if bump == "major" else "the same signature but another body"
        raise ConflictError(
            f"{d.name} already names an unrelated tool ({newest.ref}: {what}): register this one under "
            f"another name (--name, --namespace), or pass --as-new-version (as_new_version=True) to make "
            f"it {d.name}@{new_version}"
        )
    return new_version, bump


def refuse_second_in_batch(d: Draft, batch: Mapping[str, str], would_be: str) -> None:
    """In one bulk add, a name holds one tool: a different tool under a name
    the run already admitted (``batch``: name -> where it came from) would
    quietly become a new version of that one and replace it (two tools of
    one library, or two rows of a table, that happen to share a function
    name). Refused (ConflictError), naming both; the caller lets it through
    with ``as_new_version``. Identical content never gets here (`identical`),
    nor an unrelated tool (`next_number` refuses it first, saying so);
    ``would_be``: the number it would get."""
    first = batch.get(d.name)
    if first is None:
        return
    raise ConflictError(
        f"{d.name} was already admitted from {first} in this add: this different tool of the same name "
        f"would become {d.name}@{would_be} and replace it: register it under another name (a name column, "
        f"--namespace), or pass --as-new-version (as_new_version=True) to make it a new version"
    )


def unrelated(old: ToolVersion, source: str, entrypoint: str) -> bool:
    """True when the entrypoint's body shares little with the old version's:
    with an incompatible signature too, that is another tool, not a change."""
    try:
        before, after = function_body(old.source, old.entrypoint), function_body(source, entrypoint)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return difflib.SequenceMatcher(None, before, after, autojunk=False).ratio() < _RELATED_BODY


def new_tool(d: Draft, version: str, *, actor: str, parent: tuple[str, str] | None) -> ToolVersion:
    """The version to store: the draft numbered, unverified, with its provenance."""
    now = utc_now()
    return ToolVersion(
        name=d.name,
        version=version,
        sha256=d.sha256,
        entrypoint=d.entrypoint,
        source=d.source,
        signature=d.signature,
        tests=d.tests,
        limits=d.limits,
        policy=d.policy,
        lock=d.lock,
        prelude=d.prelude,
        status="unverified",
        provenance=build_provenance(d.given, source=d.source, registered_by=actor, registered_at=now, parent=parent),
        created_at=now,
    )


def add_details(d: Draft, bump: Bump, parent: tuple[str, str] | None) -> dict[str, Any]:
    """The ``add`` audit entry's details."""
    return {
        "sha256": d.sha256,
        "bump": bump,
        "generator": d.given.generator,
        "parent": parent[0] if parent else None,
        "tests": len(d.tests),
        "policy": d.policy,
        **({"lock": d.lock.digest(), "requires": list(d.lock.requirements)} if d.lock else {}),
        **({"prelude_sha256": sha256_text(d.prelude)} if d.prelude is not None else {}),
        **({"prelude": d.prelude_name} if d.prelude_name is not None else {}),
        **({"missing": [m.describe() for m in d.missing]} if d.missing else {}),
    }


# -- a bundle's versions (Registry.import_bundle) ---------------------------------


def already_imported(rows: builtins.list[VersionRow], entry: BundleEntry) -> ToolVersion | None:
    """The stored version with the entry's content, if any (skipped);
    BundleError if its name@version is stored with other content."""
    same = [r for r in rows if r.sha256 == entry.sha256]
    if same:
        return tool_of(same[0])
    clash = [r for r in rows if r.version == entry.version]
    if clash:
        raise BundleError(
            f"{entry.ref} already exists here with different content "
            f"(sha256 {tool_of(clash[0]).sha256[:16]}..., bundle has {entry.sha256[:16]}...)"
        )
    return None


def imported_tool(entry: BundleEntry) -> ToolVersion:
    """The version to store for a bundle entry: as exported, but unverified
    (evidence from another registry is not trusted)."""
    return ToolVersion(
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


def import_details(entry: BundleEntry, exported_at: Any) -> dict[str, Any]:
    """The ``import`` audit entry's details."""
    return {
        "sha256": entry.sha256,
        "exported_at": exported_at if isinstance(exported_at, str) else None,
        "registered_by": entry.provenance.registered_by,
        "policy": entry.policy,
        **({"lock": entry.lock.digest()} if entry.lock else {}),
    }
