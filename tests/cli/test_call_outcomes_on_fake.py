"""`toolcrib call` and `verify` on a `FakeBackend` that answers each outcome a
sandbox can give: the documented exit code, the `call --json` object on
stdout, and an audit entry for every call, whatever the sandbox said.

The sandbox is not under test (the backends' contract suite and the attack
suites run the real ones); the fake makes every outcome, `unavailable`
included, happen on demand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from toolcrib.sandbox.contract import ErrorInfo, Job, Result
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

DOUBLE = '''
def double(x: int) -> int:
    """Double x."""
    return 2 * x
'''

# What the fake's sandbox answers for each x, and the exit code docs/cli.md promises for it.
OUTCOMES: dict[int, tuple[Result, int]] = {
    1: (Result(status="ok", backend="restricted", result=2), 0),
    2: (Result(status="error", backend="restricted", error=ErrorInfo(type="ValueError", message="no", line=4)), 1),
    3: (Result(status="blocked", backend="restricted", error=ErrorInfo(type="PolicyError", message="nope")), 4),
    4: (Result(status="limit", backend="restricted", limit="cpu"), 5),
    5: (Result(status="unavailable", backend="restricted", error=ErrorInfo(type="Gone", message="engine down")), 6),
}


def _answer(job: Job) -> Result:
    return OUTCOMES[job.args["x"]][0]


@pytest.fixture
def served(cli_registry: Path, fake_sandbox: FakeBackend) -> FakeBackend:
    with Registry(cli_registry, actor="setup") as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 1}, "expected": 2}])
        reg.verify("double")
    fake_sandbox.handler = _answer
    fake_sandbox.jobs.clear()
    return fake_sandbox


@pytest.mark.parametrize("x", sorted(OUTCOMES))
def test_each_outcome_has_its_exit_code_json_and_audit_entry(
    tc: Any, cli_registry: Path, served: FakeBackend, x: int
) -> None:
    expected, code = OUTCOMES[x]
    out = tc("call", "double", "--arg", f"x={x}", "--json")
    assert out.exit_code == code, out.output
    data = json.loads(out.stdout)
    assert data["status"] == expected.status and data["tool"] == "double@1.0.0"
    assert data["limit"] == expected.limit
    assert (data["error"] or {}).get("type") == (expected.error.type if expected.error else None)
    assert [job.args for job in served.jobs] == [{"x": x}]
    with Registry(cli_registry, create=False) as reg:
        calls = reg.audit(event="call", tool="double")
    assert len(calls) == 1 and calls[0].actor == "tester"


def test_a_refused_call_never_reaches_the_sandbox_and_prints_its_json(tc: Any, served: FakeBackend) -> None:
    out = tc("call", "double", "--arg", 'x="one"', "--json")
    assert out.exit_code == 2, out.output
    assert json.loads(out.stdout)["status"] == "invalid"
    assert served.jobs == []


def test_verify_fails_with_exit_1_when_the_sandbox_answers_wrong(tc: Any, served: FakeBackend) -> None:
    served.handler = lambda job: 3  # the stored test expects 2
    out = tc("verify", "double", "--json")
    assert out.exit_code == 1, out.output
    assert json.loads(out.stdout)["status"] == "failed"
