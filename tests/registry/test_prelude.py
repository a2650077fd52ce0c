"""Preludes: a library's shared import block, stored with each version (part
of its hash), run before the tool in the sandbox on both backends, named
preludes in the registry, and bundles that carry them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.registry.errors import AdmissionError, BundleError, InvalidInput, NotFound
from toolcrib.registry.versions import content_sha256

from toolcrib import Registry

# A tool written the way the corpus was: it uses names only its maker's
# fixed import block defined.
TOOL = '''
def hypotenuse(a: float, b: float) -> float:
    """Length of the hypotenuse."""
    return sqrt(a * a + b * b)
'''
PRELUDE = "from math import sqrt\n"
TESTS = [{"args": {"a": 3, "b": 4}, "expected": 5.0}]


def test_prelude_is_stored_and_hashed_only_when_present(reg: Registry) -> None:
    plain = reg.add("def one() -> int:\n    return 1\n")
    with_prelude = reg.add("def one() -> int:\n    return 1\n", prelude="X = 1\n", name="one_p")
    assert plain.tool.prelude is None and with_prelude.tool.prelude == "X = 1\n"
    # Without a prelude the hash is what it always was; with one it differs.
    sig = plain.tool.signature
    assert plain.tool.sha256 == content_sha256(plain.tool.source, "one", sig, [])
    assert with_prelude.tool.sha256 == content_sha256(plain.tool.source, "one", sig, [], prelude="X = 1\n")
    assert with_prelude.tool.sha256 != plain.tool.sha256
    # Read back from the database.
    assert reg.get("one_p").prelude == "X = 1\n"


def test_the_prelude_runs_before_the_tool(reg: Registry, backend: str) -> None:
    reg.add(TOOL, tests=TESTS, prelude=PRELUDE)
    verdict = reg.verify("hypotenuse", backend=backend)
    assert (verdict.status, verdict.passed) == ("verified", 1), verdict.cases
    assert reg.call("hypotenuse", {"a": 5, "b": 12}, backend=backend).result == 13.0
    # A snippet sees the prelude's names too.
    assert reg.call("hypotenuse", snippet="ans = sqrt(hypotenuse(3, 4))", backend=backend).result == pytest.approx(
        5**0.5
    )


def test_the_prelude_runs_under_the_same_policy(reg: Registry) -> None:
    reg.add(TOOL, prelude="import os\nfrom math import sqrt\n", name="hyp_os", allow_missing=True)
    outcome = reg.call("hyp_os", {"a": 3, "b": 4}, allow_unverified=True)
    assert outcome.status == "blocked"
    assert outcome.error is not None and '"os"' in outcome.error.message


def test_without_its_prelude_the_tool_is_refused(reg: Registry) -> None:
    with pytest.raises(AdmissionError, match="name 'sqrt'"):
        reg.add(TOOL)


def test_a_prelude_that_does_not_parse_is_refused(reg: Registry) -> None:
    with pytest.raises(AdmissionError, match="prelude does not parse"):
        reg.add(TOOL, prelude="from math import (\n")
    with pytest.raises(InvalidInput, match="empty"):
        reg.add(TOOL, prelude="  \n")


def test_named_preludes_are_copied_into_versions(reg: Registry) -> None:
    stored = reg.set_prelude("geometry", PRELUDE)
    assert (stored.name, stored.requires) == ("geometry", [])
    first = reg.add(TOOL, prelude_name="geometry")
    assert first.tool.prelude == PRELUDE
    # Replacing the prelude changes no stored version.
    reg.set_prelude("geometry", "from math import sqrt, pi\n")
    assert reg.get("hypotenuse").prelude == PRELUDE
    assert reg.get_prelude("geometry").text == "from math import sqrt, pi\n"
    assert [p.name for p in reg.preludes()] == ["geometry"]
    assert [e.details["name"] for e in reg.audit(event="prelude")] == ["geometry", "geometry"]
    with pytest.raises(NotFound, match="no prelude named 'nope'"):
        reg.add(TOOL, prelude_name="nope")
    with pytest.raises(InvalidInput, match="not both"):
        reg.add(TOOL, prelude="X = 1\n", prelude_name="geometry")


def test_bundles_carry_the_prelude_and_its_hash(reg: Registry, tmp_path: Path) -> None:
    added = reg.add(TOOL, tests=TESTS, prelude=PRELUDE).tool
    bundle = reg.export(["hypotenuse"])
    assert bundle["tools"][0]["prelude"] == PRELUDE
    with Registry(tmp_path / "other.db", actor="other") as other:
        imported = other.import_bundle(json.loads(json.dumps(bundle)))[0].tool
        assert (imported.sha256, imported.prelude) == (added.sha256, PRELUDE)
        assert other.verify("hypotenuse").status == "verified"
    tampered = json.loads(json.dumps(bundle))
    tampered["tools"][0]["prelude"] = "from math import sqrt\nimport json\n"
    with Registry(tmp_path / "third.db", actor="x") as third, pytest.raises(BundleError, match="sha256 mismatch"):
        third.import_bundle(tampered)


def test_cli_prelude_commands_and_add_by_name(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--registry", str(tmp_path / "r.db")]
    header = tmp_path / "header.py"
    header.write_text(PRELUDE)
    tool = tmp_path / "hyp.py"
    tool.write_text(TOOL)
    stored = runner.invoke(cli, [*base, "prelude", "add", "geometry", str(header), "--json"])
    assert stored.exit_code == 0, stored.output
    assert json.loads(stored.stdout)["text"] == PRELUDE
    listed = runner.invoke(cli, [*base, "prelude", "list", "--json"])
    assert [p["name"] for p in json.loads(listed.stdout)] == ["geometry"]
    assert runner.invoke(cli, [*base, "prelude", "show", "geometry"]).stdout == PRELUDE
    missing = runner.invoke(cli, [*base, "prelude", "show", "nope"])
    assert missing.exit_code == 3 and "no prelude named 'nope'" in missing.output
    by_name = runner.invoke(cli, [*base, "add", str(tool), "--prelude", "geometry", "--json"])
    assert by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout)["prelude"] is True
    by_file = runner.invoke(cli, [*base, "add", str(tool), "--prelude", str(header), "--json"])
    assert json.loads(by_file.stdout)["created"] is False  # the same text: the same version
    shown = runner.invoke(cli, [*base, "show", "hypotenuse", "--json"])
    assert json.loads(shown.stdout)["prelude"] == PRELUDE
    no_file = runner.invoke(cli, [*base, "add", str(tool), "--prelude", "missing/header.py"])
    assert no_file.exit_code == 2 and "prelude file not found" in no_file.output


@pytest.mark.network
def test_a_stored_preludes_requirements_come_with_it(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLCRIB_CACHE", str(tmp_path / "cache"))
    reg.set_prelude("sixlib", "import six\n", requires=["six"])
    tool = "def py3() -> bool:\n    return bool(six.PY3)\n"
    added = reg.add(tool, prelude_name="sixlib").tool
    assert added.requires == ["six"] and added.policy == "plain"
    assert added.lock is not None and "six" in added.lock.imports
    assert reg.audit(event="add")[-1].details["prelude"] == "sixlib"
    # The same prelude as text, without its requirements: six is missing.
    with pytest.raises(AdmissionError, match="prelude line 1: module 'six'"):
        reg.add(tool, prelude="import six\n", name="py3_bare")
