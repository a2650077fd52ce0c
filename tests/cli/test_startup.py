"""Fast start: what a fresh `toolcrib` process imports before it does its work.

Import lists, not timings (timings live in bench/bench_startup.py): which
libraries a command loads is deterministic and is what its start-up cost is
made of. Each check runs a fresh interpreter, as a user's shell does.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import toolcrib.registry
import toolcrib.sandbox
from toolcrib.cli import COMMANDS, cli

import toolcrib

# Each of these costs tens of milliseconds to import, or more.
HEAVY = ("pydantic", "sqlite_utils", "jsonschema", "docker", "mcp", "llm", "datasette", "uvicorn", "RestrictedPython")

_LOADED = 'print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))' % (HEAVY,)


def _loaded_after(code: str, *argv: str, env: dict[str, str] | None = None) -> list[str]:
    """The heavy top-level packages a fresh interpreter has imported after `code`."""
    done = subprocess.run(
        [sys.executable, "-c", f"import json, sys\n{code}\n{_LOADED}", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


_CLI_ARGV = ["-c", "import sys; sys.argv[0] = 'toolcrib'; from toolcrib.cli import main; main()"]

_RUN_CLI = """
import contextlib, io
sys.argv = ["toolcrib", *sys.argv[1:]]
from toolcrib.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code
"""


def test_toolcrib_help_imports_no_heavy_library() -> None:
    assert _loaded_after(_RUN_CLI, "--help") == []


def test_importing_toolcrib_imports_no_heavy_library() -> None:
    assert _loaded_after("import toolcrib, toolcrib.registry, toolcrib.sandbox, toolcrib.registry.errors") == []


def test_the_public_names_still_resolve_lazily() -> None:
    loaded = _loaded_after("from toolcrib import Registry, Limits, ToolcribError")
    assert "pydantic" in loaded and "sqlite_utils" in loaded  # what Registry is made of
    for name in ("docker", "mcp", "llm", "datasette"):
        assert name not in loaded


# Stops the process as the restricted backend starts its zygote: everything
# `toolcrib call` needs has been imported by then, the call itself not run.
_UP_TO_THE_SANDBOX = """
def _hook(event, args):
    if event == "subprocess.Popen" and any("zygote" in str(a) for a in (args[1] or ())):
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
        sys.stdout.flush()
        os._exit(0)
import os
sys.addaudithook(_hook)
sys.argv = ["toolcrib", *sys.argv[1:]]
from toolcrib.cli import main
main()
""" % (HEAVY,)


def test_toolcrib_call_imports_only_what_a_call_needs(tmp_path: Path) -> None:
    from toolcrib.sandbox import close_backends

    from toolcrib import Registry

    db = tmp_path / "r.db"
    with Registry(db, actor="t") as reg:
        reg.add(
            'def add(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n',
            tests=[{"args": {"a": 1, "b": 2}, "expected": 3}],
        )
        reg.verify("add")
    close_backends()
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys\n" + _UP_TO_THE_SANDBOX, "call", "add", "--args", '{"a": 1, "b": 2}'],
        capture_output=True,
        text=True,
        env={**os.environ, "TOOLCRIB_REGISTRY": str(db)},
        check=False,
    )
    assert done.returncode == 0 and done.stdout, done.stderr[-2000:]
    loaded = json.loads(done.stdout)
    # The call path (toolcrib.registry.calls) reads the file with sqlite3 and
    # builds no pydantic model; arguments that plainly fit a plain stored
    # schema are checked without jsonschema (registry/schema_check.py).
    assert loaded == [], loaded


def _registry_with_a_called_tool(tmp_path: Path) -> Path:
    """A registry holding one verified tool that has been called (usage to
    show), written through the API on the fake sandbox."""
    from toolcrib.sandbox import Limits
    from toolcrib.sandbox.fake import FakeBackend

    from toolcrib import Registry

    db = tmp_path / "r.db"
    with Registry(db, actor="t", backends={"restricted": FakeBackend(name="restricted")}) as reg:
        reg.add(
            'def add(a: int, b: int = 2) -> int:\n    """Add."""\n    return a + b\n',
            tests=[{"args": {"a": 1, "b": 2}, "expected": 3}],
            limits=Limits(cpu=1),
        )
        reg.verify("add")
        reg.call("add", {"a": 1})
    return db


@pytest.mark.parametrize(
    "argv",
    [["list"], ["list", "--limit", "20"], ["list", "--status", "verified", "--name", "a*"], ["show", "add"]],
    ids=" ".join,
)
def test_list_and_show_import_no_heavy_library(tmp_path: Path, argv: list[str]) -> None:
    """The text of `list` and `show` is read on a plain connection
    (registry/plain_reads.py): no pydantic, sqlite-utils or jsonschema."""
    env = {**os.environ, "TOOLCRIB_REGISTRY": str(_registry_with_a_called_tool(tmp_path))}
    assert _loaded_after(_RUN_CLI, *argv, env=env) == []


def test_a_call_through_the_warm_service_imports_no_sandbox_machinery(tmp_path: Path) -> None:
    """`toolcrib call` with the service on (TOOLCRIB_SANDBOX_SERVICE=1) and
    warm: the client imports the service's socket client and nothing of the
    in-process sandbox (no restricted backend, zygote or RestrictedPython),
    and no heavy library (jsonschema included: the arguments are plain)."""
    from toolcrib.sandbox.service import stop

    service_dir = tmp_path / "svc"
    env = {
        **os.environ,
        "TOOLCRIB_REGISTRY": str(_registry_with_a_called_tool(tmp_path)),
        "TOOLCRIB_SANDBOX_SERVICE": "1",
        "TOOLCRIB_SERVICE_DIR": str(service_dir),
        "TOOLCRIB_SERVICE_IDLE": "60",
    }
    call = ["call", "add", "--args", '{"a": 1, "b": 2}']
    code = "\n".join(
        [_RUN_CLI, "print(json.dumps(sorted(m for m in sys.modules if m.startswith('toolcrib.sandbox'))))"]
    )
    try:
        first = subprocess.run(
            [sys.executable, *_CLI_ARGV, *call], env=env, capture_output=True, text=True, check=False
        )
        assert first.returncode == 0, first.stderr[-2000:]  # starts the service
        done = subprocess.run(
            [sys.executable, "-c", f"import json, sys\n{code}\n{_LOADED}", *call],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        stop(service_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    *_, sandbox_modules, heavy = done.stdout.strip().splitlines()
    assert json.loads(heavy) == []
    loaded = set(json.loads(sandbox_modules))
    assert "toolcrib.sandbox.service" in loaded
    # The table, the contract, the wire format and the service's client: no
    # backend. And the choice of the default backend (issue 23: wasm where the
    # Linux jail is missing), whose Landlock probe is one syscall through
    # inside/jail.py's ctypes binding: a call that names no backend needs it.
    client = {"backends", "contract", "inside", "inside.wire", "service", "default_backend", "inside.jail"}
    assert loaded <= {"toolcrib.sandbox", *(f"toolcrib.sandbox.{m}" for m in client)}, loaded


def _module_commands() -> dict[str, click.Command]:
    """Every command in the COMMANDS list of a toolcrib.cli module, by name."""
    found: dict[str, click.Command] = {}
    folder = Path(importlib.import_module("toolcrib.cli").__file__ or "").parent
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"toolcrib.cli.{path.stem}")
        for command in getattr(module, "COMMANDS", []):
            assert command.name, path
            found[command.name] = command
    return found


def test_every_command_is_registered_with_its_own_short_help() -> None:
    listed = _module_commands()
    missing = sorted(set(listed) - set(COMMANDS))
    assert not missing, f"add these to COMMANDS in cli/__init__.py: {missing}"
    ctx = click.Context(cli)
    for name, (target, short_help) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, (name, target)
        own = command.get_short_help_str(limit=10_000)
        assert short_help == own, f"COMMANDS[{name!r}] short help should be {own!r} (cli/__init__.py)"


def test_help_is_the_page_click_renders_once_every_command_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # the same width in both processes
    env = {**os.environ}
    fresh = subprocess.run(
        [str(Path(sys.executable).parent / "toolcrib"), "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in fresh, name
    ctx = click.Context(cli, info_name="toolcrib", **cli.context_settings)
    for name in COMMANDS:
        cli.get_command(ctx, name)
    assert fresh == cli.get_help(ctx) + "\n"


@pytest.mark.parametrize("package", [toolcrib, toolcrib.registry, toolcrib.sandbox])
def test_all_names_resolve(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        assert getattr(package, name) is not None or name == "__version__", name
    assert set(package.__all__) <= set(dir(package))  # type: ignore[attr-defined]


def test_toolcrib_reexports_the_registry_api() -> None:
    assert set(toolcrib.__all__) == {*toolcrib.registry.__all__, "Job", "Limits", "Result", "__version__"}
    assert toolcrib.Registry is toolcrib.registry.Registry
    assert toolcrib.Limits is toolcrib.sandbox.Limits


def test_unknown_attributes_still_raise() -> None:
    for package in (toolcrib, toolcrib.registry, toolcrib.sandbox):
        with pytest.raises(AttributeError):
            package.no_such_name  # type: ignore[attr-defined]  # noqa: B018
