"""One call path (`toolcrib.registry.calls`) behind both `Registry.call` and
`toolcrib call`: the CLI reads a current registry file with plain sqlite3 and
builds no pydantic model, and still answers, refuses and audits exactly as
the API does. A file whose schema is not current goes through `Registry`,
which migrates it first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.registry.calls import Caller, CallOutcome
from toolcrib.registry.migrations import apply_migrations, pending_migrations
from toolcrib.registry.store import SCHEMA_MIGRATIONS, applied_migrations, connect, open_database

from toolcrib import Registry

ADD = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b\n'


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    with Registry(path, actor="setup") as reg:
        reg.add(ADD, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
        reg.verify("add")
        reg.add(ADD.replace("a + b", "a - b"), name="sub", tests=[{"args": {"a": 1, "b": 2}, "expected": -1}])
    return path


def _cli(db: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    from toolcrib.cli import cli

    done = CliRunner().invoke(
        cli, ["--registry", str(db), "--actor", "cli-user", *args], input=stdin, catch_exceptions=False
    )
    return done.exit_code, done.stdout, done.stderr


def _without_duration(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "duration_ms"}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["add", "--args", '{"a": 2, "b": 5}'], 0),
        (["add", "--args", '{"a": 2, "b": 5}', "--limit", "cpu=1", "--policy", "plain"], 0),
        (["add", "--snippet", "-"], 0),
    ],
)
def test_the_cli_and_the_api_answer_a_call_alike(db: Path, args: list[str], code: int) -> None:
    snippet = "ans = add(2, 5)\n"
    exit_code, out, err = _cli(db, "call", *args, "--json", stdin=snippet if "--snippet" in args else None)
    assert exit_code == code, err
    with Registry(db, actor="api-user") as reg:
        kwargs: dict = {"snippet": snippet} if "--snippet" in args else {"args": {"a": 2, "b": 5}}
        if "--limit" in args:
            kwargs.update(limits={"cpu": 1}, policy="plain")
        api = reg.call("add", **kwargs)
    assert isinstance(api, CallOutcome)
    assert _without_duration(json.loads(out)) == _without_duration(api.to_json())
    assert json.loads(out)["result"] == 7


RISKY = (
    "def risky(n: int) -> int:\n"
    '    """Return n; raise on a negative n; spin forever above 100."""\n'
    "    if n < 0:\n"
    "        raise ValueError('negative')\n"
    "    while n > 100:\n"
    "        pass\n"
    "    return n\n"
)

# Measured, so never equal between two runs.
MEASURED = {"duration_ms"}


@pytest.mark.parametrize(
    ("how", "code", "status"),
    [
        ({"args": {"n": -1}}, 1, "error"),  # the tool raises
        ({"snippet": "ans = risky(1).__class__\n"}, 4, "blocked"),  # the restricted compiler refuses
        ({"args": {"n": 101}, "limits": {"cpu": 1}}, 5, "limit"),  # a loop that can only end at its limit
    ],
)
def test_the_cli_and_the_api_report_a_failed_call_alike(db: Path, how: dict, code: int, status: str) -> None:
    with Registry(db, actor="setup") as reg:
        reg.add(RISKY, tests=[{"args": {"n": 1}, "expected": 1}])
        reg.verify("risky")
    argv = ["call", "risky", "--json"]
    if "args" in how:
        argv += ["--args", json.dumps(how["args"])]
    else:
        argv += ["--snippet", "-"]
    for name, value in how.get("limits", {}).items():
        argv += ["--limit", f"{name}={value}"]
    exit_code, out, err = _cli(db, *argv, stdin=how.get("snippet"))
    assert exit_code == code, err
    cli_json = json.loads(out)
    with Registry(db, actor="api-user") as reg:
        api_json = reg.call("risky", **how).to_json()
    assert cli_json["status"] == api_json["status"] == status
    assert {k: v for k, v in cli_json.items() if k not in MEASURED} == {
        k: v for k, v in api_json.items() if k not in MEASURED
    }


def test_refusals_and_bad_arguments_are_the_same_errors_and_audited(db: Path) -> None:
    code, _, err = _cli(db, "call", "sub", "--args", '{"a": 1, "b": 2}')
    assert code == 4 and "sub@1.0.0 is unverified" in err  # refused by policy
    code, _, err = _cli(db, "call", "add", "--args", '{"a": 1.0, "b": 2}')
    assert code == 2 and "a: 1.0 is not of type 'integer'" in err
    code, _, err = _cli(db, "call", "add", "--limit", "cpu=1000", "--args", '{"a": 1, "b": 2}')
    assert code == 2 and "exceeds the maximum" in err
    code, _, err = _cli(db, "call", "nope")
    assert code == 3 and "no tool named 'nope'" in err
    with Registry(db) as reg:
        calls = [e for e in reg.audit() if e.event == "call"]
        assert reg.audit_verify().ok  # the plain-sqlite3 appends keep the chain whole
    assert [(e.actor, e.tool, e.details["status"]) for e in calls] == [
        ("cli-user", "sub@1.0.0", "refused"),
        ("cli-user", "add@1.0.0", "invalid"),
        ("cli-user", "add@1.0.0", "invalid"),
    ]
    assert calls[1].details["fields"] == {"a": "1.0 is not of type 'integer'"}


def test_the_caller_reads_a_current_file_through_plain_sqlite3(db: Path) -> None:
    conn = connect(db, create=False)
    try:
        assert tuple(applied_migrations(conn)) == SCHEMA_MIGRATIONS
        outcome = Caller(conn, actor="plain").call("add", {"a": 40, "b": 2})
    finally:
        conn.close()
    assert (outcome.status, outcome.result, outcome.tool) == ("ok", 42, "add@1.0.0")
    with Registry(db) as reg:
        last = reg.audit()[-1]
    assert (last.actor, last.details["status"], last.details["result"]) == ("plain", "ok", 42)


def test_a_file_with_an_older_schema_is_migrated_by_the_registry_first(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = open_database(path)
    apply_migrations(old, stop_before=SCHEMA_MIGRATIONS[-1])
    assert pending_migrations(old) == [SCHEMA_MIGRATIONS[-1]]
    old.close()
    code, _, err = _cli(path, "call", "add", "--args", '{"a": 1, "b": 2}')
    assert code == 3 and "no tool named 'add'" in err
    conn = connect(path, create=False)
    try:
        assert tuple(applied_migrations(conn)) == SCHEMA_MIGRATIONS
    finally:
        conn.close()


def test_the_stored_migration_list_is_the_one_migrations_defines() -> None:
    from toolcrib.registry.migrations import MIGRATIONS

    assert tuple(m.name for m in MIGRATIONS._migrations) == SCHEMA_MIGRATIONS
