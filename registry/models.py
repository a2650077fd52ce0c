"""The registry's public data types: what `Registry` methods return.

All are pydantic models, so `model_dump(mode="json")` is the `--json` output
of the matching CLI command.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..sandbox.contract import ErrorInfo, LimitName, Limits, Lock, PolicyName, Status
from .comparators import TABLE as _COMPARATOR_TABLE
from .outcome import CallOutcome  # a dataclass: a call builds no pydantic model

__all__ = [
    "AddResult",
    "AuditEntry",
    "AuditReport",
    "CallOutcome",
    "CaseEvidence",
    "Comparator",
    "Prelude",
    "Provenance",
    "ProvenanceInput",
    "Signature",
    "TestCase",
    "ToolDiff",
    "ToolVersion",
    "VersionStatus",
    "Verification",
]

VersionStatus = Literal["unverified", "verified", "failed"]


def _known_comparator(name: str) -> str:
    if name not in _COMPARATOR_TABLE:
        raise ValueError(f"unknown comparator {name!r}; choose from {', '.join(_COMPARATOR_TABLE)}")
    return name


# The name of a comparator: a key of registry/comparators.py's table (read
# when a case is validated, so a comparator is added in that table alone).
Comparator = Annotated[str, AfterValidator(_known_comparator)]
Bump = Literal["initial", "major", "minor", "patch", "explicit", "existing"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Signature(_Model):
    """The entrypoint's interface as JSON Schema."""

    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    untyped: list[str] = Field(default_factory=list, description="parameters with no annotation")
    description: str | None = Field(None, description="the entrypoint's docstring")


class TestCase(_Model):
    """One stored test case: call with `args` or run `snippet` (which sets `ans`),
    then compare with `expected` using `comparator`."""

    __test__ = False  # not a pytest class

    name: str | None = None
    args: dict[str, Any] | None = None
    snippet: str | None = None
    expected: Any = None
    comparator: Comparator = "exact"
    tolerance: float | None = Field(None, ge=0, description="for comparator 'float'; default 1e-9 relative")


class ProvenanceInput(_Model):
    """What the registering party says about where a tool came from."""

    generator: str | None = Field(None, description="e.g. a model id, 'human', a pipeline name")
    prompt: str | None = Field(None, description="the prompt or the full transcript, as text")
    parent: str | None = Field(None, description="reference of the version this one derives from")
    metadata: dict[str, str] = Field(default_factory=dict)


class Provenance(_Model):
    """Provenance as stored with a version."""

    generator: str | None = None
    prompt: str | None = None
    prompt_sha256: str | None = None
    parent: str | None = Field(None, description="'name@version' of the parent, resolved at add time")
    parent_sha256: str | None = None
    registered_by: str
    registered_at: str = Field(description="ISO 8601, UTC")
    source_sha256: str
    metadata: dict[str, str] = Field(default_factory=dict)


class ToolVersion(_Model):
    """One immutable version of a tool, with its lifecycle state."""

    name: str
    version: str
    sha256: str = Field(
        description="content hash over the canonical form of source, entrypoint, signature, tests "
        "(and the policy, lock and prelude, when the version has them)"
    )
    entrypoint: str
    source: str
    signature: Signature
    tests: list[TestCase] = Field(default_factory=list)
    limits: Limits | None = Field(None, description="limits the tool declared at add time")
    policy: PolicyName = Field(
        "restricted",
        description="the policy the tool declared at add time: 'restricted' (RestrictedPython) or 'plain' "
        "(ordinary Python, inside the sandbox's OS jail or container)",
    )
    lock: Lock | None = Field(
        None, description="the packages the version needs, resolved at add time to exact wheels (None: stdlib only)"
    )
    prelude: str | None = Field(None, description="code run in the tool's namespace before the tool, if any")
    status: VersionStatus = "unverified"
    deprecated: str | None = Field(None, description="deprecation message, if deprecated")
    yanked: str | None = Field(None, description="yank reason, if yanked")
    provenance: Provenance
    created_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def requires(self) -> list[str]:
        """The requirements the version declared (those its lock resolved)."""
        return list(self.lock.requirements) if self.lock else []


class Prelude(_Model):
    """A named prelude stored in the registry: shared code (typically a
    library's import block) that versions copy at add time."""

    name: str
    text: str
    sha256: str
    requires: list[str] = Field(default_factory=list, description="requirements a version using it gets too")
    updated_by: str
    updated_at: str


class AddResult(_Model):
    tool: ToolVersion
    created: bool = Field(description="False when identical content already existed")
    bump: Bump
    notes: list[str] = Field(default_factory=list, description="what admission changed or noticed")


class CaseEvidence(_Model):
    index: int
    name: str | None = None
    passed: bool
    status: Status
    expected: Any = None
    actual: Any = None
    error: ErrorInfo | None = None
    limit: LimitName | None = None
    duration_ms: float
    # What the backend reported of where the case ran (`Result.environment`:
    # the Ray node and actor, Docker's image); empty where it reports nothing.
    environment: dict[str, str] = Field(default_factory=dict)


class Verification(_Model):
    tool: str = Field(description="name@version")
    sha256: str
    status: Literal["verified", "failed"]
    backend: str
    policy: PolicyName | None = Field(
        None, description="the policy the cases ran under (None: recorded before policies)"
    )
    layers: list[str] = Field(
        default_factory=list,
        description="isolation layers in force for every case of the run (those the backend reported for all of them)",
    )
    image_digest: str | None = None
    passed: int
    failed: int
    cases: list[CaseEvidence]
    verified_at: str


class ToolDiff(_Model):
    old: str
    new: str
    source_diff: str = Field(description="unified diff of the sources")
    schema_diff: str = Field(description="unified diff of the signatures as sorted JSON")
    bump: Literal["major", "minor", "patch", "none"]


class AuditEntry(_Model):
    seq: int
    at: str
    actor: str
    event: str
    tool: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    entry_hash: str


class AuditReport(_Model):
    ok: bool
    entries: int
    first_bad: int | None = Field(None, description="seq of the first entry whose hash or link is wrong")
    problem: str | None = None
