"""A plain `toolcrib call` run whole by the warm sandbox service (issue 21:
toolcrib/console.py, the client; cli/served_call.py, the service's side).

Against a real service (started as `ServiceBackend` starts it, its plugin
loaded through the entry point) and the real restricted backend: for every
outcome the served call writes the same stdout and stderr bytes, exits with
the same code and leaves the same audit entry as the click command line
with the service on (`toolcrib.cli.main`, the normal path); anything it does
not fully understand, or any doubt about the service, is left to the normal
path with nothing run; four clients are served at once; a client that dies
mid-call leaves its call audited; the client imports no heavy library; and
what either side reads is bounded. The registry's tools are written and
verified through the API on the fake backend (their verification is not
what is tested here)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from toolcrib.sandbox.fake import FakeBackend
from toolcrib.sandbox.service import ServiceBackend, status, stop

from toolcrib import Registry
from toolcrib.console import MAX_CHUNK, MAX_END, REPLY_HEADER, _Lost, _relay, parse_call

DOUBLE = 'def double(x: int) -> int:\n    """Double."""\n    return 2 * x\n'
TRIPLE = 'def triple(x: int) -> int:\n    """Triple."""\n    return 3 * x\n'
# A result and printed output holding terminal escapes: escaped on a terminal, exact in --json.
SHOUT = 'def shout(s: str) -> str:\n    """Shout."""\n    return s.upper() + "\\x1b]52;c;aGk=\\x07\\r!"\n'
BOOM = (
    'def boom(x: int) -> int:\n    """Raise."""\n'
    '    print("partial \\x1b[2J output")\n    raise ValueError("no \\x1b[31mred" + str(x))\n'
)
NAP = 'import time\n\n\ndef nap(s: float) -> float:\n    """Sleep."""\n    time.sleep(s)\n    return s\n'

NORMAL = "import sys; sys.argv[0] = 'toolcrib'; from toolcrib.cli import main; main()"
# The served path alone: exit 99 when the client would fall back (nothing run).
SERVED = (
    "import sys; from toolcrib.console import try_served_call\n"
    "code = try_served_call(sys.argv[1:])\n"
    "sys.exit(99 if code is None else code)"
)
NOT_SERVED = 99


def _wait(done: Callable[[], bool], timeout: float = 60.0) -> None:
    """A generous hang guard, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A registry (verified double, shout and nap; unverified triple and
    boom; a yanked old@1.0.0) and a running service of this module's own."""
    top = tmp_path_factory.mktemp("served")
    db = top / "r.db"
    fake = FakeBackend(name="restricted")
    with Registry(db, actor="setup", backends={"restricted": fake}) as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.add(SHOUT, tests=[{"args": {"s": "a"}, "expected": "A\x1b]52;c;aGk=\x07\r!"}])
        reg.add(NAP, tests=[{"args": {"s": 0}, "expected": 0}])
        reg.add(TRIPLE)
        reg.add(BOOM)
        reg.add(DOUBLE.replace("double", "old"), tests=[{"args": {"x": 2}, "expected": 4}])
        for name in ("double", "shout", "nap", "old"):
            reg.verify(name)
        reg.yank("old@1.0.0", "superseded")
    service_dir = top / "svc"
    env = {
        **os.environ,
        "TOOLCRIB_REGISTRY": str(db),
        "TOOLCRIB_SANDBOX_SERVICE": "1",
        "TOOLCRIB_SERVICE_DIR": str(service_dir),
        "TOOLCRIB_SERVICE_IDLE": "120",
    }
    for name in ("TOOLCRIB_ACTOR", "TOOLCRIB_BACKEND", "TOOLCRIB_DEBUG", "TOOLCRIB_NO_LINUX_JAIL"):
        env.pop(name, None)
    ServiceBackend(service_dir).start()  # as the normal path starts it: the plugin comes from the entry point
    try:
        assert status(service_dir)["serves"] == ["call"]
        yield {"db": db, "env": env, "dir": service_dir, "top": top}
    finally:
        stop(service_dir)
        _wait(lambda: not status(service_dir)["running"])


def _run(
    code: str, argv: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, env=env, cwd=cwd, timeout=120, check=False
    )


_DURATION = re.compile(rb'"duration_ms": [0-9.e+-]+')


def _seen(done: subprocess.CompletedProcess[bytes]) -> tuple[int, bytes, bytes]:
    """What a command wrote and its exit code; a --json duration is the one thing that differs by run."""
    return done.returncode, _DURATION.sub(b'"duration_ms": D', done.stdout), done.stderr


def _last_calls(db: Path, n: int) -> list[dict[str, Any]]:
    """The newest `n` call entries, as the audit log keeps them (minus what differs by run)."""
    with Registry(db, backends={"restricted": FakeBackend(name="restricted")}) as reg:
        entries = reg.audit(event="call", limit=n)
    out = []
    for entry in entries:
        details = {k: v for k, v in entry.details.items() if k not in ("duration_ms", "environment")}
        out.append(
            {"actor": entry.actor, "tool": entry.tool, "details": details, "env": "environment" in entry.details}
        )
    return out


def _count(db: Path) -> int:
    with Registry(db, backends={"restricted": FakeBackend(name="restricted")}) as reg:
        return len(reg.audit(event="call"))


OUTCOMES = {
    "ok": ["call", "double", "--args", '{"x": 21}'],
    "ok, escapes in the result": ["call", "shout", "--arg", "s=hi"],
    "ok, --arg pairs and a limit": ["call", "double", "--arg", "x=5", "--limit", "cpu=1", "--policy", "restricted"],
    "tool raised": ["call", "boom", "--arg", "x=7", "--allow-unverified"],
    "bad arguments": ["call", "double", "--arg", "x=abc"],
    "bad arguments, not an object": ["call", "double", "--args", "[1]"],
    "bad arguments, not JSON": ["call", "double", "--args", "{x"],
    "limit": ["call", "nap", "--arg", "s=5", "--limit", "wall=0.5"],
    "limit over the maximum": ["call", "double", "--arg", "x=1", "--limit", "cpu=100000"],
    "not a limit": ["call", "double", "--arg", "x=1", "--limit", "bogus"],
    "refused, unverified": ["call", "triple", "--arg", "x=1"],
    "refused, yanked": ["call", "old@1.0.0", "--arg", "x=1"],
    "yanked, allowed": ["call", "old@1.0.0", "--arg", "x=1", "--allow-yanked"],
    "unknown name": ["call", "doubel", "--arg", "x=1"],
    "global options after the command": ["call", "double", "--arg", "x=2", "--actor", "alice", "--no-build"],
    "global options before it": ["--actor=bob", "call", "--backend", "restricted", "double", "--arg=x=3"],
}


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.parametrize("argv", list(OUTCOMES.values()), ids=list(OUTCOMES))
def test_a_served_call_is_the_normal_call_byte_for_byte(
    world: dict[str, Any], argv: list[str], json_flag: list[str]
) -> None:
    before = _count(world["db"])
    normal = _run(NORMAL, argv + json_flag, world["env"])
    between = _count(world["db"])
    served = _run(SERVED, argv + json_flag, world["env"])
    assert served.returncode != NOT_SERVED, served.stderr
    assert _seen(served) == _seen(normal)
    # The same entry, or none on either side (a usage error is refused before the registry).
    assert _count(world["db"]) - between == between - before
    if between > before:
        first, second = _last_calls(world["db"], 2)
        assert first == second


def test_the_audit_entry_has_the_same_actor_as_the_normal_path(world: dict[str, Any]) -> None:
    env = {**world["env"], "TOOLCRIB_ACTOR": "carol"}
    argv = ["call", "double", "--arg", "x=4"]
    assert _run(NORMAL, argv, env).returncode == 0
    assert _run(SERVED, argv, env).returncode == 0
    env.pop("TOOLCRIB_ACTOR")
    assert _run(SERVED, argv, env).returncode == 0
    entries = _last_calls(world["db"], 3)
    assert [e["actor"] for e in entries[:2]] == ["carol", "carol"]
    import getpass

    assert entries[2]["actor"] == getpass.getuser()


def test_a_relative_registry_path_is_left_to_the_normal_path(world: dict[str, Any]) -> None:
    """A message names the registry as the command line wrote it: a path
    relative to the client's directory is the normal path's; an absolute
    one (``~`` expanded) is served, messages included."""
    env = {k: v for k, v in world["env"].items() if k != "TOOLCRIB_REGISTRY"}
    relative = ["--registry", "r.db", "call", "double", "--arg", "x=8"]
    assert _run(SERVED, relative, env, cwd=world["top"]).returncode == NOT_SERVED
    console = [str(Path(sys.executable).parent / "toolcrib"), *relative]
    done = subprocess.run(console, capture_output=True, env=env, cwd=world["top"], timeout=120, check=False)
    assert (done.returncode, done.stdout) == (0, b"16\n"), done.stderr
    home = {**env, "HOME": str(world["top"])}
    served = _run(SERVED, ["--registry", "~/r.db", "call", "double", "--arg", "x=9"], home)
    assert (served.returncode, served.stdout) == (0, b"18\n"), served.stderr
    (world["top"] / "junk.db").write_text("not a database, " * 100)
    for argv in (
        ["--registry", str(world["top"] / "junk.db"), "call", "double", "--arg", "x=1"],
        ["--registry", "~/missing.db", "call", "double", "--arg", "x=1", "--json"],
    ):
        served = _run(SERVED, argv, home)
        assert served.returncode in (2, 3) and str(world["top"]).encode() in served.stderr
        assert _seen(served) == _seen(_run(NORMAL, argv, home))


@pytest.mark.parametrize(
    "argv",
    [
        ["call", "double", "--snippet", "q.py"],
        ["call", "double", "--help"],
        ["call", "-h"],
        ["--version"],
        ["list"],
        ["--json", "call", "double"],
        ["call", "double", "--args", "{}", "--args", "{}"],
        ["--registry", "a.db", "call", "double", "--registry", "b.db"],
        ["call", "double", "--arg", "-x"],
        ["call", "double", "--args", "--registry"],
        ["call"],
        ["call", "double", "triple"],
        ["call", "double", "--", "x"],
        ["call", "double", "--frobnicate"],
        ["call", "double", "--policy", "lax"],
        ["call", "double", "--json=yes"],
        ["--registry=", "call", "double"],
        ["call", "double", "--arg"],
    ],
    ids=" ".join,
)
def test_what_the_client_does_not_fully_understand_is_left_to_click(argv: list[str]) -> None:
    assert parse_call(argv) is None


def test_the_forms_the_client_reads() -> None:
    argv = ["--registry=r.db", "call", "t@1", "--json", "--arg", "a=1", "--arg=b=[2, 3]", "--limit", "cpu=1"]
    argv += ["--actor", "me", "--allow-unverified", "--allow-unverified", "--args", '{"c": -1}']
    assert parse_call(argv) == {
        "registry": "r.db",
        "ref": "t@1",
        "arg": ["a=1", "b=[2, 3]"],
        "limit": ["cpu=1"],
        "actor": "me",
        "args": '{"c": -1}',
        "flags": ["allow_unverified", "json"],
    }


@pytest.mark.parametrize(
    "change",
    ["service off", "another backend", "debug", "a relative registry", "unsupported option", "jail reported off"],
)
def test_the_client_falls_back_with_nothing_run(world: dict[str, Any], change: str) -> None:
    env = dict(world["env"])
    argv = ["call", "double", "--arg", "x=1"]
    if change == "service off":
        env.pop("TOOLCRIB_SANDBOX_SERVICE")
    elif change == "another backend":
        env["TOOLCRIB_BACKEND"] = "wasm"
    elif change == "debug":
        env["TOOLCRIB_DEBUG"] = "1"
    elif change == "a relative registry":
        env["TOOLCRIB_REGISTRY"] = "r.db"
    elif change == "jail reported off":
        env["TOOLCRIB_NO_LINUX_JAIL"] = "1"
    else:
        argv += ["--snippet", "-"]
    calls = status(world["dir"])["calls"]
    assert _run(SERVED, argv, env).returncode == NOT_SERVED
    assert status(world["dir"])["calls"] == calls


def _service_env(world: dict[str, Any], directory: Path) -> dict[str, str]:
    return {**world["env"], "TOOLCRIB_SERVICE_DIR": str(directory), "TOOLCRIB_SERVICE_IDLE": "30"}


def test_no_service_or_a_stale_socket_falls_back_and_the_normal_path_starts_one(
    world: dict[str, Any], tmp_path: Path
) -> None:
    directory = tmp_path / "svc"
    directory.mkdir(mode=0o700)
    env = _service_env(world, directory)
    argv = ["call", "double", "--arg", "x=1"]
    assert _run(SERVED, argv, env).returncode == NOT_SERVED  # nothing there
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(directory / "sandbox.sock"))
    dead.close()  # a socket nobody listens on: a service that died
    try:
        assert _run(SERVED, argv, env).returncode == NOT_SERVED
        console = [str(Path(sys.executable).parent / "toolcrib"), *argv]
        done = subprocess.run(console, capture_output=True, env=env, timeout=120, check=False)
        assert (done.returncode, done.stdout) == (0, b"2\n"), done.stderr
        assert status(directory)["running"]  # replaced by the normal path, as today
        assert _run(SERVED, argv, env).returncode == 0  # and served from now on
    finally:
        stop(directory)
        _wait(lambda: not status(directory)["running"])


def test_an_unsafe_service_directory_is_refused_as_today(world: dict[str, Any], tmp_path: Path) -> None:
    directory = tmp_path / "svc"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    env = _service_env(world, directory)
    argv = ["call", "double", "--arg", "x=1"]
    assert _run(SERVED, argv, env).returncode == NOT_SERVED
    console = [str(Path(sys.executable).parent / "toolcrib"), *argv]
    done = subprocess.run(console, capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 6
    assert b"is open to others (mode 0755)" in done.stderr and str(directory).encode() in done.stderr
    assert not (directory / "service.pid").exists()


def test_the_client_imports_no_heavy_library(world: dict[str, Any], tmp_path: Path) -> None:
    """What the served call's process imports beyond what the interpreter
    had at start (an editable install's finder brings `re` to every
    process; the installed command does not): no click, pydantic,
    sqlite-utils or jsonschema, and not even json, re, socket, typing or
    getpass; of toolcrib, the package and its console module alone."""
    dump = tmp_path / "modules.txt"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(dump)!r}, 'w').write(repr(sorted(sys.modules))))\n"
        "sys.argv[0] = 'toolcrib'\n"
        "from toolcrib.console import main\n"
        "main()\n"
    )
    at_start = _run("import atexit, sys\nprint(repr(sorted(sys.modules)))", [], world["env"])
    done = _run(code, ["call", "double", "--args", '{"x": 1}', "--json"], world["env"])
    assert done.returncode == 0, done.stderr
    import ast

    loaded = set(ast.literal_eval(dump.read_text())) - set(ast.literal_eval(at_start.stdout.decode()))
    heavy = {"click", "pydantic", "sqlite_utils", "jsonschema", "RestrictedPython", "sqlite3"}
    heavy |= {"json", "re", "socket", "typing", "getpass", "enum", "contextlib"}
    assert {m.split(".")[0] for m in loaded} & heavy == set()
    # Nothing of toolcrib but the package and this module: no cli, registry or sandbox.
    assert {m for m in loaded if m.startswith("toolcrib")} == {"toolcrib", "toolcrib.console"}


def _nap(env: dict[str, str], seconds: float, *, output: bool = True) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SERVED, "call", "nap", "--arg", f"s={seconds}", "--limit", "wall=20", "--json"],
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.PIPE if output else subprocess.DEVNULL,
        env=env,
    )


def test_four_clients_are_served_at_once(world: dict[str, Any]) -> None:
    before = _count(world["db"])
    clients = [_nap(world["env"], 6) for _ in range(4)]
    try:
        # All four in the service at the same moment (each sleeps in its own sandbox).
        _wait(lambda: status(world["dir"])["active"] >= 4)
        outs = [client.communicate(timeout=120) for client in clients]
    finally:
        for client in clients:
            client.kill()
    assert [client.returncode for client in clients] == [0, 0, 0, 0], [err for _, err in outs]
    assert [json.loads(out)["result"] for out, _ in outs] == [6, 6, 6, 6]
    assert _count(world["db"]) == before + 4
    with Registry(world["db"], backends={"restricted": FakeBackend(name="restricted")}) as reg:
        assert reg.audit_verify().ok


def test_a_client_that_dies_mid_call_leaves_its_call_audited(world: dict[str, Any]) -> None:
    before = _count(world["db"])
    client = _nap(world["env"], 15, output=False)
    _wait(lambda: status(world["dir"])["active"] >= 1)
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=60)
    _wait(lambda: _count(world["db"]) == before + 1)
    entry = _last_calls(world["db"], 1)[0]
    assert entry["tool"] == "nap@1.0.0"
    assert entry["details"]["status"] == "cancelled"  # the sandbox was stopped, not left to sleep 15 s


def test_ctrl_c_ends_a_served_call_as_the_normal_path_does(world: dict[str, Any]) -> None:
    """Exit 130 after "Aborted!" (README, Exit codes), the call audited as cancelled."""
    before = _count(world["db"])
    client = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'toolcrib'; from toolcrib.console import main; main()",
         "call", "nap", "--arg", "s=15", "--limit", "wall=20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**world["env"], "TOOLCRIB_SANDBOX_SERVICE": "1"},
    )  # fmt: skip
    _wait(lambda: status(world["dir"])["active"] >= 1)
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=60)
    assert (client.returncode, err) == (130, b"\nAborted!\n")
    _wait(lambda: _count(world["db"]) == before + 1)
    assert _last_calls(world["db"], 1)[0]["details"]["status"] == "cancelled"


def _raw(world: dict[str, Any], request: bytes) -> bytes:
    """Send one request frame to the service; everything it answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(world["dir"] / "sandbox.sock"))
        conn.sendall(struct.pack(">I", len(request)) + request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_service_answers_a_request_it_cannot_read_with_fallback(world: dict[str, Any]) -> None:
    calls = status(world["dir"])["calls"]
    for request in (
        {"op": "call", "v": 1, "ref": "double", "registry": "relative.db", "actor": "x", "flags": []},
        {"op": "call", "v": 1, "ref": "double", "registry": str(world["db"]), "actor": "x", "flags": ["--rm"]},
        {"op": "call", "v": 1, "ref": ["double"], "registry": str(world["db"]), "actor": "x", "flags": []},
        {"op": "call", "v": 99},
    ):
        answer = _raw(world, json.dumps(request).encode())
        kind, size = REPLY_HEADER.unpack(answer[: REPLY_HEADER.size])
        assert kind == b"f" and size == len(answer) - REPLY_HEADER.size  # fall back, and why
    # Nested past any bound: closed without a word.
    assert _raw(world, b"[" * 100_000 + b"]" * 100_000) == b""
    assert status(world["dir"])["calls"] == calls


def _relay_of(frames: bytes) -> int | None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        theirs.sendall(frames)
        theirs.shutdown(socket.SHUT_WR)
        return _relay(ours)


def test_the_client_reads_only_bounded_answers(capfd: pytest.CaptureFixture[str]) -> None:
    assert _relay_of(REPLY_HEADER.pack(b"o", 3) + b"hi\n" + REPLY_HEADER.pack(b"x", 1) + b"3") == 3
    assert capfd.readouterr().out == "hi\n"
    assert _relay_of(b"") is None  # nothing answered: the normal path
    assert _relay_of(REPLY_HEADER.pack(b"f", 3) + b"why") is None
    for frames in (
        REPLY_HEADER.pack(b"o", MAX_CHUNK + 1),  # refused before a byte of it is read
        REPLY_HEADER.pack(b"x", MAX_END + 1),
        REPLY_HEADER.pack(b"x", 3) + b"300",
        REPLY_HEADER.pack(b"x", 2) + b"-1",
        REPLY_HEADER.pack(b"x", 0),
        REPLY_HEADER.pack(b"?", 0),
        REPLY_HEADER.pack(b"e", 1) + b"!" + REPLY_HEADER.pack(b"f", 3) + b"why",  # too late to fall back
        REPLY_HEADER.pack(b"e", 1) + b"!",  # output, then the service went away
    ):
        with pytest.raises(_Lost):
            _relay_of(frames)
