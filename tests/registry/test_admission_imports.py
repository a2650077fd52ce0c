"""Admission reads what a tool needs from outside: modules that neither the
standard library nor its lock provide, and names nothing defines. Refused by
default (exit 2, naming the module or name and its line), a warning with
--allow-missing; no false refusals of valid tools."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.registry.admission import extract_python, find_missing
from toolcrib.registry.errors import AdmissionError

from toolcrib import Registry

ROOT = Path(__file__).resolve().parents[2]


def _names(source: str, **kw: object) -> list[tuple[str, str, int | None]]:
    return [(m.kind, m.name, m.line) for m in find_missing(source, **kw)]  # type: ignore[arg-type]


def test_a_module_outside_the_standard_library_is_reported_with_its_line() -> None:
    src = "import math\nimport pandas as pd\n\ndef f(x: int) -> int:\n    import numpy\n    return x\n"
    assert _names(src) == [("import", "pandas", 2), ("import", "numpy", 5)]


def test_the_lock_provides_modules() -> None:
    src = "import pandas as pd\nfrom numpy import array\n\ndef f(x: int) -> int:\n    return x\n"
    assert _names(src, provided=["pandas", "numpy"]) == []
    assert _names(src, provided=["pandas"]) == [("import", "numpy", 2)]


def test_guarded_imports_are_not_counted() -> None:
    src = (
        "from typing import TYPE_CHECKING\n"
        "try:\n    import numpy as np\nexcept ImportError:\n    np = None\n"
        "if TYPE_CHECKING:\n    import pandas\n\n"
        "def f(x: int) -> int:\n    return x\n"
    )
    assert _names(src) == []


def test_relative_imports_are_missing() -> None:
    assert _names("from . import helpers\n\ndef f() -> int:\n    return 1\n") == [("import", ".", 1)]


def test_undefined_names_are_reported() -> None:
    src = "def f(x: float) -> float:\n    return sqrt(x) + pd.nan\n"
    assert _names(src) == [("name", "pd", 2), ("name", "sqrt", 2)]


VALID_SCOPES = '''
import math
from functools import reduce as fold
LIMIT = 10
counter = 0

class Shape:
    sides = 4
    doubled = sides * 2
    def area(self, k: int) -> int:
        return self.sides * k

def helper(n: int) -> int:
    global counter
    counter += 1
    total = 0
    for i in range(n):
        total += i
    squares = [j * j for j in range(n) if j % 2]
    pairs = {a: b for a, b in zip("ab", "cd")}
    gen = sum(x for x in squares)
    lam = lambda y, *rest, **kw: y + len(rest) + len(kw)
    with open.__class__ if False else memoryview(b"") as view:
        pass
    try:
        pass
    except ValueError as err:
        print(err)
    def inner() -> int:
        nonlocal total
        total += 1
        return total + LIMIT
    match n:
        case [first, *others]:
            return first
        case {"k": value}:
            return value
    if (found := n) > 3:
        return found
    return fold(lambda a, b: a + b, [total, inner(), gen, lam(1), math.floor(1.5), len(pairs), Shape().area(2)])

def late() -> int:
    return later_global

def setter() -> None:
    global later_global
    later_global = 1

def f(n: int) -> int:
    """Entrypoint."""
    return helper(n) + __name__.count("x") + len(__doc__ or "")
'''


def test_nested_scopes_comprehensions_classes_and_globals_are_not_refused() -> None:
    assert _names(VALID_SCOPES) == []


def test_a_class_attribute_read_from_a_method_is_a_real_name_error() -> None:
    src = "class C:\n    k = 1\n    def m(self) -> int:\n        return k\n\ndef f() -> int:\n    return C().m()\n"
    assert _names(src) == [("name", "k", 4)]


def test_the_prelude_binds_names_and_is_checked_itself() -> None:
    tool = "def f(x: float) -> float:\n    return sqrt(x) * pi\n"
    assert _names(tool, prelude="from math import sqrt, pi\n") == []
    assert _names(tool, prelude="import pandas as pd\nfrom math import sqrt\n") == [
        ("import", "pandas", 1),
        ("name", "pi", 2),
    ]
    assert [m.where for m in find_missing(tool, prelude="import pandas as pd\nfrom math import sqrt\n")] == [
        "prelude",
        "tool",
    ]


def test_a_star_import_may_bind_any_name() -> None:
    tool = "def f(x: str) -> str:\n    return str(simplify(x))\n"
    assert _names(tool, prelude="from sympy import *\n", provided=["sympy"]) == []
    assert _names(tool, prelude="from sympy import *\n") == [("import", "sympy", 1)]


def test_future_annotations_are_not_evaluated() -> None:
    src = "from __future__ import annotations\n\ndef f(x: int) -> np.ndarray:\n    return x\n"
    assert _names(src) == []
    assert _names(src.replace("from __future__ import annotations\n", "")) == [("name", "np", 2)]


def _tool_sources() -> list[tuple[str, str]]:
    """The examples and the LATM-style tools of tests/doors/test_latm_style.py."""
    found = []
    for path in sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "examples").glob("*.md")):
        text = path.read_text()
        if "def " in text and path.name != "alpha_umi.py":  # alpha_umi.py is a program, not a tool
            found.append((path.name, extract_python(text)[0] if path.suffix == ".md" else text))
    tree = ast.parse((ROOT / "tests" / "doors" / "test_latm_style.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and "def " in node.value.value
        ):
            found.append((f"test_latm_style.{node.targets[0].id}", node.value.value))  # type: ignore[attr-defined]
    return found


@pytest.mark.parametrize(("label", "source"), _tool_sources(), ids=[label for label, _ in _tool_sources()])
def test_no_false_refusals_on_the_examples_and_latm_style_tools(label: str, source: str) -> None:
    assert find_missing(source) == [], label


def test_registry_refuses_by_default_and_allows_with_a_note(tmp_path: Path) -> None:
    src = "import pandas as pd\n\ndef rows(n: int) -> int:\n    return len(pd.DataFrame({'a': list(range(n))}))\n"
    with Registry(tmp_path / "r.db", actor="t") as reg:
        with pytest.raises(AdmissionError, match=r"tool line 1: module 'pandas' is neither in the standard library"):
            reg.add(src)
        assert reg.list() == []
        added = reg.add(src, allow_missing=True)
        assert any("module 'pandas'" in n for n in added.notes)
        entry = reg.audit(event="add")[-1]
        assert entry.details["missing"] and "pandas" in entry.details["missing"][0]


def test_cli_refusal_is_one_line_exit_2_and_allow_missing_warns(tmp_path: Path) -> None:
    tool = tmp_path / "t.py"
    tool.write_text("def area(r: float) -> float:\n    return pi * r * r\n")
    runner = CliRunner()
    args = ["--registry", str(tmp_path / "r.db"), "add", str(tool)]
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1
    assert "line 2: name 'pi' is used but never defined" in refused.output and "--allow-missing" in refused.output
    allowed = runner.invoke(cli, [*args, "--allow-missing", "--json"])
    assert allowed.exit_code == 0, allowed.output
    assert any("'pi'" in n for n in json.loads(allowed.stdout)["notes"])
