"""`toolcrib serve` end to end: a real server subprocess, the `mcp` SDK's own
client, over stdio and over streamable HTTP on loopback.

Nothing here depends on machine speed: the limit example can never finish
(an unbounded loop against a 1 s CPU limit), concurrency is shown by a call
completing while another one that never ends by itself is still in flight
(and by both sandboxes running at once), and waits for events are bounded
only by generous deadlines that a correct server meets at once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_servers import ServerProcess
from reviewing import approve_waiting

from toolcrib import Limits, Registry

TOOLCRIB = str(Path(sys.executable).with_name("toolcrib"))
CLIENT = types.Implementation(name="pytest-agent", version="7.1")
DEADLINE = 60.0  # seconds; a correct server answers long before

DOUBLE = '''
def double(x: int) -> int:
    """Double a number.

    Args:
        x: the number to double
    """
    return 2 * x
'''
BOOM = '''
def boom(x: int) -> int:
    """Refuse negative numbers."""
    if x < 0:
        raise ValueError("negative")
    return x
'''
# Counts to n: n=3 passes its test; n=10**15 can never finish within 1 s of CPU.
BURN = '''
def burn(n: int) -> int:
    """Count up to n."""
    total = 0
    for i in range(n):
        total += i
    return total
'''
# Loops until n reaches 0: hold(n=-1) never ends by itself (within a 120 s wall
# limit). Its ~96 MB of ballast tells its process apart from the zygote's spare
# children (which are small) without looking at timing.
HOLD = '''
def hold(n: int) -> int:
    """Count n down to zero, holding some memory."""
    ballast = [0] * 12_000_000
    steps = 0
    while n != 0:
        n -= 1
        steps += 1
    return steps + len(ballast) - 12_000_000
'''
PENDING = '''
def pending(x: int) -> int:
    """Registered but never verified."""
    return x
'''
LATE = '''
def late(x: int) -> int:
    """Verified only while the server runs."""
    return x + 1
'''


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "registry.db"
    with Registry(path, actor="setup") as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.add(BOOM, tests=[{"args": {"x": 1}, "expected": 1}])
        reg.add(BURN, tests=[{"args": {"n": 3}, "expected": 3}], limits=Limits(cpu=1, wall=30))
        reg.add(HOLD, tests=[{"args": {"n": 2}, "expected": 2}], limits=Limits(cpu=100, wall=120, memory=512))
        reg.add(PENDING, tests=[{"args": {"x": 1}, "expected": 1}])
        for name in ("double", "boom", "burn", "hold"):
            assert reg.verify(name).status == "verified"
    return path


# -- clients -----------------------------------------------------------------------


class Notes:
    """list_changed notifications received by one client."""

    def __init__(self) -> None:
        self.list_changed = anyio.Event()

    async def handle(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.list_changed.set()


def _serve_args(registry: Path, *extra: str) -> list[str]:
    return ["--registry", str(registry), "serve", "--poll", "0.1", *extra]


@asynccontextmanager
async def stdio_session(registry: Path, *extra: str, notes: Notes | None = None) -> AsyncIterator[ClientSession]:
    # The SDK passes only a few variables on; the server must import what the tests import.
    env = {"TOOLCRIB_ACTOR": "operator", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    params = StdioServerParameters(command=TOOLCRIB, args=_serve_args(registry, *extra), env=env)
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write):
            async with ClientSession(
                read, write, client_info=CLIENT, message_handler=notes.handle if notes else None
            ) as session:
                await session.initialize()
                yield session


class HttpServer(ServerProcess):
    """`toolcrib serve --http 0` in a subprocess; the URL it announced on stderr."""

    def __init__(self, registry: Path, *extra: str) -> None:
        super().__init__([TOOLCRIB, *_serve_args(registry, "--http", "0", *extra)])


@pytest.fixture(scope="module")
def http_server(registry: Path) -> Iterator[HttpServer]:
    server = HttpServer(registry)
    yield server
    server.stop()


@asynccontextmanager
async def http_session(url: str, notes: Notes | None = None, token: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(DEADLINE, read=300)) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(
                read, write, client_info=CLIENT, message_handler=notes.handle if notes else None
            ) as session:
                await session.initialize()
                yield session


Opener = Callable[..., Any]


def _run(body: Callable[[], Awaitable[None]]) -> None:
    anyio.run(body)


@pytest.fixture(params=["stdio", "http"])
def connect(request: pytest.FixtureRequest, registry: Path) -> Opener:
    """A function opening a client session over the parametrized transport."""
    if request.param == "stdio":
        return lambda notes=None: stdio_session(registry, notes=notes)
    server: HttpServer = request.getfixturevalue("http_server")
    return lambda notes=None: http_session(server.url, notes)


# -- listing and calling -------------------------------------------------------------


def test_lists_verified_tools_with_their_stored_schemas(connect: Opener, registry: Path) -> None:
    async def body() -> None:
        async with connect() as session:
            listed = {t.name: t for t in (await session.list_tools()).tools}
        assert sorted(listed) == ["boom", "burn", "double", "hold"]  # not "pending": unverified
        with Registry(registry, create=False) as reg:
            stored = reg.get("double")
        double = listed["double"]
        assert double.input_schema == stored.signature.input_schema
        assert double.output_schema == {
            "type": "object",
            "properties": {"result": stored.signature.output_schema},
            "required": ["result"],
            "x-fastmcp-wrap-result": True,
        }
        # The docstring without its Args section: the parameter's own schema describes it.
        assert stored.signature.description.startswith("Double a number.\n\nArgs:")
        assert double.description == "Double a number."
        assert double.annotations is not None
        assert double.annotations.read_only_hint is True and double.annotations.open_world_hint is False
        assert "sandboxed" in (double.annotations.title or "")
        assert double.meta == {
            "toolcrib/ref": "double@1.0.0",
            "toolcrib/sha256": stored.sha256,
            "toolcrib/backend": "restricted",
        }

    _run(body)


def test_calls_succeed_fail_hit_limits_and_refuse_bad_arguments(connect: Opener, registry: Path) -> None:
    async def body() -> None:
        async with connect() as session:
            ok = await session.call_tool("double", {"x": 21})
            failed = await session.call_tool("boom", {"x": -1})
            limited = await session.call_tool("burn", {"n": 10**15})
            bad = await session.call_tool("double", {"x": "21", "y": 1})
            with pytest.raises(MCPError, match="unknown tool 'pending'"):
                await session.call_tool("pending", {"x": 1})
        assert not ok.is_error
        assert ok.structured_content == {"result": 42}
        assert isinstance(ok.content[0], types.TextContent) and ok.content[0].text == "42"

        # Errors carry no structuredContent (the outputSchema describes a
        # success): the call --json object is in the text and in _meta.
        assert failed.is_error and failed.structured_content is None
        data = _outcome(failed)
        assert data["status"] == "error" and data["error"]["type"] == "ValueError" and data["tool"] == "boom@1.0.0"
        assert isinstance(failed.content[0], types.TextContent)
        assert "ValueError: negative" in failed.content[0].text

        assert limited.is_error
        assert _outcome(limited)["status"] == "limit" and _outcome(limited)["limit"] == "cpu"

        assert bad.is_error
        assert _outcome(bad)["status"] == "invalid"
        assert _outcome(bad)["fields"] == {"x": "'21' is not of type 'integer'", "y": "unexpected argument"}

    _run(body)


def _outcome(result: types.CallToolResult) -> dict[str, Any]:
    """A failed call's `call --json` object: in _meta, and the same after the text's headline."""
    assert result.is_error and result.meta is not None
    data = result.meta["toolcrib/outcome"]
    text = result.content[0]
    assert isinstance(text, types.TextContent)
    assert json.loads(text.text[text.text.index("{") :]) == data
    return dict(data)


def test_outcomes_carry_the_same_json_as_call_json(registry: Path, tmp_path: Path) -> None:
    async def body() -> dict[str, Any]:
        async with stdio_session(registry) as session:
            result = await session.call_tool("boom", {"x": -1})
        return _outcome(result)

    served = anyio.run(body)
    cli = subprocess.run(
        [TOOLCRIB, "--registry", str(registry), "call", "boom", "--args", '{"x": -1}', "--json"],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 1, cli.stderr
    printed = json.loads(cli.stdout)
    for changes in (served, printed):
        changes.pop("duration_ms")
    assert served == printed


def test_calls_are_audited_with_the_client_as_actor(registry: Path) -> None:
    async def body() -> None:
        async with stdio_session(registry) as session:
            await session.call_tool("double", {"x": 5})

    anyio.run(body)
    with Registry(registry, create=False) as reg:
        last = reg.audit(event="call", tool="double")[-1]
    assert last.actor == "mcp:pytest-agent/7.1"
    assert last.details["arguments"] == {"x": 5} and last.details["status"] == "ok"


# -- concurrency and cancellation ------------------------------------------------------


BALLAST_KIB = 64 * 1024  # a hold() call's process is above this; a spare child far below


def _holding(server_pid: int) -> set[int]:
    """The server's sandboxed processes running hold(): its zygote's children
    (not zombies) whose resident memory holds hold()'s ballast."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
    zygotes = {pid for pid, parent in parents.items() if parent == server_pid}
    found = set()
    for pid, parent in parents.items():
        if parent in zygotes and _state(pid) not in ("Z", "gone") and _rss_kib(pid) > BALLAST_KIB:
            found.add(pid)
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _server_pids() -> set[int]:
    """`toolcrib serve` processes started by this test process."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rpartition(")")[2].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if parent == os.getpid() and b"serve" in cmd:
                pids.add(int(entry))
    return pids


async def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.05)


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_concurrent_calls_and_cancellation_leave_no_sandbox_behind(
    registry: Path, transport: str, request: pytest.FixtureRequest
) -> None:
    before = _server_pids()
    cancelled = _cancelled_holds(registry)

    async def body() -> None:
        if transport == "http":
            http: HttpServer = request.getfixturevalue("http_server")
            opened, server = http_session(http.url), http.proc.pid
        else:
            opened, server = stdio_session(registry), 0
        async with opened as session:
            if not server:
                [server] = _server_pids() - before
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.call_tool, "hold", {"n": -1})
                tg.start_soon(session.call_tool, "hold", {"n": -2})
                # Both calls are in flight at once: two sandboxes run hold() together.
                await _wait_for(lambda: len(_holding(server)) == 2, "two sandboxes running hold()")
                running = _holding(server)
                # The server answers a third call while those two, which never end by themselves, run.
                quick = await session.call_tool("double", {"x": 4})
                assert quick.structured_content == {"result": 8}
                assert _holding(server) == running
                # The client cancels its two calls: their sandboxes are killed.
                tg.cancel_scope.cancel()
            await _wait_for(lambda: all(_state(p) in ("Z", "gone") for p in running), "the cancelled sandboxes to die")
            assert _holding(server) == set()
            # Each cancelled call is audited as such (written once its sandbox is gone).
            await _wait_for(lambda: _cancelled_holds(registry) == cancelled + 2, "two audited cancellations")

    anyio.run(body)


def _cancelled_holds(registry: Path) -> int:
    with Registry(registry, create=False) as reg:
        return sum(1 for e in reg.audit(event="call", tool="hold") if e.details.get("status") == "cancelled")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


# -- the list follows the registry --------------------------------------------------------


def test_a_version_verified_while_serving_is_announced_then_listed(connect: Opener, registry: Path) -> None:
    name = f"late_{os.getpid()}_{int(time.monotonic() * 1000)}"
    with Registry(registry, actor="setup") as reg:
        reg.add(LATE.replace("late", name), tests=[{"args": {"x": 1}, "expected": 2}])

    async def body() -> None:
        notes = Notes()
        async with connect(notes) as session:
            assert name not in {t.name for t in (await session.list_tools()).tools}
            with Registry(registry, actor="setup") as reg:
                await anyio.to_thread.run_sync(lambda: reg.verify(name))
            with anyio.fail_after(DEADLINE):
                await notes.list_changed.wait()
            assert name in {t.name for t in (await session.list_tools()).tools}
            # Yanked: announced again, and gone from the list.
            notes.list_changed = anyio.Event()
            with Registry(registry, actor="setup") as reg:
                reg.yank(name, "superseded")
            with anyio.fail_after(DEADLINE):
                await notes.list_changed.wait()
            assert name not in {t.name for t in (await session.list_tools()).tools}

    _run(body)


def test_a_2026_client_gets_the_change_on_its_listen_stream(registry: Path) -> None:
    """The SDK's `Client` negotiates the 2026-07-28 protocol (no handshake):
    identity comes per request, changes arrive on `subscriptions/listen`."""
    name = f"modern_{os.getpid()}_{int(time.monotonic() * 1000)}"
    with Registry(registry, actor="setup") as reg:
        reg.add(LATE.replace("late", name), tests=[{"args": {"x": 1}, "expected": 2}])
    env = {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}
    params = StdioServerParameters(command=TOOLCRIB, args=_serve_args(registry), env=env)

    async def body() -> None:
        with open(os.devnull, "w") as quiet:
            async with Client(stdio_client(params, errlog=quiet), client_info=CLIENT) as client:
                assert client.protocol_version == "2026-07-28"
                assert name not in {t.name for t in (await client.list_tools()).tools}
                assert (await client.call_tool("double", {"x": 3})).structured_content == {"result": 6}
                async with client.listen(tools_list_changed=True) as subscription:
                    with Registry(registry, actor="setup") as reg:
                        await anyio.to_thread.run_sync(lambda: reg.verify(name))
                    with anyio.fail_after(DEADLINE):
                        async for _event in subscription:
                            break
                assert name in {t.name for t in (await client.list_tools()).tools}

    anyio.run(body)
    with Registry(registry, create=False) as reg:
        assert reg.audit(event="call", tool="double")[-1].actor == "mcp:pytest-agent/7.1"


def test_tool_filter_serves_only_matching_names(registry: Path) -> None:
    async def body() -> None:
        async with stdio_session(registry, "--tool", "b*") as session:
            assert sorted(t.name for t in (await session.list_tools()).tools) == ["boom", "burn"]
            with pytest.raises(MCPError, match="unknown tool 'double'"):
                await session.call_tool("double", {"x": 1})

    _run(body)


# -- a tool-making agent -----------------------------------------------------------------------


def test_allow_add_registers_then_serves_only_once_verified(tmp_path: Path) -> None:
    """An added tool lives in the client's own namespace (``mcp-<id>_NAME``,
    tests/doors/test_doors.py shows no other client sees it)."""
    path = tmp_path / "agent.db"
    Registry(path, actor="setup").close()
    source = LATE.replace("late", "triple").replace("x + 1", "3 * x")
    added_name: list[str] = []

    async def body() -> None:
        notes = Notes()
        async with stdio_session(path, "--allow-add", notes=notes) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == {"add_tool", "verify_tool"}
            added = await session.call_tool(
                "add_tool", {"source": source, "tests": [{"args": {"x": 2}, "expected": 6}]}
            )
            assert not added.is_error, added.structured_content
            ref = added.structured_content["tool"]
            assert re.fullmatch(r"mcp-[0-9a-f]{12}_triple@1\.0\.0", ref), ref
            name = ref.split("@")[0]
            added_name.append(name)
            assert added.structured_content["status"] == "unverified"
            assert name not in {t.name for t in (await session.list_tools()).tools}
            with pytest.raises(MCPError, match="unknown tool"):
                await session.call_tool(name, {"x": 1})
            bad = await session.call_tool("add_tool", {"source": "def broken(:\n"})
            assert bad.is_error and _outcome(bad)["error"]["type"] == "AdmissionError"
            verified = await session.call_tool("verify_tool", {"ref": "triple"})  # its own triple
            assert not verified.is_error and verified.structured_content["status"] == "verified"
            # Verified, yet made over MCP: it waits for a reviewer and is not served.
            assert name not in {t.name for t in (await session.list_tools()).tools}
            with pytest.raises(MCPError, match="unknown tool"):
                await session.call_tool(name, {"x": 1})
            with Registry(path, actor="reviewer") as reg:
                assert [i.ref for i in reg.review_queue()] == [ref]
                assert approve_waiting(reg, tmp_path) == [ref]
            with anyio.fail_after(DEADLINE):
                await notes.list_changed.wait()
            assert name in {t.name for t in (await session.list_tools()).tools}
            assert (await session.call_tool(name, {"x": 5})).structured_content == {"result": 15}

    anyio.run(body)
    with Registry(path, create=False) as reg:
        tool = reg.get(added_name[0])
        assert tool.provenance.generator == "pytest-agent/7.1"
        assert tool.provenance.registered_by == "mcp:pytest-agent/7.1"
        assert [e.event for e in reg.audit(tool=added_name[0])][:3] == ["add", "verify", "review"]


def test_without_allow_add_there_is_no_add_tool(registry: Path) -> None:
    async def body() -> None:
        async with stdio_session(registry) as session:
            assert "add_tool" not in {t.name for t in (await session.list_tools()).tools}
            with pytest.raises(MCPError, match="unknown tool 'add_tool'"):
                await session.call_tool("add_tool", {"source": DOUBLE})

    anyio.run(body)


# -- binding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http", "0", "--host", "0.0.0.0"], "not a loopback address: pass --allow-remote"),
        (["--http", "0", "--host", "0.0.0.0", "--allow-remote"], "needs a bearer token"),
        (["--host", "0.0.0.0"], "apply to --http only"),
    ],
)
def test_non_loopback_bind_is_refused_without_flag_and_token(registry: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [TOOLCRIB, "--registry", str(registry), "serve", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=DEADLINE,
        env={**os.environ, "TOOLCRIB_SERVE_TOKEN": ""},
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_missing_registry_is_an_error_not_a_new_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [TOOLCRIB, "--registry", str(tmp_path / "none.db"), "serve"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=DEADLINE,
    )
    assert result.returncode == 3
    assert "no registry at" in result.stderr and not (tmp_path / "none.db").exists()


def test_http_token_is_required_when_set(registry: Path) -> None:
    # On loopback a token is optional; once given, every request must carry it.
    server = HttpServer(registry, "--token", "s3cret")
    try:
        refused = httpx2.post(
            server.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Accept": "application/json, text/event-stream"},
            timeout=DEADLINE,
        )
        assert refused.status_code == 401

        async def body() -> None:
            async with http_session(server.url, token="s3cret") as session:
                assert (await session.call_tool("double", {"x": 1})).structured_content == {"result": 2}

        anyio.run(body)
    finally:
        server.stop()
