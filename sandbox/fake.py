"""`FakeBackend`: the tests' (and users') double for a sandbox backend, as
httpx's ``MockTransport`` is for a transport.

    from toolcrib import Registry
    from toolcrib.sandbox.fake import FakeBackend

    fake = FakeBackend(lambda job: {"sum": job.args["a"] + job.args["b"]})
    with Registry("t.db", backends={"restricted": fake}) as reg:
        ...                      # add, verify and call as usual
    assert fake.jobs[0].args == {"a": 1, "b": 2}

It keeps the `contract.Backend` promise: every run returns a real `Result`
(never raises for what the job does), and it records each `Job` it saw in
``jobs``. A ``handler`` decides the outcome: it returns a `Result` (used as
is), a `Ran`, or any JSON value (an "ok" result), and an exception it raises
becomes an "error" result of that type (with the line in the tool's source).

Without a handler, the job's source is run with plain ``exec`` IN THIS
PROCESS: **no isolation at all**, no limits, the tool sees the host. That is
only for tests whose tools are the tests' own and whose point is not the
sandbox (registry bookkeeping, a door's wording): the real backends keep the
contract suite, the attacks and the jail tests. The fake is not in the
production table of backends (`backends.FACTORIES`), so neither the CLI's
``--backend`` nor ``toolcrib serve`` can select it by name; a test injects it
(``Registry(backends=...)``) or registers it for a block
(`backends.registered`).
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .contract import Cancel, ErrorInfo, Job, Lock, PolicyName, Result

__all__ = ["FakeBackend", "Handler", "Ran", "exec_job"]

# What decides a job's outcome: a Result, or the JSON value of an "ok" one.
Handler = Callable[[Job], Any]


class FakeBackend:
    """A backend that runs jobs by `handler` (default: `exec_job`, in this
    process, without isolation) and records them in ``jobs``."""

    def __init__(
        self, handler: Handler | None = None, *, name: str = "fake", environment: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.handler: Handler = handler or exec_job
        self.environment = dict(environment or {})
        self.jobs: list[Job] = []
        self.started = False
        self.closed = False
        self._lock = threading.Lock()

    def default_policy(self, declared: PolicyName) -> PolicyName:
        """The declared policy, as the restricted backend answers (the fake
        enforces neither)."""
        return declared

    def start(self) -> None:
        self.started = True

    def prepare(self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None) -> None:
        """Nothing to prepare: a fake has no runtimes."""
        return None

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "available": True, "isolation": "none (a test double)"}

    def close(self) -> None:
        self.closed = True

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        """The handler's outcome as a Result; never raises."""
        with self._lock:
            self.jobs.append(job)
        started = time.perf_counter()
        try:
            outcome = self.handler(job)
        except Exception as exc:  # noqa: BLE001 - the contract: every outcome is a Result
            return self._result("error", started, error=_error_info(exc))
        if isinstance(outcome, Result):
            return outcome
        fields: dict[str, Any] = {}
        if isinstance(outcome, Ran):
            outcome, fields = outcome.value, {"stdout": outcome.stdout, "calls": outcome.calls}
        try:
            value = json.loads(json.dumps(outcome, allow_nan=False))
        except (TypeError, ValueError) as exc:
            return self._result("error", started, error=ErrorInfo(type="TypeError", message=str(exc)), **fields)
        return self._result("ok", started, result=value, **fields)

    def _result(self, status: Any, started: float, **fields: Any) -> Result:
        return Result(
            status=status,
            backend=self.name,
            duration_ms=(time.perf_counter() - started) * 1000,
            environment=dict(self.environment),
            **fields,
        )


def _error_info(exc: BaseException) -> ErrorInfo:
    """The exception as the real backends report it: type, message, and the
    line of the tool's source (the innermost frame in ``<tool>``)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<tool>":
            line = frame.lineno
    return ErrorInfo(type=type(exc).__name__, message=str(exc), line=line)


@dataclass(frozen=True)
class Ran:
    """What `exec_job` saw: the value, what the code printed, and (snippet
    jobs) how many calls of the entrypoint returned."""

    value: Any
    stdout: str
    calls: int | None


def exec_job(job: Job) -> Ran:
    """Run `job` with plain ``exec`` in this process (NO isolation, no
    limits): the prelude, the source, then the entrypoint with the job's
    arguments, or the snippet (its ``ans``, else what it printed), counting
    the entrypoint's calls; with ``stub_entrypoint`` the entrypoint returns
    an opaque object instead of running. ``arg_forms`` are ignored: a double,
    not a sandbox."""
    namespace: dict[str, Any] = {"__name__": "toolcrib_fake_tool"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        if job.prelude:
            exec(compile(job.prelude, "<prelude>", "exec"), namespace)  # noqa: S102 - a test double, documented
        exec(compile(job.source, "<tool>", "exec"), namespace)  # noqa: S102
        if job.mode == "args":
            return Ran(namespace[job.entrypoint](**job.args), printed.getvalue(), None)
        calls = 0
        tool = namespace[job.entrypoint]

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            value = object() if job.stub_entrypoint else tool(*args, **kwargs)
            calls += 1
            return value

        namespace[job.entrypoint] = counted
        exec(compile(job.snippet or "", "<snippet>", "exec"), namespace)  # noqa: S102
    value = namespace["ans"] if "ans" in namespace else printed.getvalue()
    return Ran(value, printed.getvalue(), calls)
