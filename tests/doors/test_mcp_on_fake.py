"""The MCP door on a `FakeBackend`: what `ToolServer` lists, passes to the
sandbox, answers and audits, with the SDK's own `Client` connected in this
process (no subprocess, no zygote).

The sandbox is not what is under test here: `test_mcp_server.py` keeps the
real server subprocess on the real backend (stdio and HTTP, concurrency,
cancellation, limits). These tests pin the door's own work: that it sends the
stored source and the validated arguments, never reaches the backend for a
refused call, turns the backend's outcomes into results, and names the
client in the audit log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from toolcrib.sandbox.contract import Job
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry
from toolcrib.mcp_server import ServeOptions, ToolServer

CLIENT = types.Implementation(name="fake-agent", version="2.0")

DOUBLE = '''
def double(x: int) -> int:
    """Double x."""
    return 2 * x
'''

PENDING = '''
def pending(x: int) -> int:
    """Never verified."""
    return x
'''


def _answer(job: Job) -> Any:
    """The fake's sandbox: doubles, except that x == 13 raises in the tool."""
    if job.args.get("x") == 13:
        raise ValueError("unlucky")
    return 2 * job.args["x"]


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend(_answer, name="restricted")


@pytest.fixture
def served(tmp_path: Path, fake: FakeBackend) -> Path:
    path = tmp_path / "r.db"
    with Registry(path, actor="setup", backends={"restricted": fake}) as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.verify("double")
        reg.add(PENDING, tests=[{"args": {"x": 1}, "expected": 1}])
    fake.jobs.clear()
    return path


def _serve(path: Path, fake: FakeBackend, **options: Any) -> ToolServer:
    return ToolServer(ServeOptions(registry=path, **options), backends={"restricted": fake})


def _run(server: ToolServer, body: Any) -> Any:
    async def main() -> Any:
        try:
            async with Client(server.server, client_info=CLIENT) as client:
                return await body(client)
        finally:
            server.close()

    return anyio.run(main)


def _refusal(result: types.CallToolResult) -> dict[str, Any]:
    """The refusal JSON a failed call carries in its text (every client reads text)."""
    assert result.is_error
    text = result.content[0]
    assert isinstance(text, types.TextContent)
    data = json.loads(text.text[text.text.index("{") :])
    assert isinstance(data, dict)
    return data


def test_lists_only_verified_versions_with_their_stored_schema(served: Path, fake: FakeBackend) -> None:
    async def body(client: Client) -> list[types.Tool]:
        return list((await client.list_tools()).tools)

    tools = _run(_serve(served, fake), body)
    assert [t.name for t in tools] == ["double"]
    with Registry(served, create=False) as reg:
        stored = reg.get("double")
    assert tools[0].input_schema == stored.signature.input_schema
    assert tools[0].meta is not None and tools[0].meta["toolcrib/sha256"] == stored.sha256
    assert fake.jobs == []  # listing never reaches the sandbox


def test_a_call_sends_the_stored_source_and_arguments_and_is_audited(served: Path, fake: FakeBackend) -> None:
    async def body(client: Client) -> types.CallToolResult:
        return await client.call_tool("double", {"x": 21})

    result = _run(_serve(served, fake), body)
    assert not result.is_error
    assert result.structured_content == {"result": 42}
    with Registry(served, create=False) as reg:
        stored = reg.get("double")
        calls = reg.audit(event="call", tool="double")
    assert len(fake.jobs) == 1
    job = fake.jobs[0]
    assert job.source == stored.source and job.entrypoint == "double" and job.args == {"x": 21}
    assert [c.actor for c in calls] == ["mcp:fake-agent/2.0"]


def test_a_tool_that_raises_is_an_error_result_with_the_type(served: Path, fake: FakeBackend) -> None:
    async def body(client: Client) -> types.CallToolResult:
        return await client.call_tool("double", {"x": 13})

    data = _refusal(_run(_serve(served, fake), body))
    assert data["status"] == "error" and data["error"]["type"] == "ValueError"
    assert data["tool"] == "double@1.0.0"


def test_bad_arguments_are_refused_before_the_sandbox(served: Path, fake: FakeBackend) -> None:
    async def body(client: Client) -> types.CallToolResult:
        return await client.call_tool("double", {"x": "21", "y": 1})

    data = _refusal(_run(_serve(served, fake), body))
    assert data["status"] == "invalid"
    assert data["fields"] == {"x": "'21' is not of type 'integer'", "y": "unexpected argument"}
    assert fake.jobs == []


def test_an_unverified_or_unknown_tool_is_not_callable(served: Path, fake: FakeBackend) -> None:
    async def body(client: Client) -> None:
        for name in ("pending", "nothing_here"):
            with pytest.raises(MCPError, match=f"unknown tool '{name}'"):
                await client.call_tool(name, {"x": 1})

    _run(_serve(served, fake), body)
    assert fake.jobs == []


def test_allow_add_adds_in_the_clients_namespace_and_verifies_on_the_backend(tmp_path: Path, fake: FakeBackend) -> None:
    path = tmp_path / "agent.db"
    with Registry(path, actor="setup") as setup:
        setup.set_review("none")  # the injected backend is the point here; review: test_mcp_server
    triple = DOUBLE.replace("double", "triple").replace("2 * x", "3 * x")
    fake.handler = lambda job: 3 * job.args["x"]

    async def body(client: Client) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
        added = await client.call_tool("add_tool", {"source": triple, "tests": [{"args": {"x": 2}, "expected": 6}]})
        verified = await client.call_tool("verify_tool", {"ref": "triple"})
        names = {t.name for t in (await client.list_tools()).tools}
        assert added.structured_content is not None and verified.structured_content is not None
        return added.structured_content, verified.structured_content, names

    added, verified, names = _run(_serve(path, fake, allow_add=True), body)
    ref = added["tool"]
    assert re.fullmatch(r"mcp-[0-9a-f]{12}_triple@1\.0\.0", ref), ref
    assert added["status"] == "unverified" and verified["status"] == "verified"
    assert ref.split("@")[0] in names
    # The verification's one case ran on the injected backend, with the stored test's arguments.
    assert [job.args for job in fake.jobs] == [{"x": 2}]
    with Registry(path, create=False) as reg:
        assert reg.get(ref).provenance.registered_by == "mcp:fake-agent/2.0"
