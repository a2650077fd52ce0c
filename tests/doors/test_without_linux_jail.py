"""Every door with the Linux jail reported unavailable, as on macOS.

``TOOLCRIB_NO_LINUX_JAIL=1`` (sandbox/default_backend.py) makes this Linux
machine answer as one without the jail: the default backend is then wasm,
the wasm host runs in process (no jail to run it in), and the restricted
backend refuses every call, so a door that still reached it would fail here.
Each door is used without naming a backend: the Python API, the CLI (add,
verify, call, list, show), the MCP server through the SDK's own client, and
make/use with a scripted model; the evidence and the audit name wasm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from latm_tasks import SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, write_json
from mcp import ClientSession, StdioServerParameters, stdio_client
from reviewing import approve_waiting
from toolcrib.sandbox import Job, close_backends, get_backend, run
from toolcrib.sandbox.default_backend import JAIL_OFF_ENV, default_backend

from toolcrib import Registry, SandboxUnavailable
from toolcrib.latm import Example, ReplayModel, load_task, make, use

TOOLCRIB = str(Path(sys.executable).with_name("toolcrib"))
ADD = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b\n'
ADD_TESTS = [{"args": {"a": 1, "b": 2}, "expected": 3}]

# Installed and compiled, or skipped (failed under CI): tests/conftest.py.
pytestmark = pytest.mark.usefixtures("wasm_ready", "no_linux_jail")


@pytest.fixture
def no_linux_jail(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The jail reported unavailable and no backend named anywhere; the
    shared backends rebuilt under that (and again after)."""
    monkeypatch.setenv(JAIL_OFF_ENV, "1")
    monkeypatch.delenv("TOOLCRIB_BACKEND", raising=False)
    close_backends()
    yield
    close_backends()


def _backends_of_calls(reg: Registry) -> list[str]:
    return [entry.details["backend"] for entry in reg.audit(event="call")]


def test_the_default_is_wasm_and_its_host_runs_unjailed(reg: Registry) -> None:
    assert default_backend() == "wasm"
    backend = reg.backend()
    assert backend.name == "wasm" and getattr(backend, "jailed", None) is False
    assert run(Job(source="def f():\n    return 6 * 7\n", entrypoint="f")).backend == "wasm"
    assert get_backend().name == "wasm"  # the API's shared backend with no name: the machine's default


def test_doctor_names_wasm_as_the_default(tc) -> None:
    done = tc("doctor", "--no-probe", "--json")
    report = json.loads(done.stdout)
    assert report["default_backend"] == "wasm"
    assert next(c for c in report["checks"] if c["name"] == "wasm backend")["ok"] is True


def test_the_python_api_verifies_and_calls_through_wasm(reg: Registry) -> None:
    reg.add(ADD, tests=ADD_TESTS)
    verification = reg.verify("add")
    assert (verification.status, verification.backend) == ("verified", "wasm")
    outcome = reg.call("add", {"a": 20, "b": 22})
    assert (outcome.status, outcome.result, outcome.backend) == ("ok", 42, "wasm")
    assert _backends_of_calls(reg) == ["wasm"]


def test_the_restricted_backend_refuses_when_the_jail_is_reported_unavailable(reg: Registry) -> None:
    reg.add(ADD, tests=ADD_TESTS)
    with pytest.raises(SandboxUnavailable, match=JAIL_OFF_ENV):
        reg.verify("add", backend="restricted")


def test_the_cli_adds_verifies_calls_lists_and_shows_through_wasm(tc, cli_registry: Path, tmp_path: Path) -> None:
    source = tmp_path / "add.py"
    source.write_text(ADD)
    tests = write_json(tmp_path / "tests.json", ADD_TESTS)
    added = tc("add", str(source), "--tests", tests)
    assert added.exit_code == 0, added.output
    verified = tc("verify", "add", "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["backend"] == "wasm"
    called = tc("call", "add", "--args", '{"a": 20, "b": 22}', "--json")
    assert called.exit_code == 0, called.output
    assert json.loads(called.stdout)["backend"] == "wasm"
    listed = tc("list", "--json")
    assert listed.exit_code == 0 and [t["name"] for t in json.loads(listed.stdout)] == ["add"]
    shown = tc("show", "add", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["verification"]["backend"] == "wasm"
    refused = tc("call", "add", "--args", '{"a": 1, "b": 1}', "--backend", "restricted")
    assert refused.exit_code == 6 and JAIL_OFF_ENV in refused.output
    with Registry(cli_registry, create=False) as reg:
        assert _backends_of_calls(reg) == ["wasm", "restricted"]


def test_the_mcp_server_serves_through_wasm(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    with Registry(path, actor="setup") as reg:
        reg.add(ADD, tests=ADD_TESTS)
        assert reg.verify("add").backend == "wasm"
    env = {
        "TOOLCRIB_ACTOR": "operator",
        JAIL_OFF_ENV: "1",
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    params = StdioServerParameters(command=TOOLCRIB, args=["--registry", str(path), "serve"], env=env)
    client = types.Implementation(name="pytest-agent", version="7.1")

    async def body() -> None:
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                async with ClientSession(read, write, client_info=client) as session:
                    await session.initialize()
                    listed = (await session.list_tools()).tools
                    called = await session.call_tool("add", {"a": 20, "b": 22})
        assert [t.name for t in listed] == ["add"]
        assert listed[0].meta is not None and listed[0].meta["toolcrib/backend"] == "wasm"
        assert not called.is_error and called.structured_content == {"result": 42}

    anyio.run(body)
    with Registry(path, create=False) as reg:
        assert _backends_of_calls(reg) == ["wasm"]


def test_make_and_use_with_a_scripted_model_run_through_wasm(reg: Registry, tmp_path: Path) -> None:
    made = make(
        reg,
        load_task(write_json(tmp_path / "word_sorting.json", SORT)),
        ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]),
    )
    assert made.status == "made" and made.tool is not None, made
    evidence = reg.verification(made.tool)
    assert evidence is not None and evidence.backend == "wasm"
    assert approve_waiting(reg, tmp_path) == [made.tool]
    question = SORT[6]["input"]
    reply = f'```python\nret = sort_words("{question}")\nans = " ".join(ret)\n```'
    report = use(reg, made.tool, [Example(question, SORT[6]["target"], True)], ReplayModel([reply]))
    assert [(a.status, a.correct) for a in report.answers] == [("ok", True)]
    assert _backends_of_calls(reg) == ["wasm"]


def test_the_cli_make_and_use_run_through_wasm(tc, cli_registry: Path, tmp_path: Path) -> None:
    task = write_json(tmp_path / "word_sorting.json", SORT)
    made = tc("make", task, "--replay", write_json(tmp_path / "make.json", [SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]))
    assert made.exit_code == 0, made.output
    with Registry(cli_registry, create=False) as reg:
        assert approve_waiting(reg, tmp_path) == ["sort_words@1.0.0"]
    question = SORT[7]["input"]
    replies = write_json(tmp_path / "r.json", [f'```python\nret = sort_words("{question}")\nans = " ".join(ret)\n```'])
    used = tc("use", "sort_words", question, "--replay", replies)
    assert used.exit_code == 0 and used.stdout == "iris lily violet\n", used.output
    with Registry(cli_registry, create=False) as reg:
        assert _backends_of_calls(reg) == ["wasm"]
        evidence = reg.verification("sort_words")
        assert evidence is not None and evidence.backend == "wasm"


def test_the_wasm_path_loads_nothing_linux_only(tmp_path: Path) -> None:
    # A fresh interpreter where the Linux-only parts cannot be imported at
    # all (the jail, the restricted backend and its zygote, the jailed wasm
    # host, and the Unix-only standard modules): the registry's add, verify
    # and call, naming no backend, still run (through wasm, in process).
    code = (
        "import sys\n"
        "for name in ('resource', 'fcntl', 'termios', 'pwd', 'grp', 'toolcrib.sandbox.inside.jail',\n"
        "             'toolcrib.sandbox.restricted', 'toolcrib.sandbox.inside.zygote', 'toolcrib.sandbox.wasm_jailed'):\n"
        "    sys.modules[name] = None\n"
        "from toolcrib import Registry\n"
        "with Registry(sys.argv[1], actor='t') as reg:\n"
        f"    reg.add({ADD!r}, tests={ADD_TESTS!r})\n"
        "    v = reg.verify('add')\n"
        "    o = reg.call('add', {'a': 20, 'b': 22})\n"
        "print(v.status, v.backend, o.status, o.result, o.backend)\n"
    )
    env = {**os.environ, JAIL_OFF_ENV: "1"}
    env.pop("TOOLCRIB_BACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.db")], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["verified", "wasm", "ok", "42", "wasm"], done
