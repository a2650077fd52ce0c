"""Usage per version from the audit log (registry/stats.py): calls with every
outcome, then the numbers in Registry.usage, show and list --stats (text and
--json).

Usage is bookkeeping of the audit log, not the sandbox: the calls run on a
`FakeBackend` injected into the registry, whose handler gives each outcome
(the real backends producing them is tests/sandbox/test_contract.py's and the
attacks' business). The audit entries are the real ones `Registry.call` writes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from toolcrib.registry.errors import ArgumentsError
from toolcrib.registry.stats import _p95
from toolcrib.sandbox.contract import ErrorInfo, Job, Result
from toolcrib.sandbox.fake import FakeBackend, exec_job

from toolcrib import PolicyRefused, Registry

TOOL = '''\
def divide(a: int, b: int) -> float:
    """Divide a by b; spins forever when a is -1; pokes at the class tree when a is -2."""
    if a == -1:
        while True:
            pass
    if a == -2:
        return len(getattr((), "_" + "_class_" + "_").__name__)
    return a / b
'''
TESTS = [{"args": {"a": 6, "b": 3}, "expected": 2.0}]

OTHER = '''\
def double(x: int) -> int:
    """Twice x."""
    return 2 * x
'''


def _outcome(job: Job) -> object:
    """What the sandbox would answer: the spin hits the CPU limit, the class
    walk is blocked by the policy, the rest runs (plain exec)."""
    if job.args.get("a") == -1:
        return Result(status="limit", backend="restricted", limit="cpu", duration_ms=1000.0)
    if job.args.get("a") == -2:
        return Result(
            status="blocked",
            backend="restricted",
            duration_ms=1.0,
            error=ErrorInfo(type="PolicyViolation", message="access to '__class__' is not allowed"),
        )
    return exec_job(job)


@pytest.fixture(scope="module")
def module_reg(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Built once for the module (the tests only read it): calls of every outcome."""
    fake = FakeBackend(_outcome, name="restricted")
    with Registry(tmp_path_factory.mktemp("stats") / "r.db", actor="tester", backends={"restricted": fake}) as registry:
        registry.add(TOOL, tests=TESTS)
        registry.add(OTHER)  # never verified, never run
        with pytest.raises(PolicyRefused):
            registry.call("divide", {"a": 1, "b": 2})  # refused: unverified
        registry.verify("divide")
        for a in (1, 2, 3, 4):
            assert registry.call("divide", {"a": a, "b": 2}).status == "ok"
        assert registry.call("divide", {"a": 1, "b": 0}).status == "error"
        assert registry.call("divide", {"a": -2, "b": 1}).status == "blocked"
        assert registry.call("divide", {"a": -1, "b": 1}, limits={"cpu": 1}).status == "limit"
        with pytest.raises(ArgumentsError):
            registry.call("divide", {"a": "x", "b": 1})  # invalid arguments
        assert len(fake.jobs) == 1 + 7  # one test case, seven calls that ran: none in a zygote
        yield registry


def test_counts_durations_and_last_use(module_reg: Registry) -> None:
    stats = module_reg.usage(["divide"])["divide@1.0.0"]
    assert (stats.calls, stats.successes, stats.errors, stats.blocked, stats.limit_hits, stats.refused) == (
        9,
        4,
        1,
        1,
        1,
        2,
    )
    assert stats.unavailable == 0
    entries = [e for e in module_reg.audit(tool="divide@1.0.0", event="call")]
    ran = [e.details["duration_ms"] for e in entries if e.details["status"] in ("ok", "error", "blocked", "limit")]
    assert len(ran) == 7
    assert stats.median_ms == pytest.approx(statistics.median(ran), abs=1e-3)
    assert stats.p95_ms == pytest.approx(max(ran), abs=1e-3)  # 7 samples: the 95th percentile is the largest
    assert stats.last_used == entries[-1].at


def test_never_called_and_every_called_version(module_reg: Registry) -> None:
    never = module_reg.usage(["double"])["double@1.0.0"]
    assert never.calls == 0 and never.median_ms is None and never.p95_ms is None and never.last_used is None
    assert list(module_reg.usage()) == ["divide@1.0.0"]
    assert module_reg.usage([]) == {}


def test_p95_is_nearest_rank() -> None:
    assert _p95([float(n) for n in range(1, 21)]) == 19.0
    assert _p95([5.0]) == 5.0
    assert _p95([3.0, 1.0, 2.0]) == 3.0


@pytest.fixture
def cli_registry(module_reg: Registry) -> Path:
    """The CLI reads `module_reg`'s tools."""
    return module_reg.path


def test_show_has_usage(tc) -> None:
    text = tc("show", "divide")
    assert text.exit_code == 0
    line = next(row for row in text.stdout.splitlines() if row.strip().startswith("usage:"))
    assert "9 call(s): 4 ok, 1 error, 1 blocked, 1 limit, 2 refused" in line and "p95" in line
    data = json.loads(tc("show", "divide", "--json").stdout)
    assert data["usage"]["calls"] == 9 and data["usage"]["limit_hits"] == 1
    assert "never called" in tc("show", "double").stdout
    assert json.loads(tc("show", "double", "--json").stdout)["usage"]["calls"] == 0


def test_list_stats(tc) -> None:
    table = tc("list", "--stats")
    assert table.exit_code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:9] == ["NAME", "VERSION", "STATUS", "CALLS", "OK", "ERROR", "BLOCKED", "LIMIT", "REFUSED"]
    divide = next(r.split() for r in rows if r.startswith("divide"))
    assert divide[3:9] == ["9", "4", "1", "1", "1", "2"]
    double = next(r.split() for r in rows if r.startswith("double"))
    assert double[3] == "0" and double[-1] == "-"
    data = {t["ref"]: t["usage"] for t in json.loads(tc("list", "--stats", "--json").stdout)}
    assert data["divide@1.0.0"]["successes"] == 4 and data["double@1.0.0"]["calls"] == 0
    # Without --stats the listing is unchanged.
    assert "usage" not in json.loads(tc("list", "--json").stdout)[0]
