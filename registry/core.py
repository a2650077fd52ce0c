"""`Registry`: the public Python API. The CLI is a thin layer over it.

INTERFACE SKELETON: signatures and docstrings are the contract; bodies are
being written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..sandbox.contract import Limits
from .models import (
    AddResult,
    AuditEntry,
    AuditReport,
    CallOutcome,
    ProvenanceInput,
    TestCase,
    ToolDiff,
    ToolVersion,
    Verification,
)

__all__ = ["DEFAULT_MAX_LIMITS", "Registry", "default_registry_path"]

DEFAULT_MAX_LIMITS = Limits(cpu=60, wall=120, memory=4096, output=16384, pids=256, disk=256)


def default_registry_path() -> Path:
    """$TOOLCRIB_REGISTRY, else $XDG_DATA_HOME/toolcrib/registry.db (~/.local/share/...)."""
    raise NotImplementedError


class Registry:
    """A tool registry in one SQLite file.

    ``Registry(path)`` opens (creating and migrating) the database. ``actor`` is
    recorded in provenance and every audit entry (default: $TOOLCRIB_ACTOR,
    else the OS user name). ``max_limits`` caps every declared or requested limit. With
    ``create=False`` a missing database file raises NotFound instead of being
    created (read-only CLI commands use that).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        actor: str | None = None,
        max_limits: Limits = DEFAULT_MAX_LIMITS,
        create: bool = True,
    ) -> None:
        raise NotImplementedError

    path: Path

    def close(self) -> None: ...
    def __enter__(self) -> "Registry": ...
    def __exit__(self, *exc: object) -> None: ...

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
        strip_top_level: bool = False,
        markdown: bool | None = None,
    ) -> AddResult:
        """Admit and store a new version (or return the identical existing one).

        ``markdown=None`` detects an LLM Markdown reply (```python blocks) by itself.
        Raises AdmissionError, TestsFormatError, ConflictError, NotFound (parent).
        """
        raise NotImplementedError

    def deprecate(self, ref: str, message: str) -> ToolVersion: ...
    def yank(self, ref: str, reason: str) -> ToolVersion: ...

    # -- reading -----------------------------------------------------------
    def get(self, ref: str, *, allow_yanked: bool = True) -> ToolVersion:
        """Resolve NAME (newest non-yanked version), NAME@1.2.0 or NAME@sha256:<prefix>."""
        raise NotImplementedError

    def list(self, *, include_yanked: bool = False) -> list[ToolVersion]:
        """The newest version of every tool."""
        raise NotImplementedError

    def history(self, name: str) -> list[ToolVersion]:
        """Every version of one tool, oldest first."""
        raise NotImplementedError

    def search(self, query: str, *, limit: int = 20) -> list[ToolVersion]:
        """Newest versions whose name, description or docstring match the words of `query`."""
        raise NotImplementedError

    def diff(self, old_ref: str, new_ref: str) -> ToolDiff: ...
    def provenance(self, ref: str) -> dict[str, Any]:
        """An in-toto Statement (v1) with a SLSA-style predicate for that version."""
        raise NotImplementedError

    def verification(self, ref: str) -> Verification | None:
        """The newest stored verification evidence of that version, if any."""
        raise NotImplementedError

    # -- running -----------------------------------------------------------
    def verify(
        self,
        ref: str,
        *,
        backend: str = "restricted",
        limits: dict[str, float] | None = None,
        policy: str | None = None,
        on_case: Callable[[int, int], None] | None = None,
    ) -> Verification:
        """Run every test case (each in its own fresh sandbox), store evidence and verdict.

        ``limits`` overrides (e.g. {"cpu": 10}) must stay within ``max_limits``.
        ``policy``: None means "restricted" on the restricted backend and
        "plain" on Docker; "restricted" on Docker is defence in depth.
        """
        raise NotImplementedError

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
    ) -> CallOutcome:
        """Validate arguments against the input schema, run, audit, return.

        Raises PolicyRefused (unverified/yanked), ArgumentsError, NotFound.
        Tool errors and limits are *outcomes* (status), not exceptions.
        """
        raise NotImplementedError

    # -- audit -------------------------------------------------------------
    def audit(
        self,
        *,
        tool: str | None = None,
        event: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]: ...
    def audit_verify(self) -> AuditReport: ...

    # -- bundles -------------------------------------------------------------
    def export(self, refs: Iterable[str] | None = None) -> dict[str, Any]:
        """A portable JSON bundle (all versions of the named tools, or everything)."""
        raise NotImplementedError

    def import_bundle(self, bundle: dict[str, Any]) -> list[AddResult]:
        """Import a bundle, checking every digest; all-or-nothing."""
        raise NotImplementedError
