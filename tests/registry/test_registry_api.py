"""The Registry API end to end: add, versions, references, lifecycle, policy,
limits, search, diff, and verify/call through the real sandbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from toolcrib.registry import (
    ArgumentsError,
    ConflictError,
    InvalidInput,
    NotFound,
    PolicyRefused,
    ProvenanceInput,
    Registry,
    TestCase,
)
from toolcrib.registry.calls import job_limits
from toolcrib.sandbox.contract import Limits

ADD = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return a + b\n'
ADD_PATCH = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return b + a\n'
ADD_MINOR = 'def add(a: int, b: int, c: int = 0) -> int:\n    """Add two or three integers."""\n    return a + b + c\n'
ADD_MAJOR = 'def add(a: int) -> int:\n    """Add one to an integer."""\n    return a + 1\n'
ADD_TESTS = [{"args": {"a": 1, "b": 2}, "expected": 3}, {"name": "neg", "args": {"a": -1, "b": -2}, "expected": -3}]
SLUG = (
    'import re\n\n\ndef slugify(title: str) -> str:\n    """Turn an article title into a URL slug for web pages."""\n'
    '    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")\n'
)
WORDS = 'def count_words(text: str) -> int:\n    """Count the words in a text."""\n    return len(text.split())\n'


# -- adding and versions -------------------------------------------------------


def test_first_add(reg: Registry) -> None:
    res = reg.add(ADD, tests=ADD_TESTS, provenance=ProvenanceInput(generator="gpt-4o", prompt="write add"))
    tool = res.tool
    assert (res.created, res.bump) == (True, "initial")
    assert (tool.name, tool.version, tool.status, tool.entrypoint) == ("add", "1.0.0", "unverified", "add")
    assert tool.signature.input_schema["properties"]["a"]["type"] == "integer"
    assert [t.expected for t in tool.tests] == [3, -3]
    assert tool.provenance.registered_by == "tester"
    assert tool.provenance.generator == "gpt-4o"
    assert reg.get("add") == tool


def test_name_defaults_to_entrypoint_and_can_be_given(reg: Registry) -> None:
    assert reg.add(ADD, name="plus").tool.ref == "plus@1.0.0"
    assert reg.add(ADD).tool.ref == "add@1.0.0"
    with pytest.raises(InvalidInput):
        reg.add(ADD, name="bad name!")


def test_identical_re_add_returns_existing(reg: Registry) -> None:
    first = reg.add(ADD, tests=ADD_TESTS)
    again = reg.add(ADD, tests=[TestCase(**case) for case in ADD_TESTS])
    assert (again.created, again.bump) == (False, "existing")
    assert again.tool == first.tool
    assert [t.version for t in reg.history("add")] == ["1.0.0"]
    # Same source with different tests is different content.
    assert reg.add(ADD).tool.version == "1.0.1"
    with pytest.raises(ConflictError, match="identical content"):
        reg.add(ADD, tests=ADD_TESTS, version="9.0.0")


def test_bump_sequence_follows_the_signature(reg: Registry) -> None:
    bumps = [reg.add(src) for src in (ADD, ADD_PATCH, ADD_MINOR, ADD_MAJOR)]
    assert [(b.tool.version, b.bump) for b in bumps] == [
        ("1.0.0", "initial"),
        ("1.0.1", "patch"),
        ("1.1.0", "minor"),
        ("2.0.0", "major"),
    ]
    assert [t.version for t in reg.history("add")] == ["1.0.0", "1.0.1", "1.1.0", "2.0.0"]


def test_explicit_versions(reg: Registry) -> None:
    reg.add(ADD)
    res = reg.add(ADD_MINOR, version="3.0.0-rc.1")
    assert (res.tool.version, res.bump) == ("3.0.0-rc.1", "explicit")
    # The next automatic version goes on from the highest one.
    assert reg.add(ADD_PATCH).tool.version == "3.0.0"
    # Back-ports below the newest are allowed; reuse is not, even after a yank.
    assert reg.add(ADD_MAJOR, version="1.0.5").tool.version == "1.0.5"
    reg.yank("add@1.0.5", "bad")
    with pytest.raises(ConflictError, match="never reused"):
        reg.add(ADD_MAJOR.replace("+ 1", "+ 2"), version="1.0.5")
    with pytest.raises(InvalidInput, match="invalid version"):
        reg.add(WORDS, version="1.0")
    assert reg.get("add").version == "3.0.0"


def test_admission_and_tests_errors_store_nothing(reg: Registry) -> None:
    from toolcrib.registry import AdmissionError, TestsFormatError

    with pytest.raises(AdmissionError):
        reg.add("def add(a, b):\n    return a +\n")
    with pytest.raises(TestsFormatError):
        reg.add(ADD, tests=[{"args": 5}])
    assert reg.list() == []
    assert [e.event for e in reg.audit()] == ["init"]


def test_markdown_reply_is_admitted(reg: Registry) -> None:
    reply = "Here is the tool:\n\n```python\n" + ADD + "```\n\nIt adds.\n"
    res = reg.add(reply)
    assert res.tool.source.strip() == ADD.strip()


# -- references ----------------------------------------------------------------


def test_references(reg: Registry) -> None:
    one = reg.add(ADD).tool
    two = reg.add(ADD_MINOR).tool
    assert reg.get("add") == two
    assert reg.get("add@1.0.0") == one
    assert reg.get(f"add@sha256:{one.sha256[:7]}") == one
    assert reg.get(f"add@sha256:{two.sha256.upper()}") == two
    with pytest.raises(NotFound, match="no tool named"):
        reg.get("nothing")
    with pytest.raises(NotFound, match="versions: 1.0.0, 1.1.0"):
        reg.get("add@4.0.0")
    with pytest.raises(NotFound, match="sha256"):
        reg.get("add@sha256:" + ("0" * 7 if not one.sha256.startswith("0000000") else "1" * 7))
    with pytest.raises(InvalidInput, match="invalid reference"):
        reg.get("add@sha256:abc")


def test_ambiguous_digest_prefix_lists_matches(reg: Registry) -> None:
    reg.add(ADD)
    # Two real sha256 values sharing 7 hex digits are impractical to find;
    # plant a second row whose digest shares the first one's prefix.
    conn = sqlite3.connect(reg.path)
    sha = conn.execute("SELECT sha256 FROM versions").fetchone()[0]
    twin = sha[:10] + ("0" if sha[10] != "0" else "1") + sha[11:]
    columns = [r[1] for r in conn.execute("PRAGMA table_info(versions)") if r[1] != "id"]
    select = ", ".join("'9.9.9'" if c == "version" else ("?" if c == "sha256" else c) for c in columns)
    conn.execute(f"INSERT INTO versions ({', '.join(columns)}) SELECT {select} FROM versions", [twin])
    conn.commit()
    conn.close()
    with pytest.raises(InvalidInput, match=r"ambiguous .*add@1\.0\.0.*add@9\.9\.9"):
        reg.get(f"add@sha256:{sha[:8]}")
    assert reg.get(f"add@sha256:{sha[:11]}").version == "1.0.0"


# -- lifecycle -------------------------------------------------------------------


def test_yank_rules(reg: Registry) -> None:
    reg.add(ADD)
    reg.add(ADD_MINOR)
    yanked = reg.yank("add", "broken")
    assert (yanked.version, yanked.yanked) == ("1.1.0", "broken")
    assert reg.get("add").version == "1.0.0"
    assert reg.get("add@1.1.0").yanked == "broken"
    with pytest.raises(PolicyRefused, match="yanked"):
        reg.get("add@1.1.0", allow_yanked=False)
    reg.yank("add@1.0.0", "also broken")
    with pytest.raises(NotFound, match="every version of add is yanked"):
        reg.get("add")
    assert reg.list() == []
    assert [t.ref for t in reg.list(include_yanked=True)] == ["add@1.1.0"]
    assert reg.search("integers") == []
    # The number stays taken: the next add goes above it.
    assert reg.add(ADD_MINOR.replace("a + b + c", "c + b + a")).tool.version == "1.1.1"
    with pytest.raises(InvalidInput, match="reason"):
        reg.yank("add", "  ")


def test_deprecate(reg: Registry) -> None:
    reg.add(ADD)
    tool = reg.deprecate("add", "use sum instead")
    assert tool.deprecated == "use sum instead"
    assert reg.get("add").deprecated == "use sum instead"
    assert reg.audit(event="deprecate")[0].tool == "add@1.0.0"
    with pytest.raises(InvalidInput, match="message"):
        reg.deprecate("add", "")
    with pytest.raises(NotFound):
        reg.deprecate("nothing", "x")


def test_list_history_search_diff(reg: Registry) -> None:
    reg.add(ADD)
    reg.add(ADD_MINOR)
    reg.add(SLUG)
    reg.add(WORDS)
    assert [t.ref for t in reg.list()] == ["add@1.1.0", "count_words@1.0.0", "slugify@1.0.0"]
    assert [t.version for t in reg.history("add")] == ["1.0.0", "1.1.0"]
    with pytest.raises(NotFound):
        reg.history("nothing")
    assert [t.ref for t in reg.search("slug")] == ["slugify@1.0.0"]
    assert [t.ref for t in reg.search("url pages")] == ["slugify@1.0.0"]
    assert [t.ref for t in reg.search("counting")] == ["count_words@1.0.0"]  # stemmed
    # Only newest versions: "two" is in both add docstrings, found once.
    assert [t.ref for t in reg.search("two integers")] == ["add@1.1.0"]
    assert reg.search("nomatchword") == []
    assert reg.search('"; DROP TABLE versions; --') == []
    assert reg.search("") == []
    d = reg.diff("add@1.0.0", "add")
    assert d.bump == "minor"
    assert "+def add(a: int, b: int, c: int = 0) -> int:" in d.source_diff
    assert '"c"' in d.schema_diff
    assert reg.diff("add", "add").bump == "none"
    assert reg.diff("add", "add").source_diff == ""


# -- limits ----------------------------------------------------------------------


def test_limits_overlay_and_caps(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db", max_limits=Limits(cpu=4, wall=8, memory=512, output=64, pids=8, disk=4)) as reg:
        tool = reg.add(ADD, limits=Limits(cpu=10, wall=3, memory=128)).tool
        assert tool.limits == Limits(cpu=10, wall=3, memory=128)
        job = job_limits(tool.limits, reg.max_limits, None)
        assert (job.cpu, job.wall, job.memory, job.output, job.pids) == (4, 3, 128, 64, 8)
        job = job_limits(tool.limits, reg.max_limits, {"cpu": 1.5, "memory": 256})
        assert (job.cpu, job.memory, job.wall) == (1.5, 256, 3)
        with pytest.raises(InvalidInput, match="unknown limit 'gpu'"):
            job_limits(tool.limits, reg.max_limits, {"gpu": 1})
        with pytest.raises(InvalidInput, match="exceeds the maximum 512"):
            job_limits(tool.limits, reg.max_limits, {"memory": 1024})
        with pytest.raises(InvalidInput, match="invalid limit cpu"):
            job_limits(tool.limits, reg.max_limits, {"cpu": 0})


# -- verify and call through the real sandbox ---------------------------------


def test_verify_then_call(reg: Registry, backend: str) -> None:
    reg.add(ADD, tests=ADD_TESTS)
    with pytest.raises(PolicyRefused, match="toolcrib verify add@1.0.0"):
        reg.call("add", {"a": 1, "b": 1}, backend=backend)
    progress: list[tuple[int, int]] = []
    ver = reg.verify("add", backend=backend, on_case=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 2), (2, 2)]
    assert (ver.status, ver.passed, ver.failed, ver.backend, ver.tool) == ("verified", 2, 0, backend, "add@1.0.0")
    assert [(c.index, c.name, c.passed, c.actual) for c in ver.cases] == [(0, None, True, 3), (1, "neg", True, -3)]
    assert reg.get("add").status == "verified"
    assert reg.verification("add") == ver
    out = reg.call("add", {"a": 20, "b": 22}, backend=backend)
    assert (out.status, out.result, out.tool, out.backend) == ("ok", 42, "add@1.0.0", backend)
    entry = reg.audit(event="call")[-1]
    assert (entry.details["status"], entry.details["result"], entry.details["backend"]) == ("ok", 42, backend)
    assert reg.audit_verify().ok


def test_failed_verification_blocks_calls(reg: Registry) -> None:
    bad = [{"args": {"a": 1, "b": 2}, "expected": 3}, {"args": {"a": 2, "b": 2}, "expected": 5}]
    reg.add(ADD, tests=bad)
    ver = reg.verify("add")
    assert (ver.status, ver.passed, ver.failed) == ("failed", 1, 1)
    case = ver.cases[1]
    assert (case.passed, case.status, case.actual, case.expected) == (False, "ok", 4, 5)
    assert case.error is not None and case.error.type == "Mismatch"
    assert reg.get("add").status == "failed"
    with pytest.raises(PolicyRefused, match="failed"):
        reg.call("add", {"a": 1, "b": 2})
    out = reg.call("add", {"a": 1, "b": 2}, allow_unverified=True)
    assert (out.status, out.result) == ("ok", 3)
    # Re-verifying stores a new evidence row; the status follows the newest.
    assert reg.verify("add").status == "failed"
    assert reg.db.execute("SELECT count(*) FROM verifications").fetchone()[0] == 2
    assert [e.details["status"] for e in reg.audit(event="verify")] == ["failed", "failed"]


def test_verify_records_errors_limits_and_snippets(reg: Registry) -> None:
    src = (
        "def work(n: int) -> int:\n"
        '    """Loop forever for negative n, fail for zero."""\n'
        "    if n < 0:\n"
        "        while True:\n"
        "            pass\n"
        "    return 10 // n\n"
    )
    tests = [
        {"name": "ok", "args": {"n": 5}, "expected": 2},
        {"name": "zero", "args": {"n": 0}, "expected": 0},
        {"name": "spin", "args": {"n": -1}, "expected": 0},
        {"name": "snippet", "snippet": "ans = [work(1), work(2)]", "expected": [10, 5]},
    ]
    reg.add(src, tests=tests)
    ver = reg.verify("work", limits={"cpu": 1, "wall": 2})
    by_name = {c.name: c for c in ver.cases}
    assert by_name["ok"].passed and by_name["snippet"].passed
    assert (by_name["zero"].status, by_name["zero"].error.type) == ("error", "ZeroDivisionError")
    assert by_name["spin"].status == "limit" and by_name["spin"].limit in ("cpu", "wall")
    assert (ver.status, ver.passed) == ("failed", 2)


def test_verify_needs_test_cases(reg: Registry) -> None:
    reg.add(ADD)
    with pytest.raises(InvalidInput, match="no test cases"):
        reg.verify("add")
    reg.add(WORDS, tests=[{"args": {"text": "a b"}, "expected": 2}])
    with pytest.raises(InvalidInput, match="unknown backend"):
        reg.verify("count_words", backend="vm")
    assert reg.verification("count_words") is None
    assert reg.get("count_words").status == "unverified"


def test_call_arguments_snippets_and_outcomes(reg: Registry) -> None:
    reg.add(ADD, tests=ADD_TESTS)
    reg.verify("add")
    with pytest.raises(ArgumentsError) as info:
        reg.call("add", {"a": "one", "b": 2})
    assert "a" in info.value.fields
    assert reg.audit(event="call")[-1].details["status"] == "invalid"
    out = reg.call("add", snippet="ans = add(1, 2) * add(3, 4)")
    assert (out.status, out.result) == ("ok", 21)
    with pytest.raises(InvalidInput, match="not both"):
        reg.call("add", {"a": 1, "b": 2}, snippet="ans = 1")
    out = reg.call("add", snippet="ans = add(1, 2) / 0")
    assert (out.status, out.error.type) == ("error", "ZeroDivisionError")
    assert reg.audit(event="call")[-1].details["error_type"] == "ZeroDivisionError"
    # "plain" is a policy the restricted backend may honour (in its jail):
    # tests/sandbox/test_policy_declared.py. An unknown one is bad input on both.
    with pytest.raises(InvalidInput, match="policy"):
        reg.call("add", {"a": 1, "b": 2}, policy="loose")
    with pytest.raises(InvalidInput, match="policy"):
        reg.call("add", {"a": 1, "b": 2}, backend="docker", policy="loose")


def test_yanked_verified_version_needs_allow_yanked(reg: Registry) -> None:
    reg.add(ADD, tests=ADD_TESTS)
    reg.verify("add")
    reg.yank("add@1.0.0", "leaks memory")
    with pytest.raises(NotFound):
        reg.call("add", {"a": 1, "b": 2})
    with pytest.raises(PolicyRefused, match="leaks memory"):
        reg.call("add@1.0.0", {"a": 1, "b": 2})
    assert reg.call("add@1.0.0", {"a": 1, "b": 2}, allow_yanked=True).result == 3


def test_large_arguments_and_results_are_capped_in_the_audit(reg: Registry) -> None:
    src = 'def echo(text: str) -> str:\n    """Return the text."""\n    return text\n'
    reg.add(src, tests=[{"args": {"text": "x"}, "expected": "x"}])
    reg.verify("echo")
    out = reg.call("echo", {"text": "y" * 10_000})
    assert out.result == "y" * 10_000
    details = reg.audit(event="call")[-1].details
    assert details["arguments"]["$truncated"] is True
    assert details["result"]["$truncated"] is True
    assert len(details["result"]["prefix"]) == 2048


UNAVAILABLE = """
import json, sys
from toolcrib.registry import Registry, SandboxUnavailable
with Registry(sys.argv[1]) as reg:
    out = reg.call("add", {"a": 1, "b": 2}, backend="docker", allow_unverified=True)
    try:
        reg.verify("add", backend="docker")
        verify = "stored"
    except SandboxUnavailable as exc:
        verify = "raised: " + str(exc)
    print(json.dumps({"status": out.status, "error": out.error.type if out.error else None, "verify": verify,
                      "audit": [e.details.get("status") for e in reg.audit(event="call")],
                      "verifications": reg.db.execute("SELECT count(*) FROM verifications").fetchone()[0],
                      "version_status": reg.get("add").status}))
"""


def test_unreachable_docker_engine(reg: Registry, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    reg.add(ADD, tests=ADD_TESTS)
    # A fresh process, so the shared backend is built against the dead socket.
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    proc = subprocess.run(
        [sys.executable, "-c", UNAVAILABLE, str(reg.path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "unavailable" and data["error"]
    assert data["verify"].startswith("raised: the docker backend")
    assert data["audit"] == ["unavailable"]
    assert (data["verifications"], data["version_status"]) == (0, "unverified")


def test_status_follows_the_newest_verification(reg: Registry) -> None:
    # The starved verification must fail at a limit whatever the machine's
    # speed: a 4 KiB result under a 1 KiB output limit always does (a time
    # limit would pass on a fast enough machine), and fits the default 1 MiB.
    src = 'def pad(n: int) -> str:\n    """n times the letter x."""\n    return "x" * n\n'
    n = 4096
    reg.add(src, tests=[{"args": {"n": n}, "expected": "x" * n}])
    starved = reg.verify("pad", limits={"output": 1})
    assert (starved.status, starved.cases[0].status) == ("failed", "limit")
    assert reg.get("pad").status == "failed"
    fed = reg.verify("pad")
    assert fed.status == "verified"
    assert reg.get("pad").status == "verified"
    assert reg.verification("pad") == fed
    assert reg.call("pad", {"n": 3}).result == "xxx"
