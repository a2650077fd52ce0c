"""Verifying a version: run each test case in its own fresh sandbox, judge
it (`cases.compare`), and store the evidence with the verdict.

`run_cases` runs outside any transaction (a sandbox run may take seconds);
`store_verification` then writes the evidence, the version's status and the
``verify`` audit entry inside the caller's one write transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..sandbox.contract import Backend, ErrorInfo, Limits, PolicyName, Result
from .audit import append_entry, cap_value
from .calls import sandbox_job
from .cases import compare
from .errors import SandboxUnavailable
from .models import CaseEvidence, TestCase, ToolVersion, Verification
from .parallel import run_jobs
from .store import utc_now
from .store_versions import insert_verification, set_status
from .versions import canonical_json

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["evidence", "run_cases", "store_verification", "unavailable_message"]

# Evidence keeps a bounded copy of what a test case returned.
_EVIDENCE_CAP = 4096


def run_cases(
    tool: ToolVersion,
    runner: Backend,
    *,
    backend: str,
    limits: Limits,
    policy: PolicyName,
    on_case: Callable[[int, int], None] | None,
) -> Verification:
    """Every test case of `tool`, each in its own sandbox (several at once): the verdict and
    its evidence. The layers recorded are those in force for *every* case
    (the intersection, in the first case's order). SandboxUnavailable if
    any case finds the sandbox unavailable (nothing is stored then)."""
    cases: list[CaseEvidence] = []
    digest: str | None = None
    layers: list[str] | None = None
    total = len(tool.tests)
    jobs = [
        sandbox_job(tool, tool.signature.input_schema, limits, policy, args=case.args, snippet=case.snippet)
        for case in tool.tests
    ]
    # Each case still runs in its own fresh jailed child; several at once,
    # on the backend's spare children (parallel.run_jobs), results in order.
    finished = [0]
    counting = threading.Lock()

    def done(_index: int, _result: Result) -> None:
        if on_case is not None:
            with counting:
                finished[0] += 1
                on_case(finished[0], total)

    results = run_jobs(runner, jobs, on_done=done)
    for result in results:
        if result is not None and result.status == "unavailable":
            raise SandboxUnavailable(unavailable_message(backend, result))
    for index, (case, ran) in enumerate(zip(tool.tests, results, strict=True)):
        assert ran is not None  # no deadline: every job ran
        # The evidence's image_digest column: the Docker backend's environment map names it.
        digest = ran.environment.get("image_digest") or digest
        layers = list(ran.layers) if layers is None else [x for x in layers if x in ran.layers]
        cases.append(evidence(index, case, ran))
    passed = sum(1 for e in cases if e.passed)
    return Verification(
        tool=tool.ref,
        sha256=tool.sha256,
        status="verified" if passed == total else "failed",
        backend=backend,
        policy=policy,
        layers=layers or [],
        image_digest=digest,
        passed=passed,
        failed=total - passed,
        cases=cases,
        verified_at=utc_now(),
    )


def unavailable_message(backend: str, result: Result) -> str:
    why = result.error.message if result.error else "no reason given"
    return f"the {backend} backend is unavailable: {why}"


def evidence(index: int, case: TestCase, result: Result) -> CaseEvidence:
    """One case's evidence: passed or not, and a bounded copy of what it returned."""
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
        environment=dict(result.environment),
    )


def store_verification(
    db: sqlite_utils.Database, *, actor: str, version_id: int, verification: Verification, limits: Limits
) -> None:
    """The evidence, the version's new status and the ``verify`` audit entry
    (inside the caller's write transaction)."""
    insert_verification(
        db,
        {
            "version_id": version_id,
            "sha256": verification.sha256,
            "status": verification.status,
            "backend": verification.backend,
            "policy": verification.policy,
            "layers": canonical_json(verification.layers),
            "image_digest": verification.image_digest,
            "passed": verification.passed,
            "failed": verification.failed,
            "cases": canonical_json([e.model_dump(mode="json") for e in verification.cases]),
            "limits": canonical_json(limits.to_json()),
            "verified_at": verification.verified_at,
        },
    )
    set_status(db.conn, version_id, verification.status)
    append_entry(
        db,
        actor=actor,
        event="verify",
        tool=verification.tool,
        details={
            "status": verification.status,
            "passed": verification.passed,
            "failed": verification.failed,
            "backend": verification.backend,
            "policy": verification.policy,
            "layers": verification.layers,
            "image_digest": verification.image_digest,
            "sha256": verification.sha256,
        },
    )
