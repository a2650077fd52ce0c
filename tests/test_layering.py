"""Dependencies flow one way: cli -> registry -> sandbox. The sandbox never
imports the registry or a door; the registry never imports click or the CLI.
Read from the source (every import statement, relative or absolute), so a
new module cannot slip past."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# folder -> the packages (as toolcrib.* names, or third-party top-level names)
# its modules must never import.
FORBIDDEN = {
    "sandbox": {"toolcrib.registry", "toolcrib.cli", "toolcrib.latm", "toolcrib.mcp_server", "toolcrib.exports",
                "click", "sqlite_utils", "pydantic", "jsonschema"},
    "registry": {"toolcrib.cli", "toolcrib.latm", "toolcrib.mcp_server", "click"},
}
# What each folder is called once installed (pyproject's package-dir).
PACKAGE = {"sandbox": "toolcrib.sandbox", "registry": "toolcrib.registry"}


def _imports(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _violations(folder: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).glob("*.py")):
        for name in _imports(path, PACKAGE[folder]):
            for forbidden in FORBIDDEN[folder]:
                if name == forbidden or name.startswith(forbidden + "."):
                    bad.append(f"{folder}/{path.name} imports {name}")
    return bad


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_dependencies_flow_one_way(folder: str) -> None:
    assert _violations(folder) == []


def test_the_check_sees_a_relative_import_upwards(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from ..registry import core\nfrom . import wire\n")
    names = _imports(module, "toolcrib.sandbox")
    assert "toolcrib.registry" in names and "toolcrib.registry.core" in names
    assert "toolcrib.sandbox.wire" in names
