"""`toolcrib add --verify`: the admitted versions verified after the adds,
fanned out over the backend's room; each verdict in the report (admitted and
verified / admitted and failed / admitted without tests / refused), progress
on stderr, and the exit code: 2 if any tool was refused, else 6 if the
sandbox could not run, else 1 if a version failed, else 0.

The sandbox is a `FakeBackend` serving "restricted" (the `fake_sandbox`
fixture): the report and the exit codes are the point here, not the jail.
The real fan-out over a Ray cluster's actors is
tests/sandbox/test_ray_backend.py::test_bulk_add_verify_runs_on_both_actors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import CliInvoke
from toolcrib.sandbox.contract import ErrorInfo, Result
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

DOUBLE = 'def double(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n'
# Its test expects the right answer; the code is wrong.
HALF = 'def half(x: int) -> int:\n    """Half of x."""\n    return x // 3\n'
UNTESTED = 'def untested(x: int) -> int:\n    """No tests."""\n    return x\n'
REFUSED = 'def uses_pi(r: float) -> float:\n    """Area."""\n    return pi * r * r\n'


def _library(tmp_path: Path, *, refused: bool = True, failing: bool = True) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a_double.py").write_text(DOUBLE)
    (lib / "a_double.tests.json").write_text('[{"args": {"x": 2}, "expected": 4}, {"args": {"x": 5}, "expected": 10}]')
    if failing:
        (lib / "b_half.py").write_text(HALF)
        (lib / "b_half.tests.json").write_text('[{"args": {"x": 6}, "expected": 3}]')
    (lib / "c_untested.py").write_text(UNTESTED)
    if refused:
        (lib / "d_uses_pi.py").write_text(REFUSED)
    return lib


def _report(done: Any) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_each_admitted_version_is_verified_and_reported(
    tc: CliInvoke, fake_sandbox: FakeBackend, cli_registry: Path, tmp_path: Path
) -> None:
    done = tc("add", str(_library(tmp_path)), "--verify", "--json")
    assert done.exit_code == 2, done.output  # a tool was refused: that comes first
    report = _report(done)
    assert {k: report[k] for k in ("admitted", "refused", "verified", "failed", "skipped")} == {
        "admitted": 3,
        "refused": 1,
        "verified": 1,
        "failed": 1,
        "skipped": 1,
    }
    by_file = {Path(t["source"]).name: t for t in report["tools"]}
    assert by_file["a_double.py"]["verification"] == {
        "status": "verified",
        "passed": 2,
        "failed": 0,
        "backend": "restricted",
        "layers": [],
    }
    assert by_file["b_half.py"]["verification"]["status"] == "failed"
    assert by_file["b_half.py"]["verification"]["failed"] == 1
    assert by_file["c_untested.py"]["verification"]["status"] == "skipped"
    assert "test case" in by_file["c_untested.py"]["verification"]["reason"]
    assert not by_file["d_uses_pi.py"]["admitted"] and "verification" not in by_file["d_uses_pi.py"]
    assert "verifying" in done.stderr  # the progress bar
    # The verdicts are the registry's own: stored with their evidence.
    assert len(fake_sandbox.jobs) == 3  # two cases of double, one of half
    with Registry(cli_registry, create=False) as reg:
        assert reg.get("double").status == "verified"
        assert reg.get("half").status == "failed"
        assert reg.get("untested").status == "unverified"


def test_a_failed_verification_is_exit_1_and_shown_in_the_text_report(
    tc: CliInvoke, fake_sandbox: FakeBackend, tmp_path: Path
) -> None:
    done = tc("add", str(_library(tmp_path, refused=False)), "--verify")
    assert done.exit_code == 1, done.output
    lines = done.stdout.splitlines()
    assert "verified (2/2 passed, restricted backend)" in lines[1]
    assert "failed (0/1 passed, restricted backend)" in lines[3]
    assert "not verified" in lines[5] and "test case" in lines[5]
    assert "3 admitted, 0 refused, 1 verified, 1 failed, 1 skipped" in done.stderr


def test_every_version_verified_is_exit_0(tc: CliInvoke, fake_sandbox: FakeBackend, tmp_path: Path) -> None:
    done = tc("add", str(_library(tmp_path, refused=False, failing=False)), "--verify", "--json")
    assert done.exit_code == 0, done.output
    assert [t["verification"]["status"] for t in _report(done)["tools"]] == ["verified", "skipped"]


def test_a_sandbox_that_cannot_run_is_exit_6_and_the_tools_stay_admitted(
    tc: CliInvoke, fake_sandbox: FakeBackend, cli_registry: Path, tmp_path: Path
) -> None:
    fake_sandbox.handler = lambda job: Result(
        status="unavailable", backend="restricted", error=ErrorInfo("SandboxUnavailable", "no sandbox here")
    )
    done = tc("add", str(_library(tmp_path, refused=False)), "--verify", "--json")
    assert done.exit_code == 6, done.output
    tools = _report(done)["tools"]
    assert [t["admitted"] for t in tools] == [True, True, True]
    double = tools[0]["verification"]
    assert double["status"] == "unverified" and double["exit_code"] == 6 and "no sandbox here" in double["error"]
    with Registry(cli_registry, create=False) as reg:
        assert reg.get("double").status == "unverified"


def test_one_file_with_verify(tc: CliInvoke, fake_sandbox: FakeBackend, tmp_path: Path) -> None:
    lib = _library(tmp_path)
    ok = tc("add", str(lib / "a_double.py"), "--tests", str(lib / "a_double.tests.json"), "--verify", "--json")
    assert ok.exit_code == 0, ok.output
    assert _report(ok)["verification"]["status"] == "verified"
    bad = tc("add", str(lib / "b_half.py"), "--tests", str(lib / "b_half.tests.json"), "--verify")
    assert bad.exit_code == 1, bad.output
    assert "failed (0/1 passed, restricted backend)" in bad.stdout
