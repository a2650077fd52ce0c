"""The host reads every byte defensively (issue 15, item 3): what a user, a
file, a peer or a tool hands the host is bounded when it is read, capped when
it is audited and escaped when it is printed.

- One bounded JSON reader (`sandbox.inside.wire.read_json`) for every JSON input:
  an integer past Python's 4,300-digit int-to-string limit, nesting 10,000
  deep, ``NaN`` or an overflowing ``1e400`` is exit 2 with one line, never
  70; version strings likewise.
- A registry path that cannot be used (a directory, ``/dev/null``, a
  ``/proc`` file, a read-only file system) is exit 8 with one line, for
  every command.
- Every field of an audit entry is capped, refusal reasons and field errors
  included.
- Text a tool or a client chose reaches a terminal with its control
  characters escaped; ``--json`` stays exact.

The CLI runs as the real console script in a subprocess, so an exit 70 (an
unexpected exception) is seen as the user would see it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.registry import ArgumentsError, InvalidInput, ProvenanceInput, Registry
from toolcrib.registry.audit import CAP_BYTES
from toolcrib.sandbox.inside import wire

HUGE_INT = "7" * 5000
DEEP = "[" * 10_000 + "]" * 10_000
TOOLCRIB = [sys.executable, "-c", "from toolcrib.cli import main; main()"]

ADD = '''\
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b
'''

# Escapes in the source, so the docstring and the result hold the raw
# characters: an OSC 52 clipboard write, clear-screen, a carriage return, a
# one-byte CSI (C1) and a right-to-left override.
EVIL = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\rok\x9b31m\u202e"
EVIL_TOOL = '''\
def shout(text: str) -> str:
    """Shout \\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\rok\\x9b31m\\u202e loudly."""
    return text + "\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\rok\\x9b31m\\u202e"
'''
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


def run(*args: str, registry: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOOLCRIB, "--registry", str(registry), *args], input=stdin, capture_output=True, text=True, timeout=300
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr[-2000:]
    assert "internal error" not in lines[0] and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    with Registry(path, actor="tester") as reg:
        reg.add(ADD, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
    return path


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" + "0" * 400 + ".0", "9" * 400 + "e9"])
def test_an_overflowing_number_in_a_forged_reply_is_refused(number: str) -> None:
    raw = ('{"status":"ok","result":[' + number + '],"error":null,"limit":null,"stdout":""}').encode()
    with pytest.raises(wire.ProtocolError, match="not a finite"):
        wire.parse_reply(raw, cap=1 << 20)
    got = wire.classify(None, {"exit": 0}, restricted=True, limits={"cpu": 1, "memory": 64}, problem="forged")
    assert got["status"] == "error"


def test_an_integer_past_the_digit_limit_in_a_reply_is_refused_before_int_sees_it() -> None:
    raw = ('{"status":"ok","result":' + HUGE_INT + ',"error":null,"limit":null,"stdout":""}').encode()
    with pytest.raises(wire.OverBound, match="integer with 5000 digits"):
        wire.parse_reply(raw, cap=1 << 20)
    # The limit itself is still a number the host can print.
    ok = '{"status":"ok","result":-' + "9" * wire.MAX_INT_DIGITS + ',"error":null,"limit":null,"stdout":""}'
    assert str(wire.parse_reply(ok.encode(), cap=1 << 20)["result"]).startswith("-999")


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ('{"n": ' + HUGE_INT + "}", wire.OverBound, "x: integer with 5000 digits (limit 4300)"),
        ("[-" + HUGE_INT + "]", wire.OverBound, "integer with 5000 digits"),
        (DEEP, wire.OverBound, "x: nested deeper than 64 levels"),
        ('{"a": ' + "{" * 100 + "}" * 100 + "}", wire.OverBound, "nested deeper than 64 levels"),
        ('{"x": 1e400}', wire.OverBound, "not a finite float"),
        ('{"x": NaN}', wire.NotJSON, "NaN is not JSON"),
        ("[-Infinity]", wire.NotJSON, "-Infinity is not JSON"),
        ("[1,", wire.NotJSON, "x is not JSON: line 1 column 4"),
    ],
)
def test_read_json_refuses_past_each_bound(text: str, kind: type, message: str) -> None:
    with pytest.raises(kind) as info:
        wire.read_json(text, "x")
    assert message in str(info.value)


def test_read_json_bounds_size_and_takes_what_is_inside_them() -> None:
    with pytest.raises(wire.OverBound, match="bytes"):
        wire.read_json("[" + "1," * 100 + "1]", "x", max_bytes=100)
    nested: object = 1
    for _ in range(wire.MAX_JSON_DEPTH - 1):
        nested = [nested]
    assert wire.read_json(json.dumps({"a": nested}), "x") == {"a": nested}
    assert wire.read_json(b'{"a": [1.5, -2, "\\u00e9"]}', "x") == {"a": [1.5, -2, "é"]}


# --------------------------------------------------------------------------- the CLI's inputs


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--args", '{"a": ' + HUGE_INT + ', "b": 1}'], "--args: integer with 5000 digits (limit 4300)"),
        (["--arg", "a=" + HUGE_INT, "--arg", "b=1"], "--arg a: integer with 5000 digits (limit 4300)"),
        (["--args", '{"a": ' + DEEP + "}"], "--args: nested deeper than 64 levels"),
        (["--arg", "a=" + DEEP], "nested deeper than 64 levels"),
        (["--args", '{"a": 1e400, "b": 1}'], "not a finite float"),
        (["--arg", "a=-1e400"], "not a finite float"),
    ],
)
def test_call_arguments_over_a_bound_are_exit_2(registry: Path, args: list[str], needle: str) -> None:
    one_line_error(run("call", "add", "--allow-unverified", *args, registry=registry), 2, needle)


def test_nan_given_with_arg_is_a_string_not_a_number(registry: Path) -> None:
    # "VALUE is JSON if it parses, else a string": NaN is not JSON.
    done = run("call", "add", "--allow-unverified", "--arg", "a=NaN", "--arg", "b=1", registry=registry)
    one_line_error(done, 2, "'NaN' is not of type 'integer'")


def _bundle(registry: Path) -> dict:
    with Registry(registry) as reg:
        return reg.export(None)


def test_import_of_a_bundle_with_a_huge_integer_is_exit_2(registry: Path, tmp_path: Path) -> None:
    text = json.dumps(_bundle(registry)).replace('"expected": 3', '"expected": ' + HUGE_INT)
    assert HUGE_INT in text
    done = run("import", "-", registry=tmp_path / "other.db", stdin=text)
    one_line_error(done, 2, "bundle: integer with 5000 digits (limit 4300)")
    deep = run("import", "-", registry=tmp_path / "other.db", stdin='{"tools": ' + DEEP + "}")
    one_line_error(deep, 2, "bundle: nested deeper than 128 levels")


def test_a_version_string_past_the_digit_limit_is_exit_2(registry: Path, tmp_path: Path) -> None:
    bundle = _bundle(registry)
    bundle["tools"][0]["version"] = "1.0." + HUGE_INT
    done = run("import", "-", registry=tmp_path / "other.db", stdin=json.dumps(bundle))
    one_line_error(done, 2, "invalid version", "longer than 128 characters")
    source = tmp_path / "add.py"
    source.write_text(ADD.replace("a + b", "b + a"))
    added = run("add", str(source), "--version", "2.0." + HUGE_INT, registry=registry)
    one_line_error(added, 2, "invalid version")


def test_tests_task_and_question_files_past_a_bound_are_exit_2(registry: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_text('[{"input": "q", "target": ' + HUGE_INT + "}]")
    deep = tmp_path / "deep.json"
    deep.write_text('[{"input": "q", "target": ' + DEEP + "}]")
    replay = tmp_path / "replay.json"
    replay.write_text('["no reply needed"]')
    for task in (huge, deep):
        made = run("make", str(task), "--replay", str(replay), registry=registry)
        one_line_error(made, 2, task.name)
        used = run("use", "add", "--questions", str(task), "--replay", str(replay), registry=registry)
        one_line_error(used, 2, task.name)
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"input": "q", "target": 1}\n\n{"input": "r", "target": ' + HUGE_INT + "}\n")
    one_line_error(
        run("make", str(lines), "--replay", str(replay), registry=registry),
        2,
        "lines.jsonl: line 3: integer with 5000 digits",
    )
    tests = tmp_path / "add.tests.json"
    tests.write_text('[{"args": {"a": 1, "b": 2}, "expected": ' + HUGE_INT + "}]")
    source = tmp_path / "add.py"
    source.write_text(ADD.replace("a + b", "b + a"))
    one_line_error(
        run("add", str(source), "--tests", str(tests), registry=registry), 2, "the tests file: integer with 5000 digits"
    )


def test_an_endless_input_file_is_read_only_up_to_the_bound(registry: Path, tmp_path: Path) -> None:
    import resource

    def small_memory() -> None:  # so the old, unbounded read fails fast instead of eating the machine
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    replay = tmp_path / "replay.json"
    replay.write_text('["no reply needed"]')
    for args, needle in [
        (["import", "/dev/zero"], "bundle file is larger than"),
        (["make", "/dev/zero", "--replay", str(replay)], "task file /dev/zero is larger than"),
    ]:
        done = subprocess.run(
            [*TOOLCRIB, "--registry", str(registry), *args],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=small_memory,
        )
        one_line_error(done, 2, needle)


def test_huge_integers_through_the_python_api_are_invalid(registry: Path) -> None:
    # What the MCP server passes on arrives as Python values (the SDK parsed
    # the JSON): the call checks them the same way.
    with Registry(registry) as reg:
        with pytest.raises(InvalidInput, match="arguments must be JSON"):
            reg.call("add", {"a": 10**5000, "b": 1}, allow_unverified=True)
        assert reg.audit()[-1].details["status"] == "invalid"


def test_a_stored_use_case_list_is_read_like_any_input(tmp_path: Path) -> None:
    from toolcrib.latm.make import USE_CASES_KEY
    from toolcrib.latm.use import tool_use_cases

    with Registry(tmp_path / "r.db") as reg:
        tool = reg.add(ADD, provenance=ProvenanceInput(metadata={USE_CASES_KEY: DEEP})).tool
        with pytest.raises(InvalidInput, match="nested deeper"):
            tool_use_cases(tool)


def test_deep_arguments_through_the_python_api_are_invalid_not_a_recursion_error(registry: Path) -> None:
    deep: object = 1
    for _ in range(10_000):
        deep = [deep]
    with Registry(registry) as reg:
        with pytest.raises(InvalidInput, match="nested too deeply"):
            reg.call("add", {"a": deep, "b": 1}, allow_unverified=True)
        assert reg.audit()[-1].details["status"] == "invalid"


# --------------------------------------------------------------------------- registry paths


def _unusable_paths(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    return [directory, Path("/dev/null"), Path("/proc/self/status"), Path("/proc/no-such-dir/r.db")]


@pytest.mark.parametrize(
    "command", [["init"], ["list"], ["audit"], ["show", "add"], ["call", "add"], ["search", "add"], ["history", "add"]]
)
def test_an_unusable_registry_path_is_exit_8_for_every_command(tmp_path: Path, command: list[str]) -> None:
    for path in _unusable_paths(tmp_path):
        done = run(*command, registry=path)
        if path.name == "r.db" and command != ["init"]:
            one_line_error(done, 3, "no registry at")  # nothing there: not found, as before
            continue
        one_line_error(done, 8, str(path))


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_a_registry_on_a_read_only_file_system_is_exit_8(registry: Path, tmp_path: Path) -> None:
    # A read-only bind mount in a mount namespace of its own: read-only even
    # for root, which file modes are not.
    mount = tmp_path / "ro"
    mount.mkdir()
    shutil.copy(registry, mount / "r.db")
    script = f"mount --bind {mount} {mount} && mount -o remount,bind,ro {mount} && " + " ; ".join(
        f"{' '.join(TOOLCRIB[:2])} '{TOOLCRIB[2]}' --registry {mount}/{name} {cmd} ; echo rc=$?"
        for name, cmd in [
            ("r.db", "list"),
            ("r.db", "audit"),
            ("r.db", "call add --arg a=1 --arg b=2 --allow-unverified"),
            ("r.db", "yank add@1.0.0 -r why"),
            ("new.db", "init"),
        ]
    )
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot make a mount namespace here")
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["rc=8"] * 5, (done.stdout, done.stderr)
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 5 and all(e.startswith("Error: registry ") and "read-only" in e for e in errors), errors


def test_a_write_refused_by_sqlite_midway_is_the_same_one_line_error(registry: Path) -> None:
    # A connection SQLite holds read-only (as it does a file this user may
    # not write): the write inside the transaction is refused by SQLite
    # itself, and reported like the up-front check, not as an internal error.
    import sqlite3

    from toolcrib.registry.store import write_transaction

    from toolcrib import RegistryUnusable

    conn = sqlite3.connect(f"{registry.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        with pytest.raises(RegistryUnusable, match="cannot be used: attempt to write a readonly database"):
            with write_transaction(conn):
                conn.execute("UPDATE versions SET yanked = 'x'")
        assert not conn.in_transaction
    finally:
        conn.close()


# --------------------------------------------------------------------------- audit caps


def _entry_bytes(registry: Path) -> int:
    import sqlite3

    with sqlite3.connect(registry) as conn:
        return int(
            conn.execute("SELECT length(CAST(details AS BLOB)) FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[0]
        )


def _fields_within_cap(details: dict) -> bool:
    # A string field: at most CAP_BYTES; any other: its JSON, or a marker's prefix.
    for value in details.values():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if isinstance(value, dict) and value.get("$truncated"):
            text = value["prefix"]
        if len(text.encode("utf-8")) > CAP_BYTES:
            return False
    return True


@pytest.mark.parametrize(
    "args",
    [
        {"a": "x" * 10_000_000, "b": 1},  # wrong type: the field error quotes the value
        {"a": 1, "b": 2, "x" * 10_000_000: 1},  # an unexpected argument's name
        {"a": 1, "b": 2, **{f"extra{i}": i for i in range(20_000)}},  # many field errors
    ],
)
def test_an_invalid_call_with_a_10_mb_argument_writes_a_small_entry(registry: Path, args: dict) -> None:
    with Registry(registry, actor="tester") as reg:
        with pytest.raises(ArgumentsError) as info:
            reg.call("add", args, allow_unverified=True)
        entry = reg.audit()[-1]
    assert entry.details["status"] == "invalid" and _fields_within_cap(entry.details)
    assert _entry_bytes(registry) < 16 * 1024
    assert len(str(info.value)) < 10_000  # the message printed and sent to MCP clients, too


def test_reasons_and_actors_of_any_length_are_capped(registry: Path) -> None:
    long = "y" * 3_000_000
    with Registry(registry, actor="z" * 1_000_000) as reg:
        reg.yank("add@1.0.0", long)
        entry = reg.audit()[-1]
    assert entry.event == "yank" and _fields_within_cap(entry.details)
    assert entry.details["yanked"].startswith("yyy") and entry.details["yanked"].endswith(" bytes)")
    assert len(entry.actor.encode()) <= CAP_BYTES and _entry_bytes(registry) < 4 * 1024


# --------------------------------------------------------------------------- terminals


@pytest.fixture
def evil_registry(tmp_path: Path) -> Path:
    path = tmp_path / "evil.db"
    with Registry(path, actor="maker" + EVIL) as reg:
        reg.set_review("none")  # a model-made tool called unverified: terminals, not review, are the point
        reg.add(EVIL_TOOL, provenance=ProvenanceInput(generator="gen" + EVIL, parent=None))
    return path


def _cli(registry: Path, *args: str, actor: str = "client" + EVIL) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--registry", str(registry), "--actor", actor, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["call", "shout", "--arg", "text=hi", "--allow-unverified"],
        ["call", "shout", "--arg", "text=1", "--allow-unverified", "--arg", "x" + EVIL + "=1"],  # invalid: the error
        ["show", "shout"],
        ["list"],
        ["list", "--stats"],
        ["search", "shout loudly"],
        ["history", "shout"],
        ["audit"],
    ],
)
def test_no_control_character_reaches_a_terminal_raw(evil_registry: Path, command: list[str]) -> None:
    # A call first, so that `audit` and `list --stats` have a client's entry to show.
    _cli(evil_registry, "call", "shout", "--arg", "text=" + EVIL, "--allow-unverified")
    code, out, err = _cli(evil_registry, *command)
    assert code in (0, 2), (code, out, err)
    for raw in RAW_CONTROLS:
        assert raw not in out and raw not in err, (command, out, err)
    if command != ["list", "--stats"]:  # (no chosen text in that table)
        assert "\\x1b" in out + err  # shown, as an escape


def test_the_escapes_are_the_documented_ones(evil_registry: Path) -> None:
    code, out, _ = _cli(evil_registry, "call", "shout", "--arg", "text=a\tb\nc", "--allow-unverified")
    assert code == 0
    # Newline and tab kept in a multi-line result; every other control escaped.
    assert out == "a\tb\nc\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x0dok\\x9b31m\\u202e\n"


def test_json_output_stays_exact(evil_registry: Path) -> None:
    code, out, _ = _cli(evil_registry, "call", "shout", "--arg", "text=x", "--allow-unverified", "--json")
    assert code == 0 and json.loads(out)["result"] == "x" + EVIL
    code, out, _ = _cli(evil_registry, "show", "shout", "--json")
    assert code == 0 and EVIL in json.loads(out)["signature"]["description"]


def test_an_mcp_client_name_reaches_the_audit_table_escaped(tmp_path: Path) -> None:
    # The real server over stdio; the client names itself with control sequences.
    import os

    import anyio
    import mcp_types as types
    from mcp import ClientSession, StdioServerParameters, stdio_client

    path = tmp_path / "mcp.db"
    with Registry(path, actor="tester") as reg:
        reg.add(ADD, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
        assert reg.verify("add").status == "verified"
    client = types.Implementation(name="agent" + EVIL, version="1" + EVIL)
    env = {"TOOLCRIB_ACTOR": "operator", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    params = StdioServerParameters(command=TOOLCRIB[0], args=[*TOOLCRIB[1:], "--registry", str(path), "serve"], env=env)

    async def body() -> None:
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                async with ClientSession(read, write, client_info=client) as session:
                    await session.initialize()
                    await session.call_tool("add", {"a": 2, "b": 3})

    anyio.run(body)
    with Registry(path, create=False) as reg:
        assert "\x1b" in reg.audit(event="call")[-1].actor  # stored as the client said it (--json is exact)
    code, out, err = _cli(path, "audit", actor="operator")
    assert code == 0 and "mcp:agent\\x1b]52;c;" in out
    for raw in RAW_CONTROLS:
        assert raw not in out + err


def test_the_digit_run_check_counts_runs_not_digits() -> None:
    # Runs at the limit, side by side (in numbers or in strings), are fine;
    # one run past it is not, wherever it is.
    at_limit = "9" * wire.MAX_INT_DIGITS
    assert wire.read_json("[" + ",".join([at_limit] * 50) + "]", "x")[49] == int(at_limit)
    assert wire.read_json('["' + "a".join([at_limit] * 50) + '"]', "x")[0].count("a") == 49
    assert wire.read_json('["' + at_limit + '9"]', "x") == [at_limit + "9"]  # a string: no number
    with pytest.raises(wire.OverBound, match="4301 digits"):
        wire.read_json("[1, " + at_limit + "9]", "x")
