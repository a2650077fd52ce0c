"""Each version against the one it replaces (issue 19): the predecessor's
own tests and generated inputs through both, in the real sandbox; a patch
release that changes an answer on its predecessor's tests is flagged in
add's report, show and diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolcrib import Registry

GRADE = '''
def grade(score: int) -> str:
    """Pass or fail: fifty and above passes."""
    if score >= 50:
        return "pass"
    return "fail"
'''
GRADE_TESTS = [
    {"args": {"score": 70}, "expected": "pass"},
    {"name": "boundary", "args": {"score": 50}, "expected": "pass"},
    {"args": {"score": 10}, "expected": "fail"},
]
# The "fix": the boundary moves, and the maker's tests move with it.
GRADE_PATCH = GRADE.replace("score >= 50", "score > 50")
PATCH_TESTS = [dict(case, expected="fail") if case.get("name") == "boundary" else case for case in GRADE_TESTS]
# A refactor that keeps every answer.
GRADE_SAME = GRADE.replace(
    'if score >= 50:\n        return "pass"\n    return "fail"', 'return "pass" if score >= 50 else "fail"'
)


@pytest.fixture
def cli_registry(reg: Registry) -> Path:
    return reg.path


def test_a_patch_that_changes_answers_on_its_predecessors_tests_is_flagged(reg: Registry) -> None:
    reg.add(GRADE, tests=GRADE_TESTS)
    patch = reg.add(GRADE_PATCH, tests=PATCH_TESTS, version="1.0.1").tool
    assert reg.verify(patch.ref).status == "verified"  # its own tests pass: only the comparison sees it

    run = reg.compare(patch.ref)
    assert run is not None
    assert run.summary["predecessor"] == "grade@1.0.0" and run.summary["release"] == "patch"
    assert run.summary["flagged"] is True
    assert (run.summary["tests_compared"], run.summary["tests_changed"]) == (3, 1)
    (changed,) = run.findings
    assert changed.kind == "changed_answer" and changed.input == {"score": 50}
    assert changed.detail["old"] == {"result": "pass"} and changed.detail["new"] == {"result": "fail"}
    assert changed.detail["case"] == "case 2 (boundary)"
    assert [r.kind for r in reg.checks(patch.ref)] == ["predecessor"]


def test_generated_inputs_go_through_both_versions(reg: Registry) -> None:
    reg.add(GRADE, tests=GRADE_TESTS)
    minor = reg.add(GRADE.replace("score >= 50", "score >= 60"), tests=GRADE_TESTS[:1], version="1.1.0").tool
    run = reg.compare(minor.ref, n=40, seed=5)
    assert run is not None
    assert run.summary["flagged"] is False  # a minor release may change answers: reported, not flagged
    assert run.summary["generated"] > 0
    for finding in run.findings:
        score = finding.input["score"]
        assert 50 <= score < 60  # exactly the inputs whose answer changed
        assert finding.detail["old"] == {"result": "pass"} and finding.detail["new"] == {"result": "fail"}
    assert any(f.detail["source"] == "test" for f in run.findings)  # score 50, the old boundary test


def test_a_refactor_with_the_same_answers_has_no_findings(reg: Registry) -> None:
    reg.add(GRADE, tests=GRADE_TESTS)
    same = reg.add(GRADE_SAME, tests=GRADE_TESTS, version="1.0.1").tool
    run = reg.compare(same.ref, n=20)
    assert run is not None and run.findings == [] and run.summary["flagged"] is False
    assert run.summary["compared"] == run.summary["tests_compared"] + run.summary["generated"]


def test_a_first_version_has_nothing_to_compare(reg: Registry) -> None:
    reg.add(GRADE, tests=GRADE_TESTS)
    assert reg.compare("grade") is None


def test_add_show_and_diff_flag_the_patch(reg: Registry, tc: Any, tmp_path: Path) -> None:
    reg.add(GRADE, tests=GRADE_TESTS)
    source, tests = tmp_path / "grade.py", tmp_path / "grade.tests.json"
    source.write_text(GRADE_PATCH)
    tests.write_text(json.dumps(PATCH_TESTS))

    added = tc("add", str(source), "--tests", str(tests))
    assert added.exit_code == 0, added.output
    assert "grade@1.0.1" in added.stdout
    assert "FLAGGED: this patch release changes answers on 1 of 3 test case(s) of grade@1.0.0" in added.stderr

    shown = tc("show", "grade@1.0.1")
    assert "FLAGGED" in shown.output and '"score": 50' in shown.output
    data = json.loads(tc("show", "grade@1.0.1", "--json").output)
    assert data["checks"][0]["summary"]["flagged"] is True

    diffed = tc("diff", "grade@1.0.0", "grade@1.0.1")
    assert "answers: FLAGGED" in diffed.output
    assert json.loads(tc("diff", "grade@1.0.0", "grade@1.0.1", "--json").output)["predecessor_check"]["summary"][
        "flagged"
    ]

    verified = json.loads(tc("verify", "grade@1.0.1", "--json").output)
    assert verified["status"] == "verified" and verified["predecessor"]["summary"]["flagged"] is True


def test_add_json_reports_the_comparison(reg: Registry, tc: Any, tmp_path: Path) -> None:
    reg.add(GRADE, tests=GRADE_TESTS)
    source = tmp_path / "grade.py"
    source.write_text(GRADE_SAME)
    data = json.loads(tc("add", str(source), "--json").output)
    assert data["bump"] == "patch"
    assert data["predecessor_check"]["flagged"] is False and data["predecessor_check"]["differing"] == 0
