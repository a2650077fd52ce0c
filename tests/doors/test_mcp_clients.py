"""Clients nobody on the project wrote read every outcome of `toolcrib serve`:
the official TypeScript SDK's `Client` (what the MCP Inspector and most
agent stacks run), fastmcp's `Client` and the official Python SDK, over
stdio and streamable HTTP (with a bearer token).

The TypeScript client validates any ``structuredContent`` against the
listed ``outputSchema``: an error result that carried the `call --json`
object there made it throw -32602 instead of handing the error to the model.
Here each error (a raise, bad arguments, a limit, a refusal) must reach each
client as an ``isError`` result whose text says what happened.

The server runs on a `FakeBackend` (tests/doors/serve_on_fake.py): the door
is under test, not the sandbox (test_mcp_server.py keeps the real one). The
TypeScript SDK is installed by tests/run.sh (``npm ci`` in
tests/doors/ts_client); without node or that install these tests fail.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from fastmcp import Client as FastMCPClient
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from fastmcp.exceptions import ToolError
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from toolcrib import Registry

HERE = Path(__file__).parent
SERVE = str(HERE / "serve_on_fake.py")
TOKEN = "t0ken-for-tests"
DEADLINE = 120.0  # seconds; a hang guard only

sys.path.insert(0, str(HERE))
import ts_sdk  # noqa: E402
from mcp_servers import ServerProcess  # noqa: E402
from serve_on_fake import fake_backends  # noqa: E402

DOUBLE_1 = '''
def double(x: int) -> int:
    """Double a number (first version)."""
    return x + x
'''
DOUBLE_2 = '''
def double(x: int) -> int:
    """Double a number."""
    return 2 * x
'''
BOOM = '''
def boom(x: int) -> int:
    """Refuse negative numbers."""
    if x < 0:
        raise ValueError("negative")
    return x
'''
BURN = '''
def burn(n: int) -> int:
    """Count up to n (the fake server's sandbox hits the CPU limit past 1000)."""
    return sum(range(n))
'''


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """double 1.0.0 (yanked) and its successor, boom, burn: all verified on the fake."""
    path = tmp_path_factory.mktemp("clients") / "registry.db"
    with Registry(path, actor="setup", backends=fake_backends()) as reg:
        first = reg.add(DOUBLE_1, tests=[{"args": {"x": 2}, "expected": 4}]).tool
        assert reg.verify(first.ref).status == "verified"
        second = reg.add(DOUBLE_2, tests=[{"args": {"x": 2}, "expected": 4}]).tool
        reg.add(BOOM, tests=[{"args": {"x": 1}, "expected": 1}])
        reg.add(BURN, tests=[{"args": {"n": 3}, "expected": 3}])
        for ref in (second.ref, "boom", "burn"):
            assert reg.verify(ref).status == "verified"
        reg.yank(first.ref, "wrong for huge numbers")
    return {"path": path, "first": first, "second": second}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME", "LANG")}


class HttpServer(ServerProcess):
    """serve_on_fake.py over HTTP with a token, in a subprocess; its URL."""

    def __init__(self, registry: Path) -> None:
        super().__init__([sys.executable, SERVE, str(registry), "--http", TOKEN], env=_env())


@pytest.fixture(scope="module")
def http_server(registry: dict[str, Any]) -> Iterator[HttpServer]:
    server = HttpServer(registry["path"])
    yield server
    server.stop()


# The calls every client makes, and what each must come back as: an ok
# result, or an isError result whose text holds the words given.
def _calls(registry: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None, str | None]]:
    first, second = registry["first"], registry["second"]
    return [
        ("double", {"x": 21}, None, None),  # ok: 42
        ("boom", {"x": -1}, None, "ValueError: negative"),  # the tool raises
        ("double", {"x": "21", "y": 1}, None, "invalid"),  # bad arguments
        ("burn", {"n": 10**6}, None, "burn@1.0.0 hit the cpu limit"),  # a limit
        (first.ref, {"x": 1}, None, "is yanked (wrong for huge numbers)"),  # refused: a yanked pin
        (f"double@{second.version}", {"x": 5}, None, None),  # ok, pinned by name: 10
        ("double", {"x": 6}, {"toolcrib/sha256": second.sha256}, None),  # ok, pinned by _meta: 12
        ("double", {"x": 6}, {"toolcrib/sha256": first.sha256}, "is yanked"),  # refused, pinned by _meta
        ("double@9.9.9", {"x": 1}, None, "not_found"),  # an unknown version
    ]


OK_VALUES = {0: 42, 5: 10, 6: 12}
STATUSES = {1: "error", 2: "invalid", 3: "limit", 4: "refused", 7: "refused", 8: "not_found"}


def _check_error(index: int, text: str, meta: dict[str, Any] | None, expected: str) -> None:
    assert text.startswith("Error: "), text
    assert expected in text, text
    assert meta is not None and meta["toolcrib/outcome"]["status"] == STATUSES[index], meta
    assert json.loads(text[text.index("{") :]) == meta["toolcrib/outcome"]


# -- the TypeScript SDK ---------------------------------------------------------------------


@pytest.mark.parametrize("sdk", ["v1", "v2"])
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_typescript_sdk_reads_every_outcome(
    registry: dict[str, Any], transport: str, sdk: str, request: pytest.FixtureRequest
) -> None:
    """Both TypeScript SDKs: 1.x (@modelcontextprotocol/sdk) and 2.x
    (@modelcontextprotocol/client, under the MCP Inspector 2.x, whose
    output-schema check answered "data/result must be integer")."""
    calls = _calls(registry)
    job: dict[str, Any] = {"sdk": sdk, "calls": [{"name": n, "arguments": a, "meta": m} for n, a, m, _ in calls]}
    if transport == "stdio":
        job.update(transport="stdio", command=sys.executable, args=[SERVE, str(registry["path"])], env=_env())
    else:
        server: HttpServer = request.getfixturevalue("http_server")
        job.update(transport="http", url=server.url, token=TOKEN)
    report = ts_sdk.run(job)
    assert sorted(report["tools"]) == ["boom", "burn", "double"]
    for index, ((name, _args, _meta, expected), got) in enumerate(zip(calls, report["results"], strict=True)):
        # Never a thrown error (the SDK's -32602 "Structured content does not match").
        assert "error" not in got, (name, got)
        result = got["result"]
        if expected is None:
            assert not result.get("isError"), (name, result)
            assert result["structuredContent"] == {"result": OK_VALUES[index]}
            assert result["content"] == [{"type": "text", "text": str(OK_VALUES[index])}]
        else:
            assert result["isError"] is True, (name, result)
            assert "structuredContent" not in result, (name, result)
            [content] = result["content"]
            _check_error(index, content["text"], result.get("_meta"), expected)


def test_the_typescript_sdk_is_refused_without_the_token(http_server: HttpServer) -> None:
    report = ts_sdk.run({"transport": "http", "url": http_server.url}, allow_failure=True)
    assert "a valid bearer token is required" in report["failure"], report


# -- the official Python SDK ------------------------------------------------------------------


@asynccontextmanager
async def _python_session(transport: str, registry: Path, url: str | None) -> AsyncIterator[ClientSession]:
    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable, args=[SERVE, str(registry)], env=_env())
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    yield session
        return
    assert url is not None
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(DEADLINE)) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_python_sdk_reads_every_outcome(
    registry: dict[str, Any], transport: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("http_server").url if transport == "http" else None
    calls = _calls(registry)

    async def body() -> list[types.CallToolResult]:
        async with _python_session(transport, registry["path"], url) as session:
            await session.list_tools()
            return [await session.call_tool(n, a, meta=m) for n, a, m, _ in calls]

    results = anyio.run(body)
    for index, ((name, _args, _meta, expected), result) in enumerate(zip(calls, results, strict=True)):
        if expected is None:
            assert not result.is_error, (name, result)
            assert result.structured_content == {"result": OK_VALUES[index]}
        else:
            assert result.is_error and result.structured_content is None, (name, result)
            [content] = result.content
            assert isinstance(content, types.TextContent)
            _check_error(index, content.text, result.meta, expected)


# -- fastmcp's Client --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_fastmcp_gets_plain_values_and_tool_errors(
    registry: dict[str, Any], transport: str, request: pytest.FixtureRequest
) -> None:
    if transport == "stdio":
        link: Any = StdioTransport(command=sys.executable, args=[SERVE, str(registry["path"])], env=_env())
    else:
        url = request.getfixturevalue("http_server").url
        link = StreamableHttpTransport(url, headers={"Authorization": f"Bearer {TOKEN}"})
    calls = _calls(registry)

    async def body() -> list[Any]:
        got: list[Any] = []
        async with FastMCPClient(link) as client:
            for name, args, meta, expected in calls:
                if expected is None:
                    got.append((await client.call_tool(name, args, meta=meta)).data)
                else:
                    # fastmcp raises a tool's error as ToolError, with the result's text.
                    with pytest.raises(ToolError) as info:
                        await client.call_tool(name, args, meta=meta)
                    got.append(str(info.value))
                    result = await client.call_tool(name, args, meta=meta, raise_on_error=False)
                    assert result.is_error and result.data is None and result.structured_content is None
            # fastmcp's own way to pin: call_tool(version=...), sent as _meta {"fastmcp": {"version": ...}}.
            got.append((await client.call_tool("double", {"x": 7}, version=registry["second"].version)).data)
            with pytest.raises(ToolError, match="is yanked"):
                await client.call_tool("double", {"x": 7}, version=registry["first"].version)
        return got

    got = anyio.run(body)
    assert got.pop() == 14
    for index, ((_name, _args, _meta, expected), value) in enumerate(zip(calls, got, strict=True)):
        if expected is None:
            # The plain value, not fastmcp's wrapper model (Root(result=42)).
            assert value == OK_VALUES[index] and type(value) is int
        else:
            assert expected in value and value.startswith("Error: ")


# -- the real command, the real sandbox ----------------------------------------------------------

TOOLCRIB = str(Path(sys.executable).with_name("toolcrib"))


@pytest.mark.parametrize("sdk", ["v1", "v2"])
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_typescript_sdk_reads_toolcrib_serve_on_the_real_sandbox(transport: str, sdk: str, tmp_path: Path) -> None:
    """`toolcrib serve` itself (the CLI, the restricted backend): a result and a raise."""
    path = tmp_path / "real.db"
    with Registry(path, actor="setup") as reg:
        reg.add(DOUBLE_2, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.add(BOOM, tests=[{"args": {"x": 1}, "expected": 1}])
        for name in ("double", "boom"):
            assert reg.verify(name).status == "verified"
    calls = [
        {"name": "double", "arguments": {"x": 21}},
        {"name": "boom", "arguments": {"x": -1}},
        {"name": "double", "arguments": {"x": "21"}},
    ]
    server = None
    try:
        if transport == "stdio":
            job = {"transport": "stdio", "command": TOOLCRIB, "args": ["--registry", str(path), "serve"], "env": _env()}
        else:
            server = ServerProcess([TOOLCRIB, "--registry", str(path), "serve", "--http", "0", "--token", TOKEN])
            job = {"transport": "http", "url": server.url, "token": TOKEN}
        report = ts_sdk.run({**job, "sdk": sdk, "calls": calls})
    finally:
        if server is not None:
            server.stop()
    ok, raised, bad = (got["result"] for got in report["results"])
    assert ok["structuredContent"] == {"result": 42} and not ok.get("isError")
    assert raised["isError"] and "structuredContent" not in raised
    assert "ValueError: negative" in raised["content"][0]["text"]
    assert raised["_meta"]["toolcrib/outcome"]["backend"] == "restricted"
    assert bad["isError"] and bad["_meta"]["toolcrib/outcome"]["status"] == "invalid"
