"""The CLI contract, through click's CliRunner on a real SQLite registry and
the real restricted sandbox: every command, its --json, its error paths and
their exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from toolcrib.cli import cli

SORT_TOOL = '''\
def sort_words(words: list[str]) -> list[str]:
    """Sort words alphabetically, ignoring case."""
    return sorted(words, key=lambda w: w.lower())
'''

SORT_TESTS = [
    {"name": "two", "args": {"words": ["b", "a"]}, "expected": ["a", "b"]},
    {"snippet": "ans = ' '.join(sort_words('pear fig'.split()))", "expected": "fig pear"},
]

WRONG_TESTS = [{"args": {"words": ["b", "a"]}, "expected": ["b", "a"]}]

RAISING_TOOL = '''\
def divide(a: int, b: int) -> float:
    """Divide a by b."""
    return a / b
'''

SPIN_TOOL = '''\
def spin(n: int) -> int:
    """Loop for a long time."""
    total = 0
    while True:
        total += n
    return total
'''

ESCAPING_TOOL = '''\
def peek(x: int) -> int:
    """Try to climb out through the class hierarchy."""
    return len(().__class__.__base__.__subclasses__()) + x
'''


@pytest.fixture
def registry(cli_registry: Path) -> Path:
    """The registry file the shared `tc` runs the CLI on."""
    return cli_registry


def write(tmp_path: Path, name: str, content: str | list | dict) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.fixture
def sort_tool(tc, tmp_path: Path) -> dict:
    # A model-made tool ("--generator gpt-4"): these tests are about the call
    # path, so the registry needs no review (tests/cli/test_review_cli.py has those).
    assert tc("init", "--review", "none").exit_code == 0
    result = tc(
        "add",
        write(tmp_path, "sort.py", SORT_TOOL),
        "--tests",
        write(tmp_path, "sort.json", SORT_TESTS),
        "--generator",
        "gpt-4",
        "--meta",
        "task=word_sorting",
        "--json",
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def verified_sort(tc, sort_tool: dict) -> dict:
    assert tc("verify", "sort_words").exit_code == 0
    return sort_tool


def one_line_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "expected an error message on stderr"
    assert "Traceback" not in result.stderr
    return lines[-1]


# -- init ---------------------------------------------------------------------


def test_init_creates_the_registry(tc, registry: Path) -> None:
    result = tc("init", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["registry"] == str(registry)
    assert registry.exists()
    again = tc("init")
    assert again.exit_code == 0 and "ready" in again.stdout


def test_read_command_on_missing_registry_is_not_found(tc, registry: Path) -> None:
    result = tc("list")
    assert result.exit_code == 3
    assert "toolcrib init" in one_line_error(result)
    assert not registry.exists()


def test_registry_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.db"
    monkeypatch.setenv("TOOLCRIB_REGISTRY", str(path))
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0 and path.exists()


# -- add ----------------------------------------------------------------------


def test_add_reports_the_new_version(sort_tool: dict) -> None:
    assert sort_tool["name"] == "sort_words"
    assert sort_tool["version"] == "1.0.0"
    assert sort_tool["status"] == "unverified"
    assert sort_tool["created"] is True
    assert len(sort_tool["sha256"]) == 64
    assert sort_tool["tests"] == 2


def test_add_identical_content_returns_existing(tc, tmp_path: Path, sort_tool: dict) -> None:
    result = tc(
        "add", write(tmp_path, "again.py", SORT_TOOL), "--tests", write(tmp_path, "t.json", SORT_TESTS), "--json"
    )
    data = json.loads(result.stdout)
    assert result.exit_code == 0
    assert data["created"] is False
    assert (data["version"], data["sha256"]) == (sort_tool["version"], sort_tool["sha256"])


def test_add_from_stdin_with_name(tc) -> None:
    result = tc("add", "-", "--name", "my-sorter", "--json", input=SORT_TOOL)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "my-sorter"


def test_add_markdown_reply_strips_example_usage(tc, tmp_path: Path) -> None:
    reply = (
        "Here is the tool:\n\n```python\n" + SORT_TOOL + "\n# Example usage:\nprint(sort_words(['b', 'a']))\n```\n\n"
        "And run it like this:\n\n```python\nwords = ['pear', 'fig']\nprint(sort_words(words))\n```\n"
    )
    refused = tc("add", write(tmp_path, "reply.md", reply))
    assert refused.exit_code == 2
    assert "line" in one_line_error(refused)
    result = tc("add", write(tmp_path, "reply2.md", reply), "--strip-top-level", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["entrypoint"] == "sort_words"
    assert data["notes"], "stripping must be reported"
    shown = tc("show", "sort_words", "--source")
    assert "print(" not in shown.stdout and "def sort_words" in shown.stdout


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def f(x):\n    return x +\n", "line 2"),
        ("def f(x):\n    return x\n\nf(1)\n", "line 4"),
        ("x = 1\n", "entrypoint"),
    ],
)
def test_add_refuses_bad_source_naming_the_line(tc, tmp_path: Path, source: str, fragment: str, registry: Path) -> None:
    result = tc("add", write(tmp_path, "bad.py", source))
    assert result.exit_code == 2
    assert fragment in one_line_error(result)
    if registry.exists():  # nothing half-written: no tool rows
        assert sqlite3.connect(registry).execute("select count(*) from versions").fetchone()[0] == 0


def test_add_usage_errors(tc, tmp_path: Path) -> None:
    assert tc("add", str(tmp_path / "missing.py")).exit_code == 2
    assert tc("add", write(tmp_path, "ok.py", SORT_TOOL), "--name", "bad name!").exit_code == 2
    assert tc("add", write(tmp_path, "ok2.py", SORT_TOOL), "--meta", "novalue").exit_code == 2
    bad_tests = tc(
        "add", write(tmp_path, "ok3.py", SORT_TOOL), "--tests", write(tmp_path, "bad.json", [{"expected": 1}])
    )
    assert bad_tests.exit_code == 2
    assert "case" in one_line_error(bad_tests)
    not_json = tc("add", write(tmp_path, "ok4.py", SORT_TOOL), "--tests", write(tmp_path, "bad2.json", "[{"))
    assert not_json.exit_code == 2


def test_add_with_unknown_parent_is_not_found(tc, tmp_path: Path) -> None:
    result = tc("add", write(tmp_path, "t.py", SORT_TOOL), "--parent", "nope@1.0.0")
    assert result.exit_code == 3


def test_explicit_version_cannot_be_reused(tc, tmp_path: Path, sort_tool: dict) -> None:
    changed = SORT_TOOL.replace("ignoring case", "ignoring case.")
    result = tc("add", write(tmp_path, "c.py", changed), "--version", "1.0.0")
    assert result.exit_code == 2
    assert "1.0.0" in one_line_error(result)


def test_version_bumps_follow_the_signature(tc, tmp_path: Path, sort_tool: dict) -> None:
    body = SORT_TOOL.replace("w.lower()", "w.casefold()")
    assert json.loads(tc("add", write(tmp_path, "p.py", body), "--json").stdout)["version"] == "1.0.1"
    minor = body.replace("words: list[str])", "words: list[str], reverse: bool = False)")
    assert json.loads(tc("add", write(tmp_path, "m.py", minor), "--json").stdout)["version"] == "1.1.0"
    major = minor.replace("words: list[str],", "words: str,")
    assert json.loads(tc("add", write(tmp_path, "M.py", major), "--json").stdout)["version"] == "2.0.0"
    history = json.loads(tc("history", "sort_words", "--json").stdout)
    assert [v["version"] for v in history] == ["1.0.0", "1.0.1", "1.1.0", "2.0.0"]
    diff = tc("diff", "sort_words@1.0.1", "sort_words@1.1.0", "--json")
    assert diff.exit_code == 0
    data = json.loads(diff.stdout)
    assert data["bump"] == "minor" and "reverse" in data["source_diff"]
    text = tc("diff", "sort_words@1.0.0", "sort_words")
    assert text.exit_code == 0 and "major" in text.stdout


# -- list, search, show, history ----------------------------------------------


def test_list_and_search(tc, sort_tool: dict) -> None:
    table = tc("list")
    assert table.exit_code == 0 and "sort_words" in table.stdout and "1.0.0" in table.stdout
    listed = json.loads(tc("list", "--json").stdout)
    assert [t["ref"] for t in listed] == ["sort_words@1.0.0"]
    found = json.loads(tc("search", "alphabetically", "--json").stdout)
    assert [t["name"] for t in found] == ["sort_words"]
    assert json.loads(tc("search", "zebra", "--json").stdout) == []


def test_show_text_source_json(tc, sort_tool: dict) -> None:
    text = tc("show", "sort_words")
    assert text.exit_code == 0
    assert "sort_words@1.0.0" in text.stdout and "gpt-4" in text.stdout and "words" in text.stdout
    assert tc("show", "sort_words", "--source").stdout == SORT_TOOL
    data = json.loads(tc("show", f"sort_words@sha256:{sort_tool['sha256'][:12]}", "--json").stdout)
    assert data["sha256"] == sort_tool["sha256"]
    assert data["signature"]["input_schema"]["properties"]["words"]["type"] == "array"
    assert data["provenance"]["metadata"] == {"task": "word_sorting"}
    assert data["verification"] is None


def test_show_errors(tc, sort_tool: dict) -> None:
    assert tc("show", "nope").exit_code == 3
    assert tc("show", "sort_words@9.9.9").exit_code == 3
    assert tc("show", "sort_words@sha256:ffffffffffff").exit_code == 3
    bad = tc("show", "bad name@@1")
    assert bad.exit_code == 2
    assert tc("history", "nope").exit_code == 3


# -- verify -------------------------------------------------------------------


def test_verify_passes_and_records(tc, sort_tool: dict) -> None:
    result = tc("verify", "sort_words", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "verified" and data["passed"] == 2 and data["failed"] == 0
    assert [c["passed"] for c in data["cases"]] == [True, True]
    assert data["cases"][0]["actual"] == ["a", "b"]
    shown = json.loads(tc("show", "sort_words", "--json").stdout)
    assert shown["status"] == "verified"
    assert shown["verification"]["backend"] == "restricted"


def test_verify_failing_case_exits_1(tc, tmp_path: Path) -> None:
    tc("add", write(tmp_path, "s.py", SORT_TOOL), "--tests", write(tmp_path, "w.json", WRONG_TESTS))
    result = tc("verify", "sort_words")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "failed" in result.stdout
    assert json.loads(tc("show", "sort_words", "--json").stdout)["status"] == "failed"


def test_verify_all_and_usage(tc, tmp_path: Path, sort_tool: dict) -> None:
    tc(
        "add",
        write(tmp_path, "d.py", RAISING_TOOL),
        "--tests",
        write(tmp_path, "d.json", [{"args": {"a": 1, "b": 2}, "expected": 0.5}]),
    )
    tc("add", write(tmp_path, "n.py", SPIN_TOOL))  # no tests: skipped, not failed
    result = tc("verify", "--all", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert sorted(r["tool"] for r in data["results"]) == ["divide@1.0.0", "sort_words@1.0.0"]
    assert any("spin" in line for line in data["skipped"])
    assert tc("verify").exit_code == 2
    assert tc("verify", "sort_words", "--all").exit_code == 2
    assert tc("verify", "spin").exit_code == 2
    assert tc("verify", "nope").exit_code == 3
    assert tc("verify", "sort_words", "--limit", "cpu=lots").exit_code == 2


# -- call ---------------------------------------------------------------------


def test_call_prints_the_result(tc, verified_sort: dict, tmp_path: Path) -> None:
    result = tc("call", "sort_words", "--args", '{"words": ["pear", "Apple"]}')
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ["Apple", "pear"]
    arg = tc("call", "sort_words", "--arg", 'words=["b", "a"]')
    assert json.loads(arg.stdout) == ["a", "b"]
    snippet = tc("call", "sort_words", "--snippet", write(tmp_path, "q.py", "ans = sort_words(['z', 'y'])[0]"))
    assert snippet.exit_code == 0 and snippet.stdout.strip() == "y"
    printed = tc("call", "sort_words", "--snippet", "-", input="print('first:', sort_words(['z', 'y'])[0])")
    assert printed.stdout.strip() == "first: y"


def test_call_json_shape(tc, verified_sort: dict) -> None:
    result = tc("call", "sort_words", "--args", '{"words": ["b", "a"]}', "--json")
    data = json.loads(result.stdout)
    assert {"status", "result", "error", "limit", "tool", "backend", "duration_ms"} <= set(data)
    assert data["status"] == "ok" and data["result"] == ["a", "b"] and data["error"] is None
    assert data["limit"] is None and data["tool"] == "sort_words@1.0.0" and data["backend"] == "restricted"
    assert data["duration_ms"] > 0


def test_call_bad_arguments_name_each_field(tc, verified_sort: dict) -> None:
    result = tc("call", "sort_words", "--args", '{"words": "x", "extra": 1}')
    assert result.exit_code == 2
    message = one_line_error(result)
    assert "words" in message and "extra" in message
    assert tc("call", "sort_words", "--args", "[1]").exit_code == 2
    assert tc("call", "sort_words", "--args", "{nope").exit_code == 2
    assert tc("call", "sort_words", "--args", "{}", "--snippet", "-", input="ans=1").exit_code == 2


def test_call_refuses_unverified_unless_allowed(tc, tmp_path: Path) -> None:
    tc("add", write(tmp_path, "d.py", RAISING_TOOL))
    refused = tc("call", "divide", "--args", '{"a": 1, "b": 2}')
    assert refused.exit_code == 4
    assert "verif" in one_line_error(refused)
    allowed = tc("call", "divide", "--args", '{"a": 1, "b": 2}', "--allow-unverified")
    assert allowed.exit_code == 0 and json.loads(allowed.stdout) == 0.5


def test_call_outcome_exit_codes(tc, tmp_path: Path) -> None:
    tc("add", write(tmp_path, "d.py", RAISING_TOOL))
    raised = tc("call", "divide", "--args", '{"a": 1, "b": 0}', "--allow-unverified", "--json")
    assert raised.exit_code == 1
    data = json.loads(raised.stdout)
    assert data["status"] == "error" and data["error"]["type"] == "ZeroDivisionError"
    tc("add", write(tmp_path, "s.py", SPIN_TOOL))
    limited = tc(
        "call", "spin", "--args", '{"n": 1}', "--allow-unverified", "--limit", "wall=1", "--limit", "cpu=0.5", "--json"
    )
    assert limited.exit_code == 5
    assert json.loads(limited.stdout)["limit"] in {"cpu", "wall"}
    tc("add", write(tmp_path, "e.py", ESCAPING_TOOL))
    blocked = tc("call", "peek", "--args", '{"x": 1}', "--allow-unverified")
    assert blocked.exit_code == 4
    message = one_line_error(blocked)
    assert "is not allowed" in message and "line 3" in message
    over_max = tc("call", "spin", "--args", '{"n": 1}', "--allow-unverified", "--limit", "cpu=100000")
    assert over_max.exit_code == 2


def test_call_unknown_tool_and_limit_name(tc, verified_sort: dict) -> None:
    assert tc("call", "nope", "--args", "{}").exit_code == 3
    assert tc("call", "sort_words", "--args", '{"words": []}', "--limit", "bogus=1").exit_code == 2
    assert tc("call", "sort_words", "--args", '{"words": []}', "--limit", "cpu").exit_code == 2


# -- lifecycle ----------------------------------------------------------------


def test_deprecate_and_yank(tc, tmp_path: Path, verified_sort: dict) -> None:
    dep = tc("deprecate", "sort_words@1.0.0", "--message", "use v2", "--json")
    assert dep.exit_code == 0 and json.loads(dep.stdout)["deprecated"] == "use v2"
    assert tc("call", "sort_words", "--args", '{"words": []}').exit_code == 0  # deprecated still runs

    newer = SORT_TOOL.replace("ignoring case", "case-insensitively")
    tc("add", write(tmp_path, "v2.py", newer), "--tests", write(tmp_path, "t.json", SORT_TESTS))
    tc("verify", "sort_words@1.0.1")
    yanked = tc("yank", "sort_words@1.0.1", "--reason", "bad", "--json")
    assert yanked.exit_code == 0 and json.loads(yanked.stdout)["yanked"] == "bad"
    # NAME alone never picks the yanked version
    assert json.loads(tc("show", "sort_words", "--json").stdout)["version"] == "1.0.0"
    pinned = tc("call", "sort_words@1.0.1", "--args", '{"words": []}')
    assert pinned.exit_code == 4
    assert tc("call", "sort_words@1.0.1", "--args", '{"words": []}', "--allow-yanked").exit_code == 0
    # the version number is never reused, even after a yank
    reuse = tc("add", write(tmp_path, "v3.py", newer + "\n# again\n"), "--version", "1.0.1")
    assert reuse.exit_code == 2
    assert tc("yank", "nope@1.0.0", "--reason", "x").exit_code == 3
    assert tc("yank", "sort_words@1.0.0").exit_code == 2  # --reason is required


# -- provenance, export, import -----------------------------------------------


def test_provenance_statement(tc, tmp_path: Path) -> None:
    transcript = write(tmp_path, "chat.json", [{"role": "user", "content": "write a sorter"}])
    tc("add", write(tmp_path, "s.py", SORT_TOOL), "--generator", "gpt-4", "--transcript", transcript)
    result = tc("provenance", "sort_words")
    assert result.exit_code == 0
    statement = json.loads(result.stdout)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    subject = statement["subject"][0]
    assert subject["name"] == "sort_words@1.0.0"
    assert len(subject["digest"]["sha256"]) == 64
    assert "gpt-4" in json.dumps(statement["predicate"])
    assert tc("provenance", "nope").exit_code == 3


def test_export_import_round_trip(tc, tmp_path: Path, sort_tool: dict) -> None:
    bundle_path = tmp_path / "bundle.json"
    assert tc("export", "-o", str(bundle_path)).exit_code == 0
    bundle = json.loads(bundle_path.read_text())
    assert [t["sha256"] for t in bundle["tools"]] == [sort_tool["sha256"]]
    to_stdout = json.loads(tc("export").stdout)
    assert to_stdout["tools"] == bundle["tools"]

    other = CliRunner()
    target = tmp_path / "other.db"
    imported = other.invoke(cli, ["--registry", str(target), "import", str(bundle_path), "--json"])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)[0]["sha256"] == sort_tool["sha256"]
    again = other.invoke(cli, ["--registry", str(target), "import", str(bundle_path), "--json"])
    assert json.loads(again.stdout)[0]["created"] is False

    bundle["tools"][0]["source"] += "\n# tampered\n"
    tampered = write(tmp_path, "tampered.json", bundle)
    fresh = tmp_path / "fresh.db"
    refused = other.invoke(cli, ["--registry", str(fresh), "import", tampered])
    assert refused.exit_code == 2
    assert "sha256" in refused.stderr or "digest" in refused.stderr
    assert other.invoke(cli, ["--registry", str(fresh), "list", "--json"]).stdout.strip() in ("[]", "")
    assert other.invoke(cli, ["--registry", str(fresh), "import", write(tmp_path, "nj.json", "{")]).exit_code == 2
    assert tc("export", "nope").exit_code == 3


# -- audit --------------------------------------------------------------------


def test_audit_lists_and_filters(tc, verified_sort: dict) -> None:
    tc("call", "sort_words", "--args", '{"words": ["b", "a"]}')
    entries = json.loads(tc("audit", "--json").stdout)
    events = [e["event"] for e in entries]
    assert {"add", "verify", "call"} <= set(events)
    assert all(e["actor"] == "tester" for e in entries)
    calls = json.loads(tc("audit", "--event", "call", "--json").stdout)
    assert [e["event"] for e in calls] == ["call"]
    assert calls[0]["tool"] == "sort_words@1.0.0"
    assert calls[0]["details"]["status"] == "ok"
    assert len(json.loads(tc("audit", "--limit", "1", "--json").stdout)) == 1
    assert json.loads(tc("audit", "--tool", "nope", "--json").stdout) == []
    assert json.loads(tc("audit", "--since", "2999-01-01", "--json").stdout) == []
    assert "call" in tc("audit").stdout


def test_audit_verify_catches_tampering(tc, registry: Path, verified_sort: dict) -> None:
    ok = tc("audit", "verify", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    db = sqlite3.connect(registry)
    triggers = [r[0] for r in db.execute("select name from sqlite_master where type='trigger' and tbl_name='audit'")]
    assert triggers, "the audit table must be protected by triggers"
    with pytest.raises(sqlite3.DatabaseError):
        db.execute("update audit set actor = 'mallory' where seq = 1")
    for name in triggers:
        db.execute(f"drop trigger {name}")
    db.execute("update audit set actor = 'mallory' where seq = 2")
    db.commit()
    db.close()
    broken = tc("audit", "verify")
    assert broken.exit_code == 1
    assert "entry 2" in one_line_error(broken)


# -- the real console script ---------------------------------------------------


def toolcrib_script() -> str:
    return str(Path(sys.executable).with_name("toolcrib"))


def test_console_script_errors_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TOOLCRIB_REGISTRY": str(tmp_path / "r.db")}
    proc = subprocess.run([toolcrib_script(), "show", "nothing"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ")


def test_docker_unavailable_exits_6(tmp_path: Path) -> None:
    env = {**os.environ, "TOOLCRIB_REGISTRY": str(tmp_path / "r.db"), "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    path = write(tmp_path, "s.py", SORT_TOOL)
    subprocess.run([toolcrib_script(), "add", path], check=True, capture_output=True, env=env, timeout=60)
    proc = subprocess.run(
        [
            toolcrib_script(),
            "call",
            "sort_words",
            "--args",
            '{"words": []}',
            "--allow-unverified",
            "--backend",
            "docker",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 6, proc.stderr
    assert json.loads(proc.stdout)["status"] == "unavailable"


def test_every_read_command_has_json() -> None:
    from toolcrib.cli.reference import iter_commands

    read_commands = {
        "list",
        "search",
        "show",
        "history",
        "diff",
        "audit",
        "audit verify",
        "provenance",
        "verify",
        "call",
        "add",
        "init",
        "import",
    }
    for path, command in iter_commands(cli):
        if " ".join(path) in read_commands:
            assert any("--json" in p.opts for p in command.params), f"{' '.join(path)} lacks --json"
