"""`verify --fuzz`: inputs generated from the stored input schema, run in
the sandbox like test cases, findings stored as evidence (issue 19).

The tools are made for the purpose: each has examples that pass and a
fault its examples never show. The real restricted backend runs them (the
sandboxed runs are what the feature is), with N small (two shared cores).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry import InvalidInput, NotFound
from toolcrib.registry.fuzzing import classify, documented_exceptions, fuzz
from toolcrib.sandbox.contract import ErrorInfo, Limits, Result
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

# Counts per bucket of ten: fine on the examples, an IndexError for any
# value of 100 or more (or -100 or less).
BUCKETS = '''
def buckets(xs: list[int]) -> list[int]:
    """How many values fall in each bucket of ten (0-9, 10-19, ...)."""
    counts = [0] * 10
    for x in xs:
        counts[abs(x) // 10] += 1
    return counts
'''
BUCKETS_TESTS = [{"args": {"xs": [1, 15, 23]}, "expected": [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]}]

# Declares str, returns an int for numbers above five.
LABEL = '''
def label(n: int) -> str:
    """A label for a count."""
    if n > 5:
        return n
    return "few"
'''

# Raises ValueError on negatives, and says so.
ROOT = '''
def root(n: int) -> int:
    """The integer square root.

    Raises:
        ValueError: when n is negative.
    """
    if n < 0:
        raise ValueError("negative")
    x = 0
    while (x + 1) * (x + 1) <= min(n, 10**6):
        x += 1
    return x
'''

SPIN = '''
def spin(n: int) -> int:
    """Never returns."""
    while True:
        n += 1
'''


def _finding(run: Any, kind: str) -> Any:
    found = [f for f in run.findings if f.kind == kind]
    assert found, f"no {kind} finding in {[f.summary for f in run.findings]}"
    return found[0]


def test_fuzzing_finds_a_crash_the_examples_never_show_and_shrinks_its_input(reg: Registry) -> None:
    reg.add(BUCKETS, tests=BUCKETS_TESTS)
    assert reg.verify("buckets").status == "verified"  # the examples pass

    run = reg.fuzz("buckets", 40, seed=3, budget=60)

    crash = _finding(run, "exception")
    assert crash.detail["error"]["type"] == "IndexError"
    assert crash.detail["error"]["line"] == 6
    # Shrunk by Hypothesis through sandboxed calls: one value, at the boundary.
    assert len(crash.input["xs"]) == 1 and abs(crash.input["xs"][0]) == 100
    assert crash.detail["inputs"] >= 1
    # Stored as evidence of the version, with an audit entry.
    (stored,) = reg.checks("buckets")
    assert stored.kind == "fuzz" and stored.settings == {"n": 40, "seed": 3, "budget": 60.0}
    assert [f.input for f in stored.findings] == [f.input for f in run.findings]
    assert reg.finding(crash.id)[1] == "buckets@1.0.0"
    (entry,) = reg.audit(event="check")
    assert entry.details["kind"] == "fuzz" and entry.details["findings"] == len(run.findings)


def test_the_same_seed_gives_the_same_inputs_and_findings(reg: Registry) -> None:
    reg.add(BUCKETS, tests=BUCKETS_TESTS)
    first = reg.fuzz("buckets", 20, seed=11)
    again = reg.fuzz("buckets", 20, seed=11)
    assert [(f.kind, f.input) for f in first.findings] == [(f.kind, f.input) for f in again.findings]
    assert first.summary["outcomes"] == again.summary["outcomes"]


def test_a_result_the_signature_forbids_is_a_finding(reg: Registry) -> None:
    reg.add(LABEL, tests=[{"args": {"n": 2}, "expected": "few"}])
    run = reg.fuzz("label", 30, seed=1)
    wrong = _finding(run, "return_schema")
    assert wrong.input == {"n": 6}  # shrunk to the smallest n that returns an int
    assert "declared return type forbids" in wrong.summary
    assert wrong.detail["result"] == 6


def test_documented_exceptions_are_not_findings(reg: Registry) -> None:
    reg.add(ROOT, tests=[{"args": {"n": 9}, "expected": 3}])
    run = reg.fuzz("root", 25, seed=2)
    assert run.summary["documented"] == ["ValueError"]
    assert run.findings == []
    assert run.summary["outcomes"].get("error", 0) > 0  # negatives were tried, and raised as documented


def test_an_exception_a_test_snippet_expects_is_documented(reg: Registry) -> None:
    source = ROOT.replace("    Raises:\n        ValueError: when n is negative.\n", "")
    tool = reg.add(
        source,
        tests=[
            {"args": {"n": 9}, "expected": 3},
            {"snippet": "try:\n    root(-1)\nexcept ValueError:\n    ans = 'refused'", "expected": "refused"},
        ],
    ).tool
    assert documented_exceptions(tool) == ["ValueError"]
    assert documented_exceptions(reg.add(source, name="root_plain").tool) == []


@pytest.mark.parametrize(
    "doc",
    [
        "Raises:\n    KeyError: if missing.\n    pkg.BadInput: when bad.\n\nReturns:\n    int",
        "Raises\n------\nKeyError\n    If missing.\nBadInput\n    When bad.",
        ":raises KeyError: if missing\n:raises BadInput: when bad",
    ],
    ids=["google", "numpydoc", "sphinx"],
)
def test_raises_sections_in_three_styles(reg: Registry, doc: str) -> None:
    body = "\n".join("    " + line if line else "" for line in doc.splitlines())
    source = f'def f(x: int) -> int:\n    """Do it.\n\n{body}\n    """\n    return x\n'
    assert documented_exceptions(reg.add(source).tool) == ["BadInput", "KeyError"]


def test_a_tool_whose_every_call_hits_a_limit_is_reported_within_the_budget(reg: Registry) -> None:
    reg.add(SPIN, limits=Limits(cpu=0.3, wall=2))
    run = reg.fuzz("spin", 6, seed=0, budget=8)
    limit = _finding(run, "limit")
    assert limit.input == {"n": 0}
    assert run.summary["note"] == "every call hit a limit"
    assert run.summary["duration_ms"] < 8000 + 2000 + 5000  # the budget, one call's wall limit, the grace


def test_a_budget_smaller_than_the_work_stops_and_says_so(reg: Registry) -> None:
    reg.add(SPIN, limits=Limits(cpu=0.5, wall=2))
    run = reg.fuzz("spin", 50, seed=0, budget=0.5)
    assert run.summary["budget_exhausted"] is True
    assert run.summary["ran"] < 50


def test_an_unsatisfiable_schema_is_reported_not_raised(reg: Registry) -> None:
    tool = reg.add("def f(x: int) -> int:\n    return x\n").tool
    impossible = {"type": "object", "properties": {"x": {"type": "integer", "minimum": 5, "maximum": 1}}}
    impossible["required"] = ["x"]
    tool = tool.model_copy(update={"signature": tool.signature.model_copy(update={"input_schema": impossible})})
    fake = FakeBackend(lambda job: 1)
    run = fuzz(tool, fake, backend="fake", limits=Limits(), policy="restricted", n=10, budget=5, valid=lambda a: True)
    assert run.summary["error"].startswith("the input schema cannot be satisfied") or run.summary["error"].startswith(
        "no argument set"
    )
    assert run.findings == [] and fake.jobs == []


def test_bad_counts_and_budgets_are_refused(reg: Registry) -> None:
    reg.add(BUCKETS, tests=BUCKETS_TESTS)
    with pytest.raises(InvalidInput):
        reg.fuzz("buckets", 0)
    with pytest.raises(InvalidInput):
        reg.fuzz("buckets", 5, budget=0)
    with pytest.raises(NotFound):
        reg.finding(999)


def test_classify_reads_each_outcome() -> None:
    def result(status: str, **kw: Any) -> Result:
        return Result(status=status, backend="fake", **kw)  # type: ignore[arg-type]

    error = ErrorInfo(type="KeyError", message="'a'", line=3)
    assert classify(result("ok", result=1), {}, validator=None, documented=[]) is None
    assert classify(result("error", error=error), {}, validator=None, documented=["KeyError"]) is None
    assert classify(result("error", error=error), {}, validator=None, documented=[]).key == (
        "exception",
        "KeyError",
        "3",
    )
    not_json = ErrorInfo(type="ResultNotJSON", message="result is not JSON: set")
    assert classify(result("error", error=not_json), {}, validator=None, documented=[]).kind == "not_json"
    big = {"s": "x" * 2000}
    assert classify(result("limit", limit="cpu"), big, validator=None, documented=[]) is None
    assert classify(result("limit", limit="cpu"), {"s": ""}, validator=None, documented=[]).kind == "limit"


def test_an_argument_the_sandbox_cannot_build_is_not_the_tools_exception() -> None:
    # {"columns": [0], "data": [[]]} fits the DataFrame schema, but pandas
    # cannot build it: the tool never ran (seen over the CRAFT table tools).
    form = ErrorInfo(type="ArgumentFormError", message="argument 'df' cannot be made a dataframe: 1 columns passed")
    assert classify(Result(status="error", backend="fake", error=form), {}, validator=None, documented=[]) is None
    # A tool raising its own exception of that name, from its code, still is.
    own = ErrorInfo(type="ArgumentFormError", message="mine", line=4)
    verdict = classify(Result(status="error", backend="fake", error=own), {}, validator=None, documented=[])
    assert verdict is not None and verdict.kind == "exception"


# -- the CLI: verify --fuzz, show, case add-from-finding, checks -----------------------------


@pytest.fixture
def cli_registry(reg: Registry) -> Path:
    return reg.path


def test_verify_fuzz_prints_stores_and_drafts_a_case(reg: Registry, tc: Any, tmp_path: Path) -> None:
    reg.add(BUCKETS, tests=BUCKETS_TESTS)
    out = tc("verify", "buckets", "--fuzz", "30", "--seed", "3", "--json")
    assert out.exit_code == 0, out.output  # the tests pass: findings do not fail verification
    data = json.loads(out.output)
    assert data["status"] == "verified"
    crash = next(f for f in data["fuzz"]["findings"] if f["kind"] == "exception")

    shown = tc("show", "buckets")
    assert f"finding {crash['id']}: exception: IndexError (line 6)" in shown.output
    assert json.loads(tc("show", "buckets", "--json").output)["checks"][0]["findings"][0]["id"] == crash["id"]

    tests_file = tmp_path / "buckets.tests.json"
    tests_file.write_text(json.dumps(BUCKETS_TESTS))
    drafted = tc("case", "add-from-finding", str(crash["id"]), "--tests", str(tests_file))
    assert drafted.exit_code == 0, drafted.output
    cases = json.loads(tests_file.read_text())
    assert cases[-1] == {"name": f"finding-{crash['id']}", "args": crash["input"]}  # no expected invented
    # Until a person writes the expected value, add refuses the file.
    source = tmp_path / "buckets.py"
    source.write_text(BUCKETS)
    refused = tc("add", str(source), "--tests", str(tests_file))
    assert refused.exit_code == 2 and "missing 'expected'" in refused.output
    assert reg.checks("buckets")[0].findings[0].drafted_by == "tester"
    assert [e.details["finding"] for e in reg.audit(event="draft-case")] == [crash["id"]]

    again = tc("case", "add-from-finding", str(crash["id"]), "--tests", str(tests_file))
    assert again.exit_code == 2 and "already has a case named" in again.output

    printed = tc("case", "add-from-finding", str(crash["id"]), "--expected", "[0]")
    assert json.loads(printed.stdout)["expected"] == [0]


def test_the_registry_setting_gives_verify_a_default_fuzz(reg: Registry, tc: Any) -> None:
    reg.add(BUCKETS, tests=BUCKETS_TESTS)
    assert json.loads(tc("checks", "--json").output)["fuzz"] is None
    assert tc("checks", "--fuzz", "12").exit_code == 0
    data = json.loads(tc("verify", "buckets", "--json").output)
    assert data["fuzz"]["settings"]["n"] == 12
    assert "fuzz" not in json.loads(tc("verify", "buckets", "--fuzz", "0", "--json").output)
    assert tc("checks", "--fuzz", "0").exit_code == 0
    assert "fuzz" not in json.loads(tc("verify", "buckets", "--json").output)


def test_a_version_without_tests_is_fuzzed_only(reg: Registry, tc: Any) -> None:
    reg.add(LABEL)
    out = tc("verify", "label", "--fuzz", "10")
    assert out.exit_code == 1
    assert "no test cases, fuzzed only" in out.output and "return_schema" in out.output
    assert tc("verify", "label").exit_code == 2  # without --fuzz: nothing to verify, as before


def test_without_the_fuzz_extra_the_exit_code_is_7(reg: Registry, tc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reg.add(BUCKETS, tests=BUCKETS_TESTS)
    monkeypatch.setitem(sys.modules, "hypothesis_jsonschema", None)
    out = tc("verify", "buckets", "--fuzz", "5")
    assert out.exit_code == 7 and "pip install 'toolcrib[fuzz]'" in out.output
    assert reg.checks("buckets") == []


def test_tuples_are_generated_as_tuples(reg: Registry) -> None:
    # pydantic writes tuple[int, int] as draft 2020-12's prefixItems, which
    # hypothesis-jsonschema does not read: without the translation nearly
    # every draw was an array of anything, refused by the stored schema.
    source = (
        "def remainders(pairs: list[tuple[int, int]]) -> list[int]:\n"
        '    """n % d for each (n, d)."""\n'
        "    return [n % d for n, d in pairs]\n"
    )
    reg.add(source, tests=[{"args": {"pairs": [[7, 3]]}, "expected": [1]}])
    run = reg.fuzz("remainders", 20, seed=1)
    assert run.summary["generated"] == 20
    crash = _finding(run, "exception")
    assert crash.detail["error"]["type"] == "ZeroDivisionError"
    assert crash.input == {"pairs": [[0, 0]]}


def test_browse_offers_the_findings(reg: Registry) -> None:
    import sqlite3

    from toolcrib.registry.store_review import REVIEW_QUERIES

    reg.add(BUCKETS, tests=BUCKETS_TESTS)
    run = reg.fuzz("buckets", 20, seed=3)
    conn = sqlite3.connect(f"file:{reg.path}?mode=ro", uri=True)
    try:
        rows = conn.execute(REVIEW_QUERIES["check_findings"]["sql"]).fetchall()
    finally:
        conn.close()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (f.id, "buckets@1.0.0", "fuzz", f.kind) for f in reversed(run.findings)
    ]
