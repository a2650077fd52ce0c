"""Running model code that is not registered yet, in the sandbox, and saying
what went wrong in one paragraph the model can act on."""

from __future__ import annotations

from ..registry.calls import backend_name
from ..registry.errors import SandboxUnavailable
from ..sandbox import Backend, Job, Limits, Result, get_backend
from ..sandbox.contract import PolicyName

__all__ = ["describe_failure", "run_snippet"]

_MESSAGE_CAP = 600


def run_snippet(
    source: str,
    entrypoint: str,
    snippet: str,
    *,
    limits: Limits | None = None,
    backend: str | None = None,
    stub_entrypoint: bool = False,
    runner: Backend | None = None,
    policy: PolicyName | None = None,
    measure: bool = False,
) -> Result:
    """Run `snippet` after `source` in a fresh sandbox (snippet mode); with
    `stub_entrypoint`, calls of the entrypoint return an opaque object
    instead of running the tool (contract.Job). `runner` is the backend to
    use (`make` passes its registry's, so an injected one serves make's runs
    and its verification alike); by default, the table's shared `backend`.
    ``policy``: None for the backend's default; ``measure``: ask the
    backend what the run used (`Job.measure`)."""
    backend = backend_name(backend)
    if runner is None:
        try:
            runner = get_backend(backend)
        except Exception as exc:  # noqa: BLE001 - any start-up failure means "cannot run"
            raise SandboxUnavailable(f"the {backend} backend could not start: {exc}") from None
    # The backend's own default for code that declared nothing (the restricted
    # policy where it is a layer of the boundary, plain inside a container).
    job = Job(
        source=source,
        entrypoint=entrypoint,
        mode="snippet",
        snippet=snippet,
        limits=limits or Limits(),
        policy=policy or runner.default_policy("restricted"),
        stub_entrypoint=stub_entrypoint,
        measure=measure,
    )
    result = runner.run(job)
    if result.status == "unavailable":
        why = result.error.message if result.error else "no reason given"
        raise SandboxUnavailable(f"the {backend} backend is unavailable: {why}")
    return result


def describe_failure(result: Result) -> str:
    """One line: type, message and line of a failed run (never a traceback)."""
    if result.status == "limit":
        return f"the code hit the sandbox's {result.limit} limit (it ran too long or used too much)"
    error = result.error
    if error is None:
        return f"the run ended with status {result.status}"
    message = " ".join(error.message.split()) or "(no message)"
    if len(message) > _MESSAGE_CAP:
        message = message[: _MESSAGE_CAP - 1] + "…"
    where = f" at line {error.line}" if error.line and f"line {error.line}" not in message else ""
    kind = "refused by the sandbox policy: " if result.status == "blocked" else ""
    return f"{kind}{error.type}: {message}{where}"
