"""server.json, toolcrib's entry for the public MCP registry, meets what the
registry documents (the server.json schema of 2025-12-11 and the official
registry's requirements, written down here as checks), names this package
and version, carries the ownership marker PyPI packages need (an
``mcp-name:`` line in the README, the package's long description), and
starts a working server when a client runs it as the entry says."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

import toolcrib
from toolcrib import Registry

ROOT = Path(__file__).parents[2]
SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
# The schema's name pattern, with the namespace in reverse-DNS form (labels of letters, digits, hyphens).
NAME = re.compile(r"(?P<namespace>[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)+)/[a-zA-Z0-9._-]+")
RANGE = re.compile(r"[\^~<>=*x|]|^latest$|\s-\s")


@pytest.fixture(scope="module")
def entry() -> dict[str, Any]:
    data = json.loads((ROOT / "server.json").read_text())
    assert isinstance(data, dict)
    return data


def test_the_entry_meets_the_registry_rules(entry: dict[str, Any]) -> None:
    assert entry["$schema"] == SCHEMA
    assert NAME.fullmatch(entry["name"]) and 3 <= len(entry["name"]) <= 200
    assert 1 <= len(entry["description"]) <= 100
    assert set(entry) <= {"$schema", "name", "title", "description", "version", "packages", "repository", "websiteUrl"}
    [package] = entry["packages"]
    assert set(package) <= {
        "registryType",
        "registryBaseUrl",
        "identifier",
        "version",
        "fileSha256",
        "runtimeHint",
        "transport",
        "runtimeArguments",
        "packageArguments",
        "environmentVariables",
    }
    assert package["registryType"] == "pypi" and package["registryBaseUrl"] == "https://pypi.org"
    assert package["transport"] == {"type": "stdio"}
    for version in (entry["version"], package["version"]):
        assert not RANGE.search(version), version
    for argument in package["packageArguments"]:
        assert argument["type"] in ("named", "positional")
        if argument["type"] == "named":
            assert argument["name"].startswith("--")
        else:
            assert "value" in argument or "valueHint" in argument
    for variable in package["environmentVariables"]:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", variable["name"])


def test_the_entry_names_this_package_and_version(entry: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [package] = entry["packages"]
    assert package["identifier"] == project["name"]
    assert entry["version"] == package["version"] == toolcrib.__version__
    assert project["readme"] == "README.md"  # what PyPI shows, where the registry looks for the marker
    markers = re.findall(r"mcp-name:\s*(\S+)", (ROOT / "README.md").read_text())
    assert markers == [entry["name"]]


def test_a_client_running_the_entry_gets_a_server(entry: dict[str, Any], tmp_path: Path) -> None:
    """The command line a client builds from packageArguments (named: flag
    and value, positional: the value) starts `toolcrib serve` on stdio."""
    registry = tmp_path / "r.db"
    Registry(registry, actor="setup").close()
    [package] = entry["packages"]
    argv: list[str] = []
    for argument in package["packageArguments"]:
        if argument["type"] == "named":
            argv += [argument["name"], str(registry)]
        else:
            argv.append(argument["value"])
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME")}
    for variable in package["environmentVariables"]:
        env[variable["name"]] = variable["default"]
    params = StdioServerParameters(command=str(Path(sys.executable).with_name("toolcrib")), args=argv, env=env)

    async def body() -> tuple[str, list[Any]]:
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                async with ClientSession(read, write) as session:
                    started = await session.initialize()
                    return started.server_info.name, (await session.list_tools()).tools

    name, tools = anyio.run(body)
    assert name == "toolcrib" and tools == []
