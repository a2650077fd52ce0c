"""`make` measures the made tool on its examples and declares the limits
(and, where the jail permits it, the policy) that let the tool user's calls
finish (toolcrib/latm/measure.py).

The tool: the LATM paper's Chinese-remainder search, a loop whose cost is
its answer. On a `FakeBackend` whose runs cost a fixed time per loop step
(five times less under the plain policy) the decisions are exact: an
example near the default CPU limit, one over it, one that only finishes
under plain (with and without a jail that permits it), and a cheap tool
that keeps the defaults. One test runs the real restricted backend: the
costs come from its own measurement, and the tool user's heavier question
then finishes under the limits declared from them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from latm_tasks import SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, write_json
from reviewing import approve_waiting
from toolcrib.sandbox.contract import Job, Limits, Result
from toolcrib.sandbox.fake import FakeBackend, exec_job

from toolcrib import Registry
from toolcrib.latm import Example, ReplayModel, load_task, make, use
from toolcrib.latm.measure import HEADROOM, ExampleCost, ceiling, declare

FUNCTION = '''def smallest_with_remainders(moduli, remainders):
    """The smallest positive integer n with n % m == r for every modulus m and its remainder r."""
    n = 1
    while True:
        if all(n % m == r for m, r in zip(moduli, remainders)):
            return n
        n += 1
'''


def _question(moduli: tuple[int, ...], answer: int) -> str:
    parts = [f"{answer % m} when divided by {m}" for m in moduli]
    return f"Find the smallest positive integer that leaves remainder {', '.join(parts[:-1])} and {parts[-1]}."


def _call(moduli: tuple[int, ...], answer: int) -> str:
    return f"smallest_with_remainders({list(moduli)}, {[answer % m for m in moduli]})"


def _example(moduli: tuple[int, ...], answer: int) -> dict[str, Any]:
    assert answer < math.lcm(*moduli)  # the search's answer is the example's
    return {"input": _question(moduli, answer), "target": answer}


def _replies(demo: tuple[tuple[int, ...], int], checked: list[tuple[tuple[int, ...], int]]) -> list[str]:
    """propose (the function and a demo call), verify (a test per checked
    example), wrap (the function and a use case per checked example)."""
    propose = f"```python\n{FUNCTION}\nprint({_call(*demo)})\n```\n"
    tests = "".join(f"ret = {_call(*e)}\nans = ret\nassert ans == {e[1]}\n\n" for e in checked)
    cases = "".join(f"Question: {_question(*e)}\n\nSolution:\n```python\nans = {_call(*e)}\n```\n\n" for e in checked)
    wrap = f"```python\n{FUNCTION}```\n\nUse cases:\n\n{cases}"
    return [propose, f"```python\n{tests}```\n", wrap]


# Simulated cost of one step of the search (seconds), under each policy.
STEP = {"restricted": 1e-3, "plain": 2e-4}
CALL = re.compile(r"smallest_with_remainders\(\[([\d, ]+)\], \[([\d, ]+)\]\)")


def _steps(job: Job) -> int:
    """The loop steps a job's calls take: the sum of their answers (none when stubbed)."""
    if job.stub_entrypoint:
        return 0
    calls = [(job.args["moduli"], job.args["remainders"])] if job.mode == "args" else []
    for moduli, remainders in CALL.findall(job.snippet or ""):
        calls.append(([int(x) for x in moduli.split(",")], [int(x) for x in remainders.split(",")]))
    total = 0
    for moduli, remainders in calls:
        total += next(n for n in range(1, math.lcm(*moduli) + 1) if all(n % m == r for m, r in zip(moduli, remainders)))
    return total


def costly(job: Job) -> Result:
    """A sandbox where the search costs STEP per step: over the job's CPU
    limit it is a `limit`, else the answer with what it used."""
    seconds = _steps(job) * STEP[job.policy]
    if seconds > job.limits.cpu:
        return Result(status="limit", limit="cpu", backend="restricted", duration_ms=job.limits.cpu * 1000)
    ran = exec_job(job)
    value = json.loads(json.dumps(ran.value, default=repr))
    usage = {"cpu_seconds": f"{seconds:.3f}", "memory_mib": "1.0"}
    return Result(
        status="ok", backend="restricted", result=value, stdout=ran.stdout, calls=ran.calls,
        duration_ms=seconds * 1000 + 1, environment=usage,
    )  # fmt: skip


class JailedFake(FakeBackend):
    """The fake, saying (as the restricted backend does with its whole jail)
    that it runs the plain policy."""

    def health(self) -> dict[str, Any]:
        return {**super().health(), "plain_policy": True}


DEMO = ((7, 11, 13), 120)


def _made(tmp_path: Path, fake: FakeBackend, checked: list[tuple[tuple[int, ...], int]]) -> tuple[Registry, Any]:
    examples = [_example(*DEMO), *(_example(*e) for e in checked)]
    task = load_task(write_json(tmp_path / "crt.json", examples))
    reg = Registry(tmp_path / "r.db", actor="t", backends={"restricted": fake})
    made = make(reg, task, ReplayModel(_replies(DEMO, checked)), demos=1, validate=len(checked))
    return reg, made


def _user_answer(reg: Registry, ref: str, moduli: tuple[int, ...], answer: int) -> Any:
    """The tool user's call of a question heavier than every example (made
    by a model, the version is approved by a reviewer first)."""
    approve_waiting(reg, Path(reg.path).parent)
    model = ReplayModel([f"```python\nans = {_call(moduli, answer)}\n```"])
    report = use(reg, ref, [Example(_question(moduli, answer), answer, has_target=True)], model)
    return report.answers[0]


def test_an_example_near_the_default_cpu_limit_gets_limits_with_headroom(tmp_path: Path) -> None:
    # 0.6 s and 1.3 s of the default 2 s: they pass, and the user's 6 s question would not.
    reg, made = _made(tmp_path, FakeBackend(costly, name="restricted"), [((7, 11, 13), 600), ((11, 13, 17), 1300)])
    with reg:
        assert made.status == "made", made.error
        measured = made.measured
        assert measured is not None
        assert [(c.example, c.cpu_seconds) for c in measured.examples] == [(2, 0.6), (3, 1.3)]
        assert measured.limits == {"cpu": 13.0, "wall": 33.0, "memory": 256}  # 10x 1.3 s; wall 2.5x the cpu
        assert measured.policy == "restricted" and "example 3 used 1.30 s CPU" in measured.notes[-1]
        tool = reg.get(made.tool)
        assert tool.limits == Limits(cpu=13, wall=33) and tool.policy == "restricted"
        assert json.loads(tool.provenance.metadata["latm.measured"])["limits"] == measured.limits
        answer = _user_answer(reg, tool.ref, (17, 19, 23), 6000)
    assert (answer.status, answer.answer, answer.correct) == ("ok", 6000, True), answer.error


def test_an_example_over_the_default_is_measured_under_the_ceiling(tmp_path: Path) -> None:
    reg, made = _made(tmp_path, FakeBackend(costly, name="restricted"), [((7, 11, 13), 600), ((13, 17, 19), 3000)])
    with reg:
        assert made.status == "made", made.error
        measured = made.measured
        assert measured is not None and measured.limits is not None
        assert measured.limits["cpu"] == 3.0 * HEADROOM and measured.limits["wall"] == 75.0
        assert any("hit the cpu limit of cpu=2 s" in n and "finished under cpu=20 s" in n for n in measured.notes)
        assert reg.get(made.tool).limits == Limits(cpu=30, wall=75)
        assert _user_answer(reg, made.tool, (17, 19, 23), 6000).status == "ok"


def test_an_example_that_only_finishes_under_plain_switches_where_the_jail_permits(tmp_path: Path) -> None:
    # 25 s restricted (past the 20 s ceiling), 5 s plain.
    reg, made = _made(tmp_path, JailedFake(costly, name="restricted"), [((7, 11, 13), 600), ((29, 31, 37), 25000)])
    with reg:
        assert made.status == "made", made.error
        measured = made.measured
        assert measured is not None and measured.policy == "plain"
        assert any("finished under plain" in n and "registered under the plain policy" in n for n in measured.notes)
        assert measured.limits == {"cpu": 50.0, "wall": 120.0, "memory": 256}  # 10x 5 s; wall at the maximum
        tool = reg.get(made.tool)
        assert tool.policy == "plain" and tool.limits == Limits(cpu=50, wall=120)
        # The user's question: 6000 steps, 1.2 s under plain.
        answer = _user_answer(reg, tool.ref, (17, 19, 23), 6000)
    assert (answer.status, answer.correct) == ("ok", True)


def test_without_a_jail_that_permits_plain_make_fails_and_says_so(tmp_path: Path) -> None:
    reg, made = _made(tmp_path, FakeBackend(costly, name="restricted"), [((7, 11, 13), 600), ((29, 31, 37), 25000)])
    with reg:
        assert made.status == "failed" and made.failed_stage == "verify"
        assert "cpu limit" in made.stages[-1].errors[0]
        assert made.measured is not None and made.measured.limits is None
        assert any("plain policy is not permitted by this backend's jail" in n for n in made.measured.notes)
        assert reg.list() == []


def test_given_limits_are_kept_and_nothing_escalates(tmp_path: Path) -> None:
    checked = [((7, 11, 13), 600), ((11, 13, 17), 1300)]
    examples = [_example(*DEMO), *(_example(*e) for e in checked)]
    task = load_task(write_json(tmp_path / "crt.json", examples))
    fake = FakeBackend(costly, name="restricted")
    with Registry(tmp_path / "r.db", actor="t", backends={"restricted": fake}) as reg:
        given = Limits(cpu=3, wall=8)
        made = make(reg, task, ReplayModel(_replies(DEMO, checked)), demos=1, validate=2, limits=given)
        assert made.status == "made" and made.measured is not None
        assert reg.get(made.tool).limits == given
        assert made.measured.limits == {"cpu": 3.0, "wall": 8.0, "memory": 256}
        assert "the examples suggest cpu=13 s" in made.measured.notes[-1]
    assert all(job.limits == given for job in fake.jobs if job.measure)


def test_a_cheap_tool_keeps_the_default_limits(tmp_path: Path) -> None:
    def quick(job: Job) -> Any:
        ran = exec_job(job)
        return Result(
            status="ok", backend="restricted", result=ran.value, calls=ran.calls, duration_ms=3.0,
            environment={"cpu_seconds": "0.010", "memory_mib": "0.5"},
        )  # fmt: skip

    task = load_task(write_json(tmp_path / "word_sorting.json", SORT))
    fake = FakeBackend(quick, name="restricted")
    with Registry(tmp_path / "r.db", actor="t", backends={"restricted": fake}) as reg:
        made = make(reg, task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]))
        assert made.status == "made" and made.measured is not None
        assert made.measured.limits is None and made.measured.policy == "restricted"
        assert len(made.measured.examples) == 3 and made.measured.notes == []
        assert reg.get(made.tool).limits is None
    # make's runs of model code asked what they used (proposal, tests, three
    # use cases); the stubbed ones need not.
    assert sum(job.measure for job in fake.jobs) == 5
    assert not any(job.measure for job in fake.jobs if job.stub_entrypoint)


@pytest.mark.slow
def test_the_real_sandbox_measures_the_examples_and_the_users_call_finishes(tmp_path: Path) -> None:
    """The restricted backend's own measurement (Job.measure: the zygote's
    trailer). Assertions relate the declared limits to the measured costs
    (the machine's speed decides the numbers): at least HEADROOM times the
    heaviest example, within the maxima, and a question about four times
    the heaviest example's steps then finishes under them."""
    checked = [((7, 11, 13), 600), ((83, 89, 97), 600000)]
    examples = [_example(*DEMO), *(_example(*e) for e in checked)]
    task = load_task(write_json(tmp_path / "crt.json", examples))
    with Registry(tmp_path / "r.db", actor="t") as reg:
        made = make(reg, task, ReplayModel(_replies(DEMO, checked)), demos=1, validate=2)
        assert made.status == "made", made.error
        measured = made.measured
        assert measured is not None
        heavy = max(measured.examples, key=lambda c: c.cpu_seconds)
        assert heavy.example == 3 and heavy.cpu_seconds > 0 and heavy.memory_mib is not None
        maxima = reg.max_limits
        tool = reg.get(made.tool)
        if heavy.cpu_seconds * HEADROOM > Limits().cpu:
            assert tool.limits is not None
            assert tool.limits.cpu == min(maxima.cpu, math.ceil(heavy.cpu_seconds * HEADROOM))
            assert tool.limits.wall >= min(maxima.wall, tool.limits.cpu * 2.5)
        answer = _user_answer(reg, tool.ref, (131, 137, 139), 2400000)
    assert (answer.status, answer.answer) == ("ok", 2400000), answer.error


def test_declared_limits_stay_within_the_registrys_maxima() -> None:
    maxima = Limits(cpu=5, wall=9, memory=300)
    base = Limits().capped(maxima)
    heavy = [ExampleCost(example=1, policy="restricted", cpu_seconds=1.2, wall_seconds=1.5, memory_mib=40)]
    assert declare(heavy, base, maxima) == Limits(cpu=5, wall=9, memory=300)
    assert ceiling(base, maxima) == Limits(cpu=5, wall=9, memory=300)
    light = [ExampleCost(example=1, policy="restricted", cpu_seconds=0.01, wall_seconds=0.02, memory_mib=None)]
    assert declare(light, base, maxima) is None
    # Under a maximum lower than a default, the capped default is no declaration either.
    low = Limits(cpu=1, wall=3, memory=128)
    assert declare(light, Limits().capped(low), low) is None


def test_cli_make_prints_and_returns_what_it_measured(tc: Any, tmp_path: Path) -> None:
    from toolcrib.sandbox import backends

    checked = [((7, 11, 13), 600), ((13, 17, 19), 3000)]
    task = write_json(tmp_path / "crt.json", [_example(*DEMO), *(_example(*e) for e in checked)])
    replies = write_json(tmp_path / "replies.json", _replies(DEMO, checked))
    with backends.registered("restricted", FakeBackend(costly, name="restricted")):
        text = tc("make", task, "--replay", replies, "--demos", "1", "--validate", "2")
        assert text.exit_code == 0, text.output
        assert "measured: example 3 used 3.00 s CPU; declared cpu=30 s, wall=75 s" in text.stdout
        assert "measured: a run hit the cpu limit of cpu=2 s" in text.stdout
        shown = json.loads(tc("show", "smallest_with_remainders", "--json").stdout)
        assert shown["limits"]["cpu"] == 30 and shown["limits"]["wall"] == 75
        again = tc("make", task, "--replay", replies, "--demos", "1", "--validate", "2", "--json", "--limit", "cpu=4")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)["measured"]
    assert data["ran_with"]["cpu"] == 4 and data["limits"]["cpu"] == 4
    assert [e["example"] for e in data["examples"]] == [2, 3]
