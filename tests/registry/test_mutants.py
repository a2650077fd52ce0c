"""`verify --mutants`: how much a version's tests pin its code down
(issue 19). Mutants run against the stored tests in the real restricted
sandbox; the registry's requirements (a minimum score, no fuzz findings)
decide whether a version counts as verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry import InvalidInput
from toolcrib.registry.mutants import make_mutants, mutation_check
from toolcrib.sandbox.contract import Limits
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

# Tested once, in the middle: nearly any change to it still passes.
CLAMP = '''
def clamp(x: int, lo: int, hi: int) -> int:
    """Clamp x into [lo, hi]."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x
'''
CLAMP_TESTS = [{"args": {"x": 5, "lo": 0, "hi": 10}, "expected": 5}]

# Five tests on every boundary: no change to the code goes unnoticed.
FEE = '''
def fee(amount: int) -> int:
    """Fee in cents: 1 up to 10, then 2 percent, 1 percent from 1000 on."""
    if amount <= 10:
        return 1
    if amount >= 1000:
        return amount // 100
    return amount * 2 // 100
'''
FEE_TESTS = [
    {"args": {"amount": 10}, "expected": 1},
    {"args": {"amount": 11}, "expected": 0},
    {"args": {"amount": 500}, "expected": 10},
    {"args": {"amount": 999}, "expected": 19},
    {"args": {"amount": 1000}, "expected": 10},
]


def test_a_loosely_tested_tool_scores_low_and_lists_its_surviving_mutants(reg: Registry) -> None:
    reg.add(CLAMP, tests=CLAMP_TESTS)
    assert reg.verify("clamp").status == "verified"
    run = reg.mutants("clamp")
    assert run.summary["mutants"] == 5 and run.summary["killed"] == 1 and run.summary["survived"] == 4
    assert run.summary["score"] == 0.2
    described = sorted(f.summary for f in run.findings)
    assert described == [
        "line 4: `<` -> `<=` passes every test",
        "line 5: `return lo` -> `return None` passes every test",
        "line 6: `>` -> `>=` passes every test",
        "line 7: `return hi` -> `return None` passes every test",
    ]
    diff = next(f for f in run.findings if f.detail["line"] == 4).detail["diff"]
    assert "-    if x < lo:\n+    if x <= lo:\n" in diff
    assert [r.kind for r in reg.checks("clamp")] == ["mutants"]


def test_a_well_tested_tool_kills_every_mutant_and_fuzzing_finds_nothing(reg: Registry) -> None:
    reg.add(FEE, tests=FEE_TESTS)
    assert reg.verify("fee").status == "verified"
    run = reg.mutants("fee")
    assert run.summary["mutants"] == 14  # 2 comparisons, 6 constants, 3 operators, 3 returns
    assert run.summary["score"] == 1.0 and run.findings == []
    assert reg.fuzz("fee", 30, seed=4).findings == []


def test_the_operators_the_issue_names_are_all_made() -> None:
    source = '''
def f(xs: list[int], k: int) -> int:
    """Doc."""
    total = 0
    for x in xs:
        if x > k and not x == 3:
            total += x * 2
    return -total
'''
    mutants, sites = make_mutants(source)
    assert sites == len(mutants)
    operators = {m.operator for m in mutants}
    assert operators == {"remove_statement", "compare", "arithmetic", "constant", "boolean", "return"}
    assert not any("Doc." in m.diff for m in mutants)  # docstrings are left alone
    assert any(m.description == "removed `total += x * 2`" for m in mutants)


def test_an_unparsable_tool_is_a_clear_report() -> None:
    with pytest.raises(InvalidInput, match="cannot be parsed for mutation"):
        make_mutants("def f(:\n")


def test_the_engine_reports_a_tool_it_cannot_parse(reg: Registry) -> None:
    tool = reg.add(CLAMP, tests=CLAMP_TESTS).tool.model_copy(update={"source": "def clamp(:\n"})
    fake = FakeBackend(lambda job: 5)
    run = mutation_check(tool, fake, backend="fake", limits=Limits(), policy="restricted", budget=5)
    assert run.summary["score"] is None and "cannot be parsed for mutation" in run.summary["error"]
    assert fake.jobs == []


def test_a_small_budget_stops_the_run_and_says_so(reg: Registry) -> None:
    # Every run of a test sleeps a quarter of a second (wall time, whatever
    # the machine's speed), so a 0.2 s budget always runs out with mutants left.
    slow = FEE.replace('"""\n    if amount <= 10:', '"""\n    time.sleep(0.25)\n    if amount <= 10:')
    reg.add("import time\n" + slow, tests=FEE_TESTS, policy="plain")
    run = reg.mutants("fee", budget=0.2)
    assert run.summary["budget_exhausted"] is True
    assert run.summary["not_run"] > 0
    assert run.summary["killed"] + run.summary["survived"] + run.summary["not_run"] == run.summary["mutants"]


def test_tests_the_tool_itself_fails_kill_no_mutant(reg: Registry) -> None:
    # Seen over CRAFT: a tool whose one test failed scored 1.0 (the failing
    # test "killed" every mutant).
    wrong = [{"args": {"x": 5, "lo": 0, "hi": 10}, "expected": 6}]
    reg.add(CLAMP, tests=wrong)
    run = reg.mutants("clamp")
    assert run.summary["score"] is None and run.summary["mutants"] == 0
    assert "fails every one of its tests" in run.summary["error"]
    # With a passing case beside it, only the passing one counts.
    reg.add(CLAMP, tests=wrong + CLAMP_TESTS, version="1.0.1")
    run = reg.mutants("clamp@1.0.1")
    assert (run.summary["score"], run.summary["cases_failing_on_tool"]) == (0.2, 1)


def test_no_tests_no_score(reg: Registry) -> None:
    reg.add(CLAMP)
    with pytest.raises(InvalidInput, match="no test cases"):
        reg.mutants("clamp")


# -- the CLI and the registry's requirements ------------------------------------------------------


@pytest.fixture
def cli_registry(reg: Registry) -> Path:
    return reg.path


def test_verify_mutants_prints_the_score_and_the_diffs(reg: Registry, tc: Any) -> None:
    reg.add(CLAMP, tests=CLAMP_TESTS)
    out = tc("verify", "clamp", "--mutants")
    assert out.exit_code == 0  # no requirement set: the score is reported, not enforced
    assert "mutants: score 0.2 (1 killed, 4 survived of 5 mutant(s)" in out.output
    assert "+    if x <= lo:" in out.output
    data = json.loads(tc("verify", "clamp", "--mutants", "--json").output)
    assert data["mutants"]["summary"]["score"] == 0.2
    assert "mutants:" in tc("show", "clamp").output


def test_a_required_minimum_score_fails_a_loosely_tested_version(reg: Registry, tc: Any) -> None:
    reg.add(CLAMP, tests=CLAMP_TESTS)
    reg.add(FEE, tests=FEE_TESTS)
    assert tc("checks", "--min-mutation-score", "0.8").exit_code == 0
    out = tc("verify", "clamp", "--json")  # mutation testing runs without --mutants now
    assert out.exit_code == 1
    data = json.loads(out.output)
    assert data["status"] == "failed" and data["requirements"] == ["mutation score 0.2 is below the required 0.8"]
    assert reg.get("clamp").status == "failed"
    assert reg.audit(event="verify")[-1].details["requirements"] == data["requirements"]
    assert tc("verify", "fee").exit_code == 0 and reg.get("fee").status == "verified"
    assert tc("checks", "--min-mutation-score", "2").exit_code == 2


def test_requiring_no_findings_fails_a_version_fuzzing_breaks(reg: Registry, tc: Any) -> None:
    crashes = FEE.replace("if amount <= 10:\n        return 1\n", "if amount <= 10:\n        return 10 // amount\n")
    reg.add(crashes, name="fee_crash", tests=[{"args": {"amount": 500}, "expected": 10}])
    reg.add(FEE, tests=FEE_TESTS)
    assert tc("checks", "--require-no-findings").exit_code == 0
    failed = json.loads(tc("verify", "fee_crash", "--json").output)
    assert failed["status"] == "failed" and "fuzzing must find nothing" in failed["requirements"][0]
    assert failed["fuzz"]["settings"]["n"] == 50
    assert any(f["input"] == {"amount": 0} for f in failed["fuzz"]["findings"])
    assert tc("verify", "fee").exit_code == 0
    assert json.loads(tc("checks", "--allow-findings", "--json").output)["require_no_findings"] is False


def test_every_door_that_verifies_is_held_to_the_requirements(reg: Registry, tc: Any) -> None:
    from toolcrib.registry.checking import MIN_SCORE_SETTING

    reg.add(CLAMP, tests=CLAMP_TESTS)
    reg.add(FEE, tests=FEE_TESTS)
    reg.set_setting(MIN_SCORE_SETTING, "0.8")
    # The Python API (what serve --allow-add and make call): the checks run, the verdict follows.
    ver = reg.verify("clamp")
    assert ver.status == "failed" and ver.passed == 1 and ver.failed == 0  # its tests passed; the score did not
    assert reg.get("clamp").status == "failed"
    assert [r.kind for r in reg.checks("clamp")] == ["mutants"]
    assert reg.verify("fee").status == "verified"
    # verify --all too.
    reg.add(CLAMP.replace("Clamp x", "Clamp the value x"), tests=CLAMP_TESTS)  # a new, unverified version
    out = tc("verify", "--all", "--json")
    assert out.exit_code == 1
    assert [r["status"] for r in json.loads(out.stdout)["results"]] == ["failed"]


def test_a_required_check_that_cannot_run_leaves_the_version_unverified(
    reg: Registry, tc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from toolcrib.registry import ExtraMissing
    from toolcrib.registry.checking import NO_FINDINGS_SETTING

    reg.add(FEE, tests=FEE_TESTS)
    reg.add(FEE, name="fee_cli", tests=FEE_TESTS)
    reg.set_setting(NO_FINDINGS_SETTING, "true")
    monkeypatch.setitem(sys.modules, "hypothesis_jsonschema", None)  # the fuzz extra is not installed
    with pytest.raises(ExtraMissing):
        reg.verify("fee")
    assert reg.get("fee").status == "failed"  # fail closed, not verified on tests alone
    assert "a required check could not run" in reg.audit(event="verify")[-1].details["requirements"][0]
    out = tc("verify", "fee_cli")
    assert out.exit_code == 7
    assert reg.get("fee_cli").status == "failed"
