"""Dependencies flow one way: cli -> registry -> sandbox -> sandbox/inside.
The sandbox never imports the registry or a door; the registry never imports
click or the CLI. The inside of the sandbox (what runs in the jail or the
container) imports only the standard library, RestrictedPython and its own
siblings: the host side may import from it, never the reverse. Read from the
source (every import statement, relative or absolute, wherever it stands), so
a new module cannot slip past."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# folder -> the packages (as toolcrib.* names, or third-party top-level names)
# its modules must never import.
FORBIDDEN = {
    "sandbox": {
        "toolcrib.registry",
        "toolcrib.cli",
        "toolcrib.latm",
        "toolcrib.mcp_server",
        "toolcrib.exports",
        "click",
        "sqlite_utils",
        "pydantic",
        "jsonschema",
    },
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
    # rglob: sandbox/inside/ is held to the sandbox's rules too (and to its own, below).
    for path in sorted((ROOT / folder).rglob("*.py")):
        package = ".".join((PACKAGE[folder], *path.parent.relative_to(ROOT / folder).parts))
        for name in _imports(path, package):
            for forbidden in FORBIDDEN[folder]:
                if name == forbidden or name.startswith(forbidden + "."):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_dependencies_flow_one_way(folder: str) -> None:
    assert _violations(folder) == []


# The inside: loaded in the zygote as a private package made from its folder
# and in the image as `tcbox`, with nothing else of toolcrib beside it (and no
# site-packages). So: the standard library, RestrictedPython, and each other.
INSIDE = ROOT / "sandbox" / "inside"
INSIDE_PACKAGE = "toolcrib.sandbox.inside"
INSIDE_MAY_IMPORT = frozenset(sys.stdlib_module_names) | {"RestrictedPython"}


def _inside_violations(path: Path) -> list[str]:
    """Every import in `path` (a module of sandbox/inside/) that is neither the
    standard library, RestrictedPython, nor a sibling reached relatively."""
    bad = []
    for name in sorted(_imports(path, INSIDE_PACKAGE)):
        top = name.split(".")[0]
        if name == INSIDE_PACKAGE or name.startswith(INSIDE_PACKAGE + "."):
            continue  # `from . import wire`, `from .policy import X`
        if top in INSIDE_MAY_IMPORT:
            continue
        bad.append(f"sandbox/inside/{path.name} imports {name}")
    return bad


def _inside_modules() -> list[Path]:
    return sorted(INSIDE.glob("*.py"))


def test_the_inside_imports_only_the_stdlib_restrictedpython_and_itself() -> None:
    assert [bad for path in _inside_modules() for bad in _inside_violations(path)] == []


def test_the_inside_holds_what_runs_in_the_jail_or_the_container() -> None:
    # The zygote loads its siblings from its own folder, and the image build
    # starts from harness and execute: all of these must stay in one folder.
    names = {path.stem for path in _inside_modules()}
    assert {
        "zygote",
        "jail",
        "wire",
        "harness",
        "execute",
        "policy",
        "transform",
        "guards",
        "toolbuiltins",
        "facades",
        "results",
        "preload",
        "uids",
    } <= names
    assert not (INSIDE.parent / "zygote.py").exists() and not (INSIDE.parent / "execute.py").exists()


def test_the_inside_check_sees_the_host_and_third_parties(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import json\nfrom RestrictedPython import compile_restricted\nfrom .policy import POLICY\n"
        "from . import wire\nfrom .. import contract\nfrom ..docker import DockerBackend\n"
        "import toolcrib.sandbox.contract\nimport numpy\n"
        "def late():\n    from ...registry import core\n"
    )
    assert _inside_violations(module) == [
        "sandbox/inside/m.py imports numpy",
        "sandbox/inside/m.py imports toolcrib.registry",  # from a function body too
        "sandbox/inside/m.py imports toolcrib.registry.core",
        "sandbox/inside/m.py imports toolcrib.sandbox",  # the host side, relatively ...
        "sandbox/inside/m.py imports toolcrib.sandbox.contract",  # ... or absolutely
        "sandbox/inside/m.py imports toolcrib.sandbox.docker",
        "sandbox/inside/m.py imports toolcrib.sandbox.docker.DockerBackend",
    ]


def test_the_check_sees_a_relative_import_upwards(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from ..registry import core\nfrom . import wire\n")
    names = _imports(module, "toolcrib.sandbox")
    assert "toolcrib.registry" in names and "toolcrib.registry.core" in names
    assert "toolcrib.sandbox.wire" in names
