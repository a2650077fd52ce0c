"""A call's outcome: what `Registry.call` returns and `call --json` prints.

A plain frozen dataclass (a call builds no pydantic model), in a module of
its own that imports nothing of the registry: models.py re-exports it, and
calls.py builds it, without an import circle between them (errors.py
imports nothing).

A call that never reached a sandbox (refused, bad arguments, not found) has
the same shape, `refusal`: every door (`call --json`, the MCP server) prints
that one JSON for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..sandbox.contract import ErrorInfo, LimitName, PolicyName, Result, Status
from .errors import ArgumentsError, NotFound, PolicyRefused, SandboxUnavailable, ToolcribError

__all__ = ["CallOutcome", "refusal", "refusal_status"]


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


def refusal_status(err: ToolcribError) -> str:
    """The status of a call refused before it ran: "not_found", "refused" (by
    policy: unverified, yanked), "unavailable" (no sandbox) or "invalid"
    (bad arguments, reference, limits or anything else the caller gave)."""
    if isinstance(err, NotFound):
        return "not_found"
    if isinstance(err, PolicyRefused):
        return "refused"
    if isinstance(err, SandboxUnavailable):
        return "unavailable"
    return "invalid"


def refusal(tool: str | None, err: ToolcribError) -> dict[str, Any]:
    """A call refused before it ran, as JSON with `CallOutcome.to_json`'s keys
    (nothing ran: no result, backend, policy or layers), plus ``fields``
    (each bad argument and why) for bad arguments. `tool` is the reference
    the caller gave (None when it gave none)."""
    data: dict[str, Any] = {
        "status": refusal_status(err),
        "result": None,
        "error": {"type": type(err).__name__, "message": err.message, "line": getattr(err, "line", None)},
        "limit": None,
        "stdout": "",
        "tool": tool,
        "backend": None,
        "policy": None,
        "layers": [],
        "duration_ms": 0.0,
    }
    if isinstance(err, ArgumentsError):
        data["fields"] = dict(err.fields)
    return data
