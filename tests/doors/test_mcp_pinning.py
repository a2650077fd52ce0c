"""Pinned versions over MCP: how a tools/call names one version (`pinned_ref`),
and that a pin reaches only what the client is served (the SDK's `Client` in
this process, on a `FakeBackend`). test_mcp_clients.py calls pinned versions
from the TypeScript, fastmcp and Python clients over both transports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from toolcrib.registry.errors import InvalidInput
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry
from toolcrib.mcp_server import ServeOptions, ToolServer, pinned_ref

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("name", "meta", "expected"),
    [
        ("double", None, ("double", None)),
        ("double", {"progressToken": 3}, ("double", None)),
        ("double@1.2.0", None, ("double", "double@1.2.0")),
        ("double@sha256:abcd", None, ("double", "double@sha256:abcd")),
        ("double", {"toolcrib/sha256": SHA}, ("double", f"double@sha256:{SHA}")),
        ("double", {"fastmcp": {"version": "1.2.0"}}, ("double", "double@1.2.0")),
        ("double", {"fastmcp": {"version": {"eq": "1.2.0"}}}, ("double", "double@1.2.0")),
        ("double@1.2.0", {"fastmcp": {"version": "1.2.0"}}, ("double", "double@1.2.0")),
    ],
)
def test_a_call_names_one_version(name: str, meta: dict[str, Any] | None, expected: tuple[str, str | None]) -> None:
    assert pinned_ref(name, meta) == expected


@pytest.mark.parametrize(
    ("name", "meta", "message"),
    [
        ("double@", None, "use NAME@VERSION or NAME@sha256:PREFIX"),
        ("double@1.0 0", None, "use NAME@VERSION"),
        ("double@sha256:XYZ", None, "use NAME@VERSION"),
        ("double", {"toolcrib/sha256": "not hex"}, "lowercase hex sha256"),
        ("double", {"toolcrib/sha256": 12}, "lowercase hex sha256"),
        ("double", {"fastmcp": {"version": {"gte": "1.0.0"}}}, "one exact version"),
        ("double@1.0.0", {"fastmcp": {"version": "2.0.0"}}, "pinned more than one way"),
        ("double@1.0.0", {"toolcrib/sha256": SHA}, "pinned more than one way"),
    ],
)
def test_a_malformed_or_contradictory_pin_is_refused(name: str, meta: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        pinned_ref(name, meta)


DOUBLE = '''
def double(x: int) -> int:
    """Double x."""
    return 2 * x
'''


def test_a_pin_reaches_only_served_names(tmp_path: Path) -> None:
    fake = FakeBackend(lambda job: 2 * job.args["x"], name="restricted")
    path = tmp_path / "r.db"
    with Registry(path, actor="setup", backends={"restricted": fake}) as reg:
        for name in ("double", "hidden"):
            reg.add(DOUBLE.replace("double", name), tests=[{"args": {"x": 1}, "expected": 2}])
            reg.verify(name)
    server = ToolServer(ServeOptions(registry=path, tools=("double",)), backends={"restricted": fake})

    async def body() -> types.CallToolResult:
        try:
            async with Client(server.server) as client:
                # A name --tool does not serve stays unknown, pinned or not.
                with pytest.raises(MCPError, match="unknown tool 'hidden'"):
                    await client.call_tool("hidden@1.0.0", {"x": 1})
                listed = {t.name: t for t in (await client.list_tools()).tools}
                sha = (listed["double"].meta or {})["toolcrib/sha256"]
                pinned = await client.call_tool("double", {"x": 4}, meta={"toolcrib/sha256": sha})
                assert pinned.structured_content == {"result": 8}
                return await client.call_tool("double@x!", {"x": 4})
        finally:
            server.close()

    malformed = anyio.run(body)
    assert malformed.is_error and malformed.meta is not None
    assert malformed.meta["toolcrib/outcome"]["status"] == "invalid"
    text = malformed.content[0]
    assert isinstance(text, types.TextContent) and "use NAME@VERSION" in text.text
    assert json.loads(text.text[text.text.index("{") :])["tool"] == "double@x!"
