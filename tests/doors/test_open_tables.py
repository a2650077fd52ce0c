"""A comparator and an export format are each one entry in one table
(registry/comparators.py's TABLE, toolcrib/exports.py's EXPORTERS): added
here by touching that table alone, then used through the public path (a
tests file, verification, `export_definitions`, the CLI's choices and help),
and removed again (monkeypatch.setitem)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.registry.cases import compare, parse_tests
from toolcrib.registry.comparators import TABLE, Comparator, Detail
from toolcrib.registry.errors import TestsFormatError

from toolcrib import Registry
from toolcrib.exports import EXPORTERS, Exporter, export_definitions

SHOUT = 'def shout(word: str) -> str:\n    """The word, loud."""\n    return word.upper() + "!"\n'


def _ignoring_punctuation(expected: Any, actual: Any, tolerance: float | None) -> tuple[bool, Detail]:
    def strip(value: Any) -> Any:
        return "".join(c for c in value if c.isalnum()) if isinstance(value, str) else value

    return (True, None) if strip(expected) == strip(actual) else (False, "after removing punctuation")


@pytest.fixture
def alnum(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(TABLE, "alnum", Comparator("the same letters and digits", _ignoring_punctuation))
    return "alnum"


def test_a_comparator_is_one_table_entry(alnum: str, reg: Registry) -> None:
    case = parse_tests([{"args": {"word": "hi"}, "expected": "HI", "comparator": alnum}])[0]
    assert compare(case, "HI!") == (True, None)
    assert compare(case, "HO!") == (False, 'expected "HI", got "HO!" (after removing punctuation)')
    with pytest.raises(TestsFormatError, match="'tolerance' only applies to comparator 'float'"):
        parse_tests([{"args": {}, "expected": "x", "comparator": alnum, "tolerance": 0.1}])
    # The registry stores it and verification uses it, in the sandbox.
    reg.add(SHOUT, tests=[{"args": {"word": "hi"}, "expected": "HI", "comparator": alnum}])
    assert reg.verify("shout").status == "verified"
    assert reg.get("shout").tests[0].comparator == alnum


def test_the_comparator_table_is_the_list_everywhere(alnum: str) -> None:
    with pytest.raises(
        TestsFormatError, match="choose from exact, float, unordered, normalized_text, compact_text, alnum"
    ):
        parse_tests([{"args": {}, "expected": 1, "comparator": "nearly"}])
    make_help = " ".join(CliRunner().invoke(cli, ["make", "--help"]).stdout.split())
    assert "compact_text|alnum]" in make_help


def test_the_help_describes_each_entry_from_its_table() -> None:
    def bare(text: str) -> str:  # click wraps lines (at a hyphen too)
        return "".join(text.split())

    runner = CliRunner()
    make_help = bare(runner.invoke(cli, ["make", "--help"]).stdout)
    export_help = bare(runner.invoke(cli, ["export-schema", "--help"]).stdout)
    for name, comparator in TABLE.items():
        assert bare(f"{name}: {comparator.description}") in make_help
    for name, exporter in EXPORTERS.items():
        assert bare(f"{name} ({exporter.description})") in export_help


def test_an_unregistered_comparator_is_refused_again() -> None:
    assert "alnum" not in TABLE
    with pytest.raises(TestsFormatError, match="unknown comparator 'alnum'"):
        parse_tests([{"args": {}, "expected": 1, "comparator": "alnum"}])


def _plain(tool: Any, name: str, warnings: list[str]) -> dict[str, Any]:
    return {
        "tool": name,
        "doc": tool.signature.description,
        "params": sorted(tool.signature.input_schema["properties"]),
    }


def test_an_export_format_is_one_table_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(EXPORTERS, "plain", Exporter("a name, a docstring and parameter names", _plain))
    with Registry(tmp_path / "r.db") as reg:
        reg.add(SHOUT, tests=[{"args": {"word": "hi"}, "expected": "HI!"}])
        reg.verify("shout")
        assert export_definitions([reg.get("shout")], "plain").definitions == [
            {"tool": "shout", "doc": "The word, loud.", "params": ["word"]}
        ]
        runner = CliRunner()
        done = runner.invoke(cli, ["--registry", str(reg.path), "export-schema", "shout", "--format", "plain"])
        assert done.exit_code == 0, done.stderr
        assert json.loads(done.stdout) == [{"tool": "shout", "doc": "The word, loud.", "params": ["word"]}]
        assert "|mcp|plain]" in runner.invoke(cli, ["export-schema", "--help"]).stdout
    monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown format 'plain'"):
        export_definitions([], "plain")
