"""The registry's structure, measured from the source (as test_layering.py
measures imports): every SQL statement lives in the store, and registry/ has
no import circle.

Read with `ast`, not regex over the text, so a comment or docstring that
mentions SQL is not a statement, and an f-string, an implicitly joined string
or a string built in a variable is still seen.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from toolcrib.registry import InvalidInput, Registry

ROOT = Path(__file__).resolve().parents[2]
# Every folder of the installed package (pyproject's package-dir).
FOLDERS = ("registry", "sandbox", "cli", "toolcrib")

# The storage room: registry/store.py and the registry/store_*.py modules.
# registry/migrations.py may hold SQL too, on purpose: a migration is a
# frozen step of the schema's history (its DDL, and the backfills that step
# needed, written against the tables as they were then), so it must not go
# through the store's functions, which follow the current schema.
STORE = re.compile(r"^registry/(store(_\w+)?|migrations)\.py$")

# A string constant that starts like an SQL statement (upper case, as the
# code base writes SQL; prose starts "Select ..." or "Update ...").
SQL_TEXT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|WITH|ALTER|DROP|REPLACE)\b")
# sqlite-utils writes a table without any SQL text: db.table("x").insert(...),
# db["x"].upsert(...). Any call of these on a table is storage.
TABLE_WRITES = {
    "insert",
    "insert_all",
    "upsert",
    "upsert_all",
    "update",
    "delete",
    "delete_where",
    "lookup",
    "create",
    "transform",
    "add_column",
    "create_index",
    "enable_fts",
    "drop",
}
# Running SQL at all: whatever the statement is (even one built elsewhere).
RUNS_SQL = {"execute", "executemany", "executescript", "query", "rows_where"}


def _modules() -> list[Path]:
    found = []
    for folder in FOLDERS:
        found += [p for p in sorted((ROOT / folder).rglob("*.py")) if "__pycache__" not in p.parts]
    return found


def _is_table(node: ast.expr) -> bool:
    """`db.table("x")` or `db["x"]`: a sqlite-utils table."""
    if isinstance(node, ast.Subscript):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "table"


def storage_outside_the_store(source: str, name: str) -> list[str]:
    """Where `source` (the module `name`) holds SQL text, runs SQL, or writes
    a sqlite-utils table: one line per finding."""
    tree = ast.parse(source, name)
    found = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            text = str(node.values[0].value)
        if text is not None and SQL_TEXT.match(text):
            found.append(f"{name}:{node.lineno}: SQL text {text.strip()[:40]!r}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr in RUNS_SQL and not (attr == "query" and not node.args):
                found.append(f"{name}:{node.lineno}: runs SQL (.{attr})")
            elif attr in TABLE_WRITES and _is_table(node.func.value):
                found.append(f"{name}:{node.lineno}: writes a table (.{attr})")
    # A JoinedStr's first part is a Constant too: count each line once.
    return sorted(set(found))


def test_every_sql_statement_lives_in_the_store() -> None:
    bad = []
    for path in _modules():
        name = path.relative_to(ROOT).as_posix()
        if STORE.match(name):
            continue
        bad += storage_outside_the_store(path.read_text(encoding="utf-8"), name)
    assert bad == []


@pytest.mark.parametrize(
    "snippet",
    [
        'db.execute("SELECT 1")',
        'x = f"UPDATE versions SET {c} = ?"',
        'x = ("SELECT a "\n     "FROM b")',
        'db.table("versions").insert({})',
        'db["settings"].upsert({}, pk="key")',
        "conn.execute(sql)",
        'q = "  WITH t AS (SELECT 1) SELECT * FROM t"',
    ],
)
def test_the_check_sees_each_kind_of_storage(snippet: str) -> None:
    assert storage_outside_the_store(snippet, "m.py") != []


@pytest.mark.parametrize(
    "snippet",
    [
        '"""Select the newest version; update the index."""',
        "# SELECT * FROM versions",
        'items.update({"a": 1})',
        "parser.query",
        'x = "Selected"',
    ],
)
def test_the_check_leaves_prose_and_dicts_alone(snippet: str) -> None:
    assert storage_outside_the_store(snippet, "m.py") == []


# -- no door holds the registry's connection -------------------------------------

# The doors (cli/, toolcrib/: the MCP server, LATM, exports) ask `Registry`
# (or a `Caller` it or the store hands them); reading `reg.db` or `x.conn`
# would let a door run its own statements on the connection, past the
# facade's transactions and audit entries.
DOORS = ("cli", "toolcrib")
CONNECTION_ATTRIBUTES = {"db", "conn"}


def connection_reads(source: str, name: str) -> list[str]:
    """Where `source` reads an attribute named `db` or `conn` of anything."""
    return sorted(
        f"{name}:{node.lineno}: .{node.attr}"
        for node in ast.walk(ast.parse(source, name))
        if isinstance(node, ast.Attribute) and node.attr in CONNECTION_ATTRIBUTES
    )


def test_no_door_reads_the_registrys_connection() -> None:
    bad = []
    for folder in DOORS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            bad += connection_reads(path.read_text(encoding="utf-8"), name)
    assert bad == []


@pytest.mark.parametrize("snippet", ["reg.db.conn", "Caller(reg.db, actor=a)", "state.reg.conn.close()"])
def test_the_connection_check_sees_each_reach(snippet: str) -> None:
    assert connection_reads(snippet, "m.py") != []


@pytest.mark.parametrize("snippet", ["conn = connect(path)", "conn.close()", "reg.dbname", '"reg.db.conn"'])
def test_the_connection_check_leaves_names_and_text_alone(snippet: str) -> None:
    assert connection_reads(snippet, "m.py") == []


# -- no import circle in registry/ ---------------------------------------------


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run (or, under `if TYPE_CHECKING:`, type-checked) when the
    module loads: module-level statements and those nested in if/try blocks.
    An import inside a function runs only when it is called (a lazy import):
    not an edge."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
    return found


def import_graph(folder: Path) -> dict[str, set[str]]:
    """module -> the modules of `folder` (one package) it imports at module level."""
    modules = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _module_level_imports(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    head = node.module.split(".")[0]
                    if head in modules:
                        edges.add(head)
                else:  # from . import x
                    edges |= {a.name for a in node.names if a.name in modules} or {"__init__"}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("toolcrib.registry."):
                head = node.module.split(".")[2]
                if head in modules:
                    edges.add(head)
        edges.discard(path.stem)
        graph[path.stem] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each module on one (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_registry_has_no_import_circle() -> None:
    graph = import_graph(ROOT / "registry")
    assert "core" in graph and graph["core"]  # the check reads the real package
    assert cycles(graph) == []


def test_the_check_finds_a_circle_through_type_checking(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import y\n")
    (tmp_path / "c.py").write_text("from . import a\n")
    (tmp_path / "d.py").write_text("def f():\n    from .a import z\n")  # lazy: no edge
    (tmp_path / "__init__.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["d"] == set()
    assert cycles(graph) != []


# -- the questions the doors ask the Registry instead of the file ----------------

_DOUBLE = "def double(x: int) -> int:\n    return x * 2\n"
_DOUBLE_TESTS = [{"args": {"x": 2}, "expected": 4}]


def test_servable_is_the_highest_verified_live_version_of_each_name(reg: Registry) -> None:
    reg.add(_DOUBLE, tests=_DOUBLE_TESTS)
    reg.verify("double")
    reg.add(_DOUBLE.replace("x * 2", "x + x"), tests=_DOUBLE_TESTS)  # 1.0.1, never verified
    reg.add("def never(x: int) -> int:\n    return x\n")  # nothing verified: not served
    assert reg.servable() == [("double", "1.0.0", reg.get("double@1.0.0").sha256)]
    reg.verify("double@1.0.1")
    assert [v for _n, v, _s in reg.servable()] == ["1.0.1"]
    reg.deprecate("double@1.0.1", "use 1.0.0")
    assert [v for _n, v, _s in reg.servable()] == ["1.0.0"]
    reg.yank("double@1.0.0", "bad")
    assert reg.servable() == []
    assert reg.has_tool("double") and reg.has_tool("never") and not reg.has_tool("nothing")


def test_a_setting_is_stored_cleared_and_audited(reg: Registry) -> None:
    assert reg.setting("latm.model") is None
    reg.set_setting("latm.model", "m1")
    assert reg.setting("latm.model") == "m1"
    reg.set_setting("latm.model", None)
    assert reg.setting("latm.model") is None
    with pytest.raises(InvalidInput):
        reg.set_setting("latm.model", "  ")
    entries = reg.audit(event="setting")
    assert [e.details for e in entries] == [{"key": "latm.model", "value": "m1"}, {"key": "latm.model", "value": None}]
    assert reg.audit_verify().ok


def test_pending_is_every_unverified_live_version_by_name_then_version(reg: Registry) -> None:
    reg.add(_DOUBLE, tests=_DOUBLE_TESTS)
    reg.add(_DOUBLE.replace("x * 2", "x + x"), tests=_DOUBLE_TESTS)
    reg.add(_DOUBLE.replace("x * 2", "2 * x"), tests=_DOUBLE_TESTS, version="1.0.10")
    reg.add("def ax(x: int) -> int:\n    return x\n", tests=[{"args": {"x": 1}, "expected": 1}])
    reg.verify("double@1.0.0")
    reg.yank("double@1.0.1", "bad")
    assert [t.ref for t in reg.pending()] == ["ax@1.0.0", "double@1.0.10"]
