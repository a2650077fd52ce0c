"""One shape per outcome (issue 16, item 5): a refusal is the same JSON at
every door, `call --json` included; the exit-code table is the CLI's; the CLI
has one set of helpers; a call reads its version once."""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry import schema_check
from toolcrib.registry.calls import Caller
from toolcrib.registry.store import connect
from toolcrib.sandbox.contract import Cancel

from toolcrib import Registry

ROOT = Path(__file__).resolve().parents[2]
ADD = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b\n'
OUTCOME_KEYS = {"status", "result", "error", "limit", "stdout", "tool", "backend", "policy", "layers", "duration_ms"}


@pytest.fixture
def cli_registry(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    with Registry(path, actor="setup") as reg:
        reg.add(ADD, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
        reg.verify("add")
        reg.add(ADD.replace("a + b", "a - b"), name="sub")
    return path


@pytest.mark.parametrize(
    ("argv", "code", "status", "error_type"),
    [
        (["sub", "--args", '{"a": 1, "b": 2}'], 4, "refused", "PolicyRefused"),
        (["add", "--args", '{"a": 1.5, "b": 2}'], 2, "invalid", "ArgumentsError"),
        (["add", "--args", '{"a": 1, "b": 2}', "--limit", "cpu=1000"], 2, "invalid", "InvalidInput"),
        (["add", "--args", "[1"], 2, "invalid", "InvalidInput"),
        (["add", "--args", "[1]"], 2, "invalid", "InvalidInput"),
        (["nope"], 3, "not_found", "NotFound"),
    ],
)
def test_call_json_prints_the_refusal_json_and_keeps_the_exit_code(
    tc: Any, argv: list[str], code: int, status: str, error_type: str
) -> None:
    done = tc("call", *argv, "--json")
    assert done.exit_code == code
    data = json.loads(done.stdout)
    assert set(data) - {"fields"} == OUTCOME_KEYS  # the keys of every call --json
    assert (data["status"], data["error"]["type"], data["tool"]) == (status, error_type, argv[0])
    assert data["error"]["message"] in done.stderr  # the one-line error, as without --json
    if error_type == "ArgumentsError":
        assert data["fields"] == {"a": "1.5 is not of type 'integer'"}
    without = tc("call", *argv)
    assert (without.exit_code, without.stdout) == (code, "")


def test_the_mcp_server_refuses_with_the_same_json(cli_registry: Path, tc: Any) -> None:
    from toolcrib.mcp_server import ServeOptions, ToolServer

    server = ToolServer(ServeOptions(registry=cli_registry))
    try:
        refused = server._call("mcp:test", "add@1.0.0", {"a": "x", "b": 2}, Cancel())
    finally:
        server.close()
    assert refused.is_error
    cli = json.loads(tc("call", "add@1.0.0", "--args", '{"a": "x", "b": 2}', "--json").stdout)
    # The same JSON, in the result's _meta (issue 17: an error result carries
    # no structured content that would contradict the output schema).
    assert refused.structured_content is None
    assert refused.meta is not None and refused.meta["toolcrib/outcome"] == cli
    text = refused.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Error: invalid: ArgumentsError: ") and json.loads(text.split("\n", 1)[1]) == cli


def test_the_exit_code_table_is_the_clis() -> None:
    from toolcrib.cli.exit_codes import EXIT_CODES, exit_code_for_status
    from toolcrib.registry import errors

    assert not hasattr(errors, "EXIT_CODES") and not hasattr(errors, "exit_code_for_status")
    assert [exit_code_for_status(s) for s in ("ok", "error", "blocked", "limit", "unavailable")] == [0, 1, 4, 5, 6]
    assert {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ToolcribError)
    } <= set(EXIT_CODES)


def _cli_modules() -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text()) for path in sorted((ROOT / "cli").glob("*.py"))}


def test_the_cli_has_one_set_of_helpers() -> None:
    """No command module keeps its own copy of what cli/common.py offers: a
    progress printer, a --json option, a JSON printer, an error class with
    an exit code. (cli/streaming.py is the one writer of listings that stream.)"""
    copies = []
    for name, tree in _cli_modules().items():
        if name in ("common.py", "streaming.py"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in ("_progress", "_emit"):
                copies.append(f"{name}: def {node.name}")
            if isinstance(node, ast.ClassDef) and any("ClickException" in ast.unparse(b) for b in node.bases):
                copies.append(f"{name}: class {node.name}")
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "click.option"
                and any(isinstance(a, ast.Constant) and a.value == "--json" for a in node.args)
            ):
                copies.append(f"{name}: its own --json option")
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "json.dumps"
                and any(k.arg == "indent" for k in node.keywords)
                and name != "tools.py"
            ):  # tools.py writes a bundle file
                copies.append(f"{name}: its own JSON printer")
    assert copies == []


def test_a_call_reads_its_version_once_and_never_reserializes_its_schema(
    cli_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connect(cli_registry, create=False)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    schema_dumps = []
    real_dumps = json.dumps

    def dumps(value: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(value, dict) and "properties" in value and value.get("required") == ["a", "b"]:
            schema_dumps.append(value)
        return real_dumps(value, *args, **kwargs)

    monkeypatch.setattr(schema_check.json, "dumps", dumps)
    try:
        for _ in range(2):
            statements.clear()
            outcome = Caller(conn, actor="t").call("add", {"a": 40, "b": 2})
            assert (outcome.status, outcome.result) == ("ok", 42)
            reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM VERSIONS" in s.upper()]
            # One read chooses among the name's versions (id, version, yank
            # state); one reads the rest of the chosen row: no column twice.
            assert len(reads) == 2, reads
            assert sum("yanked" in s for s in reads) == 1 and sum("source" in s for s in reads) == 1, reads
    finally:
        monkeypatch.undo()
        conn.close()
    assert schema_dumps == []  # the stored signature text is the validator's key


def test_a_call_on_a_plain_connection_still_reads_sqlite3_rows(cli_registry: Path) -> None:
    conn = sqlite3.connect(cli_registry)
    try:
        assert Caller(conn, actor="t").call("add@1.0.0", {"a": 1, "b": 1}).result == 2
    finally:
        conn.close()
