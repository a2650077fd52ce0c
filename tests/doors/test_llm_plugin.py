"""The `llm` plugin (toolcrib/llm_plugin.py), through llm's own CLI with the
scripted echo model of `llm-echo` (its prompt, as JSON, names the tool calls
the "model" makes; no network): `llm tools list` shows the verified tools
with their real parameters, `llm -T NAME` runs them in the real restricted
sandbox, audited as ``llm:echo``, errors reach the model as tool errors, and
one warm sandbox serves every call of the process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from toolcrib.sandbox.contract import Limits

from toolcrib import Registry

SORT = '''\
def sort_words(words: list[str], reverse: bool = False) -> list[str]:
    """Sort words alphabetically.

    Args:
        words: the words to sort
        reverse: largest first
    """
    if not words:
        raise ValueError("no words to sort")
    return sorted(words, reverse=reverse)
'''
SORT_TESTS = [{"args": {"words": ["b", "a"]}, "expected": ["a", "b"]}]
LOOP = "def spin(n: int) -> int:\n    if n < 0:\n        return n\n    while True:\n        n += 1\n"
UNVERIFIED = "def draft_tool(x: int) -> int:\n    return x\n"


@pytest.fixture
def llm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registry with a verified, an unverified and a looping tool; llm's
    own files in the test's directory; the plugin's registry closed after."""
    from toolcrib import llm_plugin

    path = tmp_path / "tools.db"
    with Registry(path, actor="tester") as registry:
        registry.add(SORT, tests=SORT_TESTS)
        assert registry.verify("sort_words").status == "verified"
        registry.add(LOOP, tests=[{"args": {"n": -1}, "expected": -1}], limits=Limits(cpu=1.0, wall=2.0))
        assert registry.verify("spin").status == "verified"
        registry.add(UNVERIFIED)
    monkeypatch.setenv("TOOLCRIB_REGISTRY", str(path))
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    yield path
    llm_plugin.close_shared_registries()


def run_llm(*args: str) -> Any:
    from llm.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def echo_calls(*calls: dict[str, Any]) -> str:
    return json.dumps({"tool_calls": list(calls)})


def tool_results(output: str) -> list[dict[str, Any]]:
    """The tool results the echo model was handed back (its second answer)."""
    decoder = json.JSONDecoder()
    answers, index = [], 0
    text = output.strip()
    while index < len(text):
        value, end = decoder.raw_decode(text, index)
        answers.append(value)
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return answers[-1]["tool_results"]


def test_the_plugin_is_an_llm_entry_point() -> None:
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group="llm") if e.name == "toolcrib"] == ["toolcrib.llm_plugin"]


def test_tools_list_shows_verified_tools_with_their_parameters(llm_env: Path) -> None:
    result = run_llm("tools", "list", "--json")
    assert result.exit_code == 0, result.output
    tools = {t["name"]: t for t in json.loads(result.output)["tools"] if t.get("plugin") == "toolcrib"}
    assert set(tools) == {"sort_words", "spin"}  # the unverified draft is not offered
    arguments = tools["sort_words"]["arguments"]
    assert list(arguments["properties"]) == ["words", "reverse"]
    assert arguments["required"] == ["words"]
    assert '"title"' not in json.dumps(arguments) and "x-toolcrib" not in json.dumps(arguments)
    assert tools["sort_words"]["description"] == "Sort words alphabetically."
    text = run_llm("tools", "list").output
    assert "sort_words(*, words: list, reverse: bool = False) -> list" in text


def test_llm_T_runs_the_tool_sandboxed_and_audited(llm_env: Path) -> None:
    prompt = echo_calls({"name": "sort_words", "arguments": {"words": ["pear", "apple", "fig"]}})
    result = run_llm("-m", "echo", "-T", "sort_words", prompt)
    assert result.exit_code == 0, result.output
    [answer] = tool_results(result.output)
    assert json.loads(answer["output"]) == ["apple", "fig", "pear"]
    with Registry(llm_env) as registry:
        [call] = [e for e in registry.audit(event="call") if e.actor.startswith("llm:")]
        assert call.actor == "llm:echo" and call.tool == "sort_words@1.0.0"
        assert call.details["status"] == "ok" and call.details["backend"] == "restricted"
        assert call.details["layers"]  # the isolation layers the sandbox reported


def test_errors_go_back_to_the_model_as_tool_errors(llm_env: Path) -> None:
    prompt = echo_calls(
        {"name": "sort_words", "arguments": {"words": []}},
        {"name": "sort_words", "arguments": {"words": "pear apple"}},
        {"name": "spin", "arguments": {"n": 1}},
    )
    result = run_llm("-m", "echo", "-T", "sort_words", "-T", "spin", prompt)
    assert result.exit_code == 0, result.output
    raised, bad, limited = (r["output"] for r in tool_results(result.output))
    assert raised == "Error: sort_words@1.0.0 raised ValueError: no words to sort (line 9)"
    assert raised.count("\n") == 0
    assert bad.startswith("Error: bad arguments for sort_words: words:") and "array" in bad
    assert limited.startswith("Error: spin@1.0.0 hit its ") and "limit" in limited
    with Registry(llm_env) as registry:
        statuses = [e.details["status"] for e in registry.audit(event="call") if e.actor == "llm:echo"]
    assert statuses == ["error", "invalid", "limit"]  # every call audited, whatever happened


def test_one_warm_sandbox_serves_the_whole_conversation(llm_env: Path) -> None:
    from toolcrib.sandbox import backends

    from toolcrib import llm_plugin

    calls = [{"name": "sort_words", "arguments": {"words": [w, "a"]}} for w in ("x", "y", "z")]
    first = run_llm("-m", "echo", "-T", "sort_words", echo_calls(*calls))
    assert first.exit_code == 0, first.output
    registry = llm_plugin.shared_registry()
    zygote = backends.shared("restricted")._zygote
    assert zygote is not None and zygote.proc.poll() is None  # warm after the first calls
    pid = zygote.proc.pid
    # The conversation goes on (-c): the same registry, the same warm sandbox.
    again = run_llm("-m", "echo", "-c", "-T", "sort_words", echo_calls(*calls))
    assert again.exit_code == 0, again.output
    assert [json.loads(r["output"]) for r in tool_results(again.output)] == [["a", "x"], ["a", "y"], ["a", "z"]]
    assert llm_plugin.shared_registry() is registry
    assert backends.shared("restricted")._zygote is zygote and zygote.proc.pid == pid


def test_no_registry_no_tools_and_none_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "none.db"
    monkeypatch.setenv("TOOLCRIB_REGISTRY", str(missing))
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    result = run_llm("tools", "list", "--json")
    assert result.exit_code == 0
    assert [t for t in json.loads(result.output)["tools"] if t.get("plugin") == "toolcrib"] == []
    assert not missing.exists()
