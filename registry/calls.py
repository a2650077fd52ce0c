"""One call of one version, the only implementation: `Registry.call` and
`toolcrib call` both run it.

Resolve the reference, refuse what the registry's rules refuse (unverified,
yanked), cap the limits, choose the policy, check the arguments against the
version's STORED input schema, run the job on a backend, audit the call
whatever happened, and return what the host observed.

Why a module of its own, on a plain `sqlite3` connection and the sandbox's
dataclasses: a one-shot `toolcrib call` pays for every import on its way to
the sandbox, and pydantic (the registry's models) and sqlite-utils (its
store) cost more there than the rest of the start together (see
bench/bench_startup.py). Nothing here imports either; jsonschema is imported
by the argument check, on the first call with arguments.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..sandbox.backends import Backends
from ..sandbox.backends import ExtraMissing as BackendExtraMissing
from ..sandbox.backends import LockUnsupported as BackendLockUnsupported
from ..sandbox.contract import (
    LIMIT_NAMES,
    Backend,
    Cancel,
    ErrorInfo,
    Job,
    Limits,
    Lock,
    PolicyName,
    Result,
)
from ..sandbox.default_backend import default_backend
from .audit import CAP_BYTES, append_row, cap_value
from .choosing import choose_version
from .errors import ArgumentsError, ExtraMissing, InvalidInput, NotFound, PolicyRefused, SandboxUnavailable
from .limits import DEFAULT_MAX_LIMITS, granted, stored_maxima
from .outcome import CallOutcome
from .review_rule import gate
from .schema_check import arg_forms, drop_default_nulls, validate_stored_arguments
from .store import write_transaction
from .store_versions import VersionRow, call_row
from .versions import canonical_json, parse_reference, sha256_text, stored_lock

# The default: the table's shared backends (the CLI's and the MCP server's).
_DEFAULT_BACKENDS = Backends()

__all__ = [
    "DEFAULT_MAX_LIMITS",
    "CallOutcome",
    "CallTarget",
    "Caller",
    "VersionRow",
    "audited_result",
    "choose_version",
    "job_limits",
    "job_policy",
    "policy_name",
    "prepare_runtime",
    "sandbox_job",
    "start_backend",
]


@dataclass(frozen=True, slots=True)
class CallTarget:
    """What a call needs of a version: the `VersionRow` it was chosen by,
    and the rest of its row, read once (`store_versions.call_row`).

    ``signature`` is the stored signature's JSON text: parsed once here for
    the input schema, and the argument check's cache key as it is, so the
    schema is not serialized again on each call."""

    ref: str
    entrypoint: str
    source: str
    signature: str
    input_schema: dict[str, Any]
    limits: Limits | None
    policy: PolicyName
    lock: Lock | None
    prelude: str | None
    status: str
    yanked: str | None
    # Who made it, for the review rule: (generator, registered_by, latm.task).
    maker: tuple[str | None, str | None, str | None] = (None, None, None)

    @classmethod
    def load(cls, conn: sqlite3.Connection, chosen: VersionRow) -> CallTarget:
        row = call_row(conn, chosen.id)
        if row is None:
            raise NotFound(f"{chosen.ref} not found")
        entrypoint, source, signature, limits, policy, lock, prelude, status, *maker = row
        return cls(
            ref=chosen.ref,
            entrypoint=entrypoint,
            source=source,
            signature=signature,
            input_schema=json.loads(signature)["input_schema"],
            limits=Limits.from_json(json.loads(limits)) if limits else None,
            policy=policy_name(policy),
            lock=stored_lock(chosen.ref, lock),
            prelude=prelude,
            status=status,
            yanked=chosen.yanked,
            maker=(maker[0], maker[1], maker[2]),
        )

    def job(self, limits: Limits, policy: PolicyName, *, args: dict[str, Any] | None, snippet: str | None) -> Job:
        """The sandbox job for one call (see `sandbox_job`)."""
        return sandbox_job(self, self.input_schema, limits, policy, args=args, snippet=snippet)


class _Runnable(Protocol):
    """What a job needs of a version: a CallTarget, or a registry ToolVersion."""

    @property
    def source(self) -> str: ...
    @property
    def entrypoint(self) -> str: ...
    @property
    def lock(self) -> Lock | None: ...
    @property
    def prelude(self) -> str | None: ...


def sandbox_job(
    tool: _Runnable,
    input_schema: dict[str, Any],
    limits: Limits,
    policy: PolicyName,
    *,
    args: dict[str, Any] | None,
    snippet: str | None,
) -> Job:
    """The sandbox job for one call or test case of `tool`: a snippet if there
    is one, else arguments (with the forms `input_schema` gives them)."""
    if snippet is not None:
        return Job(
            source=tool.source,
            entrypoint=tool.entrypoint,
            mode="snippet",
            snippet=snippet,
            limits=limits,
            policy=policy,
            lock=tool.lock,
            prelude=tool.prelude,
        )
    return Job(
        source=tool.source,
        entrypoint=tool.entrypoint,
        mode="args",
        args=args or {},
        limits=limits,
        policy=policy,
        lock=tool.lock,
        prelude=tool.prelude,
        arg_forms=arg_forms(input_schema),
    )


# A JSON escape in ASCII canonical JSON: an escaped backslash (consumed
# whole, so the ``u`` after it is not read as an escape), a UTF-16 pair, or
# one \\uXXXX.
_ESCAPE = re.compile(r"\\\\|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})")


def _unescaped_char(match: re.Match[str]) -> str:
    """What canonical JSON (``ensure_ascii=False``) writes for one escape of
    the ASCII form: the character itself, except for the escapes it keeps
    (a backslash, a quote, a control character)."""
    if match.group(1):
        return chr(0x10000 + ((int(match.group(1), 16) - 0xD800) << 10) + int(match.group(2), 16) - 0xDC00)
    code = match.group(3)
    if code is None or int(code, 16) < 0x7F:
        return match.group(0)
    if 0xD800 <= int(code, 16) <= 0xDFFF:
        return "\ufffd"  # a lone surrogate, as cap_value stores it
    return chr(int(code, 16))


def _saved_bytes(match: re.Match[str]) -> int:
    """How many bytes shorter the UTF-8 of `_unescaped_char` is than the escape."""
    return len(match.group(0)) - len(_unescaped_char(match).encode("utf-8"))


def audited_result(value: Any) -> Any:
    """`audit.cap_value(value)`, the same entry, without ever holding the
    whole canonical text of a large result in Python's widest form: one
    character beyond U+FFFF makes a str 4 bytes a character, so capping a
    reply at the output limit cost the host 4 times the limit again. The
    text is made with every non-ASCII character escaped (1 byte a
    character, about the reply's own size); the size and the prefix of the
    canonical UTF-8 text are computed from it. Exact for any value without
    lone surrogates, which a result never holds (the wire replaced them)."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return cap_value(value)
    if len(text) <= CAP_BYTES:
        return cap_value(value)  # canonical UTF-8 is never longer than the ASCII form: small, the usual path
    size = len(text) - sum(_saved_bytes(m) for m in _ESCAPE.finditer(text))
    if size <= CAP_BYTES:
        return cap_value(value)
    # An escape is at most 6 ASCII characters for 1 byte (U+007F): this much
    # of the ASCII form holds the first CAP_BYTES bytes of the canonical one.
    head = _ESCAPE.sub(_unescaped_char, text[: 6 * CAP_BYTES + 12]).encode("utf-8")
    return {"$truncated": True, "bytes": size, "prefix": head[:CAP_BYTES].decode("utf-8", "ignore")}


# A failed call's error message as the audit keeps it: at most this many characters.
MAX_AUDITED_MESSAGE = 500


def _capped_message(message: str) -> str:
    """An error message for the audit: at most `MAX_AUDITED_MESSAGE`
    characters, saying how long it was when cut. (Stored as JSON, its
    control characters are escaped; every door shows it through its own
    terminal escaping.)"""
    if len(message) <= MAX_AUDITED_MESSAGE:
        return message
    return f"{message[: MAX_AUDITED_MESSAGE - 40]}... ({len(message)} characters)"


def policy_name(policy: object) -> PolicyName:
    """A policy name as given by a caller; InvalidInput for anything else."""
    if policy == "restricted":
        return "restricted"
    if policy == "plain":
        return "plain"
    raise InvalidInput(f"unknown policy {policy!r} (choose restricted or plain)")


def job_policy(backend: Backend, policy: str | None, declared: PolicyName = "restricted") -> PolicyName:
    """The policy a run uses: the caller's, else the backend's default for
    what the tool declared (`Backend.default_policy`).

    On the restricted backend a tool gets the policy it declared; inside a
    Docker container it runs as plain Python (the container is the
    boundary; ``policy="restricted"`` adds the policy there as defence in
    depth). "plain" on the restricted backend needs its OS jail: where a
    layer of it is missing, the backend answers "unavailable" rather than
    run unguarded Python.
    """
    if policy is not None:
        return policy_name(policy)
    return backend.default_policy(declared)


def job_limits(declared: Limits | None, maxima: Limits, overrides: dict[str, float] | None) -> Limits:
    """The limits a run gets: what the version declared (else the defaults),
    each capped by the registry's maxima (the operator's, `registry.limits`:
    a tool's author never raises them), then the caller's overrides (never
    above a maximum: InvalidInput)."""
    base = granted(declared, maxima)[0]
    if not overrides:
        return base
    for key, value in overrides.items():
        if key not in LIMIT_NAMES:
            raise InvalidInput(f"unknown limit {key!r} (known: {', '.join(LIMIT_NAMES)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"limit {key} must be a number, got {value!r}")
        maximum = getattr(maxima, key)
        if value > maximum:
            raise InvalidInput(f"limit {key}={value} exceeds the maximum {maximum}")
    try:
        return base.override(**overrides)
    except ValueError as exc:
        raise InvalidInput(f"invalid {exc}") from None


def backend_name(name: str | None) -> str:
    """The backend a run uses: the one named, else this machine's default
    ("restricted" where the Linux jail exists, else "wasm":
    sandbox/default_backend.py)."""
    return default_backend() if name is None else name


def start_backend(name: str, backends: Backends | None = None) -> Backend:
    """The backend called `name`: from `backends` (a registry's, with what
    was injected into it), else the shared one of the table.
    InvalidInput for an unknown name, SandboxUnavailable if it cannot be built."""
    try:
        return (backends or _DEFAULT_BACKENDS).get(name)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    except BackendExtraMissing as exc:  # its optional part is not installed: exit 7, naming the pip command
        raise ExtraMissing(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any start-up failure means "cannot run"
        raise SandboxUnavailable(f"the {name} backend could not start: {exc}") from None


def prepare_runtime(
    runner: Backend, ref: str, lock: Lock | None, *, no_build: bool, progress: Callable[[str], None] | None
) -> None:
    """A version with packages: have the runtime its backend runs it in
    (`Backend.prepare`: Docker builds the lock's image now unless
    ``no_build``; elsewhere a no-op). Raises SandboxUnavailable naming the
    build command, or the one-line reason this backend cannot run the
    lock (`backends.LockUnsupported`, before anything runs)."""
    if lock is None:
        return
    from ..sandbox.image import ImageBuildError, RuntimeImageMissing

    try:
        runner.prepare(lock, build=not no_build, progress=progress)
    except BackendLockUnsupported as exc:  # one line naming the backends that can run it
        raise SandboxUnavailable(f"{ref}: {exc}") from None
    except RuntimeImageMissing as exc:
        raise SandboxUnavailable(
            f"the runtime image {exc.tag} for {ref}'s packages is missing: run `toolcrib image build --for {ref}`"
        ) from None
    except ImageBuildError as exc:
        raise SandboxUnavailable(f"the runtime image for {ref} cannot be built: {exc}") from None


class Caller:
    """Calls versions of the registry behind `conn` (a plain connection from
    `store.connect`, or a sqlite-utils Database's ``.conn``), auditing each
    call as `actor`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        actor: str,
        max_limits: Limits | None = None,
        backends: Backends | None = None,
    ) -> None:
        self.conn = conn
        self.actor = actor
        self._max_limits = max_limits
        # Where backends come from (a registry's injected ones; default: the table's shared ones).
        self.backends = backends or _DEFAULT_BACKENDS

    @property
    def max_limits(self) -> Limits:
        """The maxima every limit is capped by: the ones given, else the
        registry's own (the operator's `toolcrib limits`), read afresh."""
        return self._max_limits if self._max_limits is not None else stored_maxima(self.conn)

    def _backend(self, name: str) -> tuple[Backend | None, InvalidInput | SandboxUnavailable | None]:
        """The backend called `name`, or why it cannot be had: InvalidInput
        for an unknown name, SandboxUnavailable if it cannot be built. Raised
        when the job would run, so that a bad argument is still reported
        first, and an unbuildable backend is an unavailable result."""
        try:
            return start_backend(name, self.backends), None
        except (InvalidInput, SandboxUnavailable) as exc:
            return None, exc

    def _audit(self, tool: str, details: dict[str, Any]) -> None:
        with write_transaction(self.conn):
            append_row(self.conn, actor=self.actor, event="call", tool=tool, details=details)

    def _audit_unfinished(self, tool: str, details: dict[str, Any], exc: BaseException) -> None:
        """The entry of a call an exception ended before its result."""
        interrupted = not isinstance(exc, Exception)  # KeyboardInterrupt, SystemExit, a signal's exception
        error = (
            ErrorInfo(type="Cancelled", message="the call was interrupted before it finished")
            if interrupted
            else ErrorInfo(type="InternalError", message=_capped_message(f"{type(exc).__name__}: {exc}"))
        )
        try:
            self._audit(
                tool,
                {
                    **details,
                    "status": "cancelled" if interrupted else "unavailable",
                    "error_type": error.type,
                    "error_message": error.message,
                },
            )
        except Exception:  # noqa: BLE001 - the exception on its way out says more than a failed log write
            pass

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
        """`Registry.call` (its docstring says what each argument does)."""
        row = choose_version(
            VersionRow.of_name(self.conn, parse_reference(ref).name), ref, allow_yanked=True, conn=self.conn
        )
        tool = CallTarget.load(self.conn, row)
        mode = "snippet" if snippet is not None else "args"
        backend = backend_name(backend)
        base: dict[str, Any] = {"mode": mode, "backend": backend}
        try:
            if mode == "snippet":
                if args:
                    raise InvalidInput("pass either arguments or a snippet, not both")
                if not isinstance(snippet, str) or not snippet.strip():
                    raise InvalidInput("the snippet is empty")
                try:
                    base["snippet_sha256"] = sha256_text(snippet)
                except UnicodeEncodeError:
                    raise InvalidInput("the snippet is not Unicode text (it holds a lone surrogate)") from None
                base["snippet"] = cap_value(snippet)
            else:
                args = {} if args is None else args
                if not isinstance(args, dict):
                    raise InvalidInput("arguments must be a JSON object")
                # A null for an optional parameter that takes none: "the default".
                args, dropped = drop_default_nulls(tool.input_schema, args)
                if dropped:
                    base["nulls_dropped"] = dropped
                try:
                    base["args_sha256"] = sha256_text(canonical_json(args))
                except (TypeError, ValueError):
                    raise InvalidInput(
                        "arguments must be JSON (objects, arrays, strings, finite numbers, booleans, null)"
                    ) from None
                except RecursionError:  # the Python API's own values: no reader bounded them
                    raise InvalidInput("arguments are nested too deeply") from None
                base["arguments"] = cap_value(args)
        except InvalidInput as exc:
            self._audit(tool.ref, {**base, "status": "invalid", "reason": exc.message})
            raise
        try:
            if tool.yanked is not None and not allow_yanked:
                raise PolicyRefused(
                    f"{tool.ref} is yanked ({tool.yanked}); pass --allow-yanked (allow_yanked=True) to call it anyway"
                )
            if tool.status != "verified" and not allow_unverified:
                raise PolicyRefused(
                    f"{tool.ref} is {tool.status}: run 'toolcrib verify {tool.ref}' first, "
                    "or pass --allow-unverified (allow_unverified=True) to call it anyway"
                )
            # Human review (registry/review.py): no flag lets an unapproved version run.
            gate(self.conn, row.id, tool.ref, maker=tool.maker)
        except PolicyRefused as exc:
            self._audit(tool.ref, {**base, "status": "refused", "reason": exc.message})
            raise
        try:
            maxima = self.max_limits
            limits_used = job_limits(tool.limits, maxima, limits)
            # What the version declared above the operator's maxima (clamped).
            lowered = granted(tool.limits, maxima)[1]
            # The backend is built (not started: the first run starts it)
            # before the policy is chosen, as its default is its own.
            runner, cannot_run = self._backend(backend)
            policy_used = (
                job_policy(runner, policy, tool.policy)
                if runner is not None
                else (policy_name(policy) if policy is not None else tool.policy)
            )
            # The stored schema, the one `show`, bundles and `serve` advertise,
            # is the contract (not a schema derived again from the source).
            job_args = (
                validate_stored_arguments(tool.input_schema, args, function=tool.entrypoint, stored=tool.signature)
                if mode == "args"
                else None
            )
            job = tool.job(limits_used, policy_used, args=job_args, snippet=snippet)
        except InvalidInput as exc:
            fields = exc.fields if isinstance(exc, ArgumentsError) else {}
            self._audit(tool.ref, {**base, "status": "invalid", "reason": exc.message, "fields": fields})
            raise
        try:
            if runner is None:
                assert cannot_run is not None
                raise cannot_run
            prepare_runtime(runner, tool.ref, tool.lock, no_build=no_build, progress=progress)
            result = runner.run(job, cancel)
        except InvalidInput as exc:
            self._audit(tool.ref, {**base, "status": "invalid", "reason": exc.message})
            raise
        except SandboxUnavailable as exc:
            # Same shape as a backend that started but could not run the job.
            result = Result(
                status="unavailable", backend=backend, error=ErrorInfo(type="SandboxUnavailable", message=exc.message)
            )
        except BaseException as exc:
            # Stopped mid-call (Ctrl-C, the CLI's SIGTERM exception) or failed
            # in a way no branch above expects: the call began, so it reaches
            # the log before the exception goes on (the backend's cleanup, on
            # the way out, stops its sandbox).
            self._audit_unfinished(tool.ref, {**base, "policy": policy_used}, exc)
            raise
        cancelled = cancel is not None and cancel.cancelled
        if cancelled:
            # Whatever the killed sandbox reported, the truth is that the caller stopped it.
            result = Result(
                status="error",
                backend=result.backend,
                duration_ms=result.duration_ms,
                layers=result.layers,
                error=ErrorInfo(type="Cancelled", message="the caller cancelled the call"),
            )
        self._audit(
            tool.ref,
            {
                **base,
                "policy": policy_used,
                "status": "cancelled" if cancelled else result.status,
                "limit": result.limit,
                "error_type": result.error.type if result.error else None,
                # What the tool (or the sandbox) said, capped: the audit is not a log of outputs.
                "error_message": _capped_message(result.error.message) if result.error else None,
                "duration_ms": round(result.duration_ms, 3),
                "result": audited_result(result.result),
                "layers": list(result.layers),
                **(
                    {"limits_lowered": {k: [v, getattr(limits_used, k)] for k, v in lowered.items()}} if lowered else {}
                ),
                # A runtime image (a version with packages, on Docker): which one.
                # (Backwards compatible key: the Docker backend's environment["image_digest"].)
                **(
                    {"image_digest": result.environment["image_digest"]}
                    if tool.lock and result.environment.get("image_digest")
                    else {}
                ),
                # Where it ran, as the backend reported it (the Ray node and actor).
                **({"environment": dict(result.environment)} if result.environment else {}),
            },
        )
        return CallOutcome.from_result(result, tool=tool.ref, policy=policy_used)
