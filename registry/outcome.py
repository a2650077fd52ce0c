"""A call's outcome: what `Registry.call` returns and `call --json` prints.

A plain frozen dataclass (a call builds no pydantic model), in a module of
its own that imports nothing of the registry: models.py re-exports it, and
calls.py builds it, without an import circle between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..sandbox.contract import ErrorInfo, LimitName, PolicyName, Result, Status

__all__ = ["CallOutcome"]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """A call's result: the CLI's `call --json` object (`to_json()`)."""

    status: Status
    tool: str
    """name@version"""
    backend: str
    duration_ms: float
    result: Any = None
    error: ErrorInfo | None = None
    limit: LimitName | None = None
    stdout: str = ""
    policy: PolicyName | None = None
    """the policy the call ran under"""
    layers: list[str] = field(default_factory=list)
    """isolation layers the backend reports in force for this call"""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "result": self.result,
            "error": self.error.to_json() if self.error is not None else None,
            "limit": self.limit,
            "stdout": self.stdout,
            "tool": self.tool,
            "backend": self.backend,
            "policy": self.policy,
            "layers": list(self.layers),
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_result(cls, result: Result, *, tool: str, policy: PolicyName | None) -> CallOutcome:
        """The outcome of a sandbox `Result` for `tool` (name@version) run under `policy`."""
        return cls(
            status=result.status,
            result=result.result,
            error=result.error,
            limit=result.limit,
            stdout=result.stdout,
            tool=tool,
            backend=result.backend,
            policy=policy,
            layers=list(result.layers),
            duration_ms=result.duration_ms,
        )
