"""The one contract both sandbox backends honour: what goes in (`Job`), under
which bounds (`Limits`), and what comes back (`Result`).

Everything here is plain data. A `Result` is built by the host from JSON that
the sandbox wrote; the host never holds an object the sandbox made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ArgForm",
    "Backend",
    "Cancel",
    "CallMode",
    "ErrorInfo",
    "Job",
    "LIMIT_NAMES",
    "LimitName",
    "Limits",
    "Lock",
    "LockedPackage",
    "PolicyName",
    "Result",
    "Status",
]

Status = Literal["ok", "error", "blocked", "limit", "unavailable"]
"""ok: the tool returned; error: it raised (or its result was not JSON);
blocked: the policy refused it (restricted compiler, a guard, an import);
limit: a resource limit was hit (see `Result.limit`); unavailable: the backend
could not run anything (no Docker engine, the zygote cannot start)."""

LimitName = Literal["cpu", "wall", "memory", "output", "pids", "disk"]
LIMIT_NAMES: tuple[str, ...] = ("cpu", "wall", "memory", "output", "pids", "disk")

CallMode = Literal["args", "snippet"]

PolicyName = Literal["restricted", "plain"]


class Limits(BaseModel):
    """Resource limits for one call. Units are in the field names' docs;
    the CLI spells them `--limit cpu=2 --limit memory=512`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: float = Field(2.0, gt=0, description="CPU seconds")
    wall: float = Field(5.0, gt=0, description="wall-clock seconds")
    memory: int = Field(256, gt=0, description="address space / container memory, MiB")
    output: int = Field(1024, gt=0, description="result JSON plus captured prints, KiB")
    pids: int = Field(32, gt=0, description="processes and threads (Docker backend)")
    disk: int = Field(8, ge=0, description="largest file / tmpfs size, MiB (0: no writes)")

    def capped(self, maxima: "Limits") -> "Limits":
        """These limits, each lowered to at most the matching maximum."""
        return Limits(**{k: min(getattr(self, k), getattr(maxima, k)) for k in type(self).model_fields})

    def override(self, **changes: float | int) -> "Limits":
        """A copy with some fields changed (validated)."""
        return Limits(**{**self.model_dump(), **changes})


class LockedPackage(BaseModel):
    """One distribution of a lock: an exact wheel, named by its file and hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    filename: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Lock(BaseModel):
    """What a version needs beyond the standard library, resolved once (at
    `add`) to exact wheels: `sandbox/packages.py` makes it and turns it into
    a site directory; the backends run the version with that directory on
    its path. ``imports``: the top-level import names the packages provide
    (preloaded where the jail allows no later import)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requirements: tuple[str, ...]
    packages: tuple[LockedPackage, ...]
    imports: tuple[str, ...] = ()
    python: str = "cp311"

    def digest(self) -> str:
        """sha256 over the canonical JSON of the lock: what images and
        zygotes are keyed by."""
        import hashlib
        import json

        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


ArgForm = Literal["dataframe", "ndarray"]


class Job(BaseModel):
    """One call of one tool: the tool's whole source, which function to call,
    and either JSON arguments or a snippet that calls it and sets `ans`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    entrypoint: str
    mode: CallMode = "args"
    args: dict[str, Any] = Field(default_factory=dict)
    snippet: str | None = None
    limits: Limits = Field(default_factory=Limits)
    # Docker backend only: "restricted" also applies the RestrictedPython policy
    # inside the container (defence in depth); "plain" runs the tool as Python.
    policy: PolicyName = "restricted"
    # Packages the version needs (None: the standard library only).
    lock: Lock | None = None
    # Code run in the tool's namespace before the tool (a library's shared
    # import block), or None.
    prelude: str | None = None
    # Parameters whose JSON argument becomes a pandas DataFrame or a numpy
    # array before the call (see docs/formats.md).
    arg_forms: dict[str, ArgForm] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mode_matches(self) -> "Job":
        if self.mode == "snippet" and not self.snippet:
            raise ValueError("a snippet job needs a snippet")
        if self.mode == "args" and self.snippet is not None:
            raise ValueError("an args job takes no snippet")
        return self

    def wire(self) -> dict[str, Any]:
        """The job as the JSON-able dict that crosses into a sandbox."""
        return self.model_dump(mode="json")


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    line: int | None = None


class Result(BaseModel):
    """What one call produced. `result` is parsed JSON (never a sandbox object)."""

    model_config = ConfigDict(frozen=True)

    status: Status
    result: Any = None
    error: ErrorInfo | None = None
    limit: LimitName | None = None
    stdout: str = ""
    backend: str
    duration_ms: float = 0.0
    image_digest: str | None = None
    # The isolation layers the host knows were in force for this call
    # (e.g. "landlock", "seccomp", "netns" on the restricted backend; see
    # `toolcrib doctor`). Recorded in the audit log and verification evidence.
    layers: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Cancel:
    """A caller's way to stop a job that is running, from any other thread.

    While a job runs, the backend registers how to stop it (``on_cancel``);
    ``cancel()`` runs those hooks once. A hook registered after the fact runs
    at once. Used by `toolcrib serve`, where a client may cancel a call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._hooks: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            hooks, self._hooks = list(self._hooks.values()), {}
        for hook in hooks:
            hook()

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Register `hook`; returns the function that unregisters it."""
        with self._lock:
            if not self._cancelled:
                key = self._next
                self._next += 1
                self._hooks[key] = hook

                def remove() -> None:
                    with self._lock:
                        self._hooks.pop(key, None)

                return remove
        hook()
        return lambda: None


@runtime_checkable
class Backend(Protocol):
    """A way to run jobs. `run` never raises for anything the tool does: every
    outcome, including "the engine is gone", is a `Result`."""

    name: str

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        """Run one job. ``cancel``, when given and cancelled, kills the job's
        process (or container) as soon as possible."""
        ...

    def close(self) -> None: ...
