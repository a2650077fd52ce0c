"""The CLI when the user gets something wrong (issue 17): the one refusal
JSON on stdout for every --json failure (a usage error too), "did you mean"
for a mistyped tool name, the global options after the subcommand, an --arg
value taken as a string said so where it is the mistake, and a failed
call's error message kept (capped) in the audit. The tools are the tests'
own: they run on the FakeBackend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli

from toolcrib import Registry

SORT = '''\
def sort_words(words: list[str], reverse: bool = False) -> list[str]:
    """Sort words."""
    return sorted(words, reverse=reverse)
'''
LOUD = '''\
def loud(n: int) -> int:
    """Raise a long message."""
    raise ValueError("x" * n)
'''
REFUSAL_KEYS = {"status", "result", "error", "limit", "stdout", "tool", "backend", "policy", "layers", "duration_ms"}


@pytest.fixture
def cli_registry(tmp_path: Path, fake_sandbox) -> Path:
    path = tmp_path / "cli.db"
    with Registry(path, actor="tester") as registry:
        registry.set_review("none")  # review is not the subject here (issue 18)
        registry.add(SORT, tests=[{"args": {"words": ["b", "a"]}, "expected": ["a", "b"]}])
        registry.add(LOUD, tests=[{"args": {"n": -1}, "expected": None}])
        registry.verify("sort_words")
    return path


def _one_json(stdout: str) -> dict:
    data = json.loads(stdout)  # exactly one JSON document, nothing else
    assert REFUSAL_KEYS <= set(data)
    return data


@pytest.mark.parametrize(
    ("args", "status", "code", "tool"),
    [
        (["call", "sort_words", "--json", "--arg", "words"], "invalid", 2, "sort_words"),  # a usage error
        (["call", "--json"], "invalid", 2, None),  # no REF
        (["call", "sort_words", "--json", "--no-such-option"], "invalid", 2, "sort_words"),
        (["call", "sort_wrds", "--json", "--arg", 'words=["a"]'], "not_found", 3, "sort_wrds"),
        (["call", "sort_words", "--json", "--args", '{"words": 1}'], "invalid", 2, "sort_words"),
        (["show", "sort_wrds", "--json"], "not_found", 3, "sort_wrds"),
        (["verify", "nope", "--json"], "not_found", 3, "nope"),
        (["audit", "verify", "--json", "--bogus"], "invalid", 2, None),  # a command of a group: no REF
    ],
)
def test_every_json_failure_prints_the_refusal_json(tc, args: list[str], status: str, code: int, tool) -> None:
    result = tc(*args)
    assert result.exit_code == code, result.output
    data = _one_json(result.stdout)
    assert data["status"] == status and data["tool"] == tool
    assert data["error"]["message"] and "\n" not in data["error"]["message"]
    assert "Error:" in result.stderr


def test_a_failure_without_json_prints_nothing_on_stdout(tc) -> None:
    result = tc("call", "sort_words", "--arg", "words")
    assert result.exit_code == 2 and result.stdout == ""


def test_did_you_mean_for_a_mistyped_tool_name(tc) -> None:
    for args in (["call", "sort_wrds"], ["show", "sortwords"], ["history", "sort_word"]):
        result = tc(*args)
        assert result.exit_code == 3
        assert "(did you mean 'sort_words'?)" in result.stderr, args
    far = tc("show", "zzzzzz")
    assert far.exit_code == 3 and "did you mean" not in far.stderr


def test_global_options_after_the_subcommand(cli_registry: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TOOLCRIB_REGISTRY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default registry is not this one
    runner = CliRunner()
    for tail in (["--registry", str(cli_registry)], [f"--registry={cli_registry}"]):
        result = runner.invoke(cli, ["call", "sort_words", "--arg", 'words=["b","a"]', *tail, "--actor", "after"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == ["a", "b"]
    with Registry(cli_registry) as registry:
        assert [e.actor for e in registry.audit(event="call")][-2:] == ["after", "after"]
    # After "--", nothing is an option.
    result = runner.invoke(cli, ["--registry", str(cli_registry), "show", "--", "--registry"])
    assert result.exit_code != 0 and "--registry" in result.output


def test_an_arg_taken_as_a_string_is_said_where_it_matters(tc) -> None:
    bad = tc("call", "sort_words", "--arg", "words=[pear, fig]")
    assert bad.exit_code == 2
    assert "--arg words=[pear, fig] is not JSON, so it was taken as a string" in bad.stderr
    # A string that is what the parameter wants is not remarked on.
    fine = tc("call", "sort_words", "--arg", 'words=["b"]', "--arg", "reverse=true")
    assert fine.exit_code == 0 and "taken as a string" not in fine.stderr


def test_the_audit_keeps_a_failed_calls_message_capped(tc, cli_registry: Path) -> None:
    tc("verify", "loud")  # its one case raises: failed; called anyway below
    short = tc("call", "loud", "--arg", "n=5", "--allow-unverified")
    long = tc("call", "loud", "--arg", "n=5000", "--allow-unverified")
    assert short.exit_code == 1 and long.exit_code == 1
    with Registry(cli_registry) as registry:
        calls = [e.details for e in registry.audit(tool="loud", event="call")]
    assert calls[-2]["error_type"] == "ValueError" and calls[-2]["error_message"] == "xxxxx"
    capped = calls[-1]["error_message"]
    assert len(capped) <= 500 and capped.endswith("(5000 characters)")
    # `toolcrib audit` shows it (one line, escaped, capped like every cell).
    shown = [line for line in tc("audit", "--tool", "loud", "--event", "call").stdout.splitlines() if "loud" in line]
    assert "error_type=ValueError error_message=xxxxx" in shown[-2]
