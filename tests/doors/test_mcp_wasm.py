"""`toolcrib serve --backend wasm`: a real server subprocess and the `mcp`
SDK's own client over stdio, every call on the wasm backend (announced in
each tool's _meta, limits as on the others, audited with the backend)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from toolcrib import Limits, Registry

TOOLCRIB = str(Path(sys.executable).with_name("toolcrib"))
CLIENT = types.Implementation(name="pytest-agent", version="7.1")

DOUBLE = '''
def double(x: int) -> int:
    """Double a number."""
    return 2 * x
'''
BURN = '''
def burn(n: int) -> int:
    """Count up to n."""
    total = 0
    for i in range(n):
        total += i
    return total
'''


# Installed and compiled, or skipped (failed under CI): tests/conftest.py.
pytestmark = pytest.mark.usefixtures("wasm_ready")


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.db"
    with Registry(path, actor="setup") as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.add(BURN, tests=[{"args": {"n": 3}, "expected": 3}], limits=Limits(cpu=1, wall=30))
        for name in ("double", "burn"):
            assert reg.verify(name, backend="wasm").status == "verified"
    return path


@asynccontextmanager
async def wasm_session(registry: Path) -> AsyncIterator[ClientSession]:
    env = {"TOOLCRIB_ACTOR": "operator", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    args = ["--registry", str(registry), "serve", "--backend", "wasm"]
    params = StdioServerParameters(command=TOOLCRIB, args=args, env=env)
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write):
            async with ClientSession(read, write, client_info=CLIENT) as session:
                await session.initialize()
                yield session


def test_the_mcp_server_serves_and_calls_on_the_wasm_backend(registry: Path) -> None:
    async def body() -> None:
        async with wasm_session(registry) as session:
            listed = {t.name: t for t in (await session.list_tools()).tools}
            ok = await session.call_tool("double", {"x": 21})
            limited = await session.call_tool("burn", {"n": 10**15})
        assert sorted(listed) == ["burn", "double"]
        assert listed["double"].meta is not None and listed["double"].meta["toolcrib/backend"] == "wasm"
        assert not ok.is_error and ok.structured_content == {"result": 42}
        assert limited.is_error and limited.meta is not None
        outcome = limited.meta["toolcrib/outcome"]
        assert (outcome["status"], outcome["limit"], outcome["backend"]) == ("limit", "cpu", "wasm")

    anyio.run(body)
    with Registry(registry, create=False) as reg:
        calls = reg.audit(event="call")
    assert [(e.details["backend"], e.details["status"]) for e in calls] == [("wasm", "ok"), ("wasm", "limit")]
