"""The restricted policy: its data, each guard and builtin (legitimate use
works, the nasty path is refused), and the compile-time rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from attacks.child import run_in_child
from toolcrib.sandbox.inside import execute, guards
from toolcrib.sandbox.inside.guards import (
    STATE,
    PolicyViolation,
    guarded_getattr,
    guarded_hasattr,
    inplacevar,
    write_guard,
)
from toolcrib.sandbox.inside.policy import (
    ALLOWED_BUILTINS,
    ALLOWED_EXCEPTIONS,
    ALLOWED_MODULES,
    POLICY,
    REFUSED_CONSTRUCTS,
)
from toolcrib.sandbox.inside.toolbuiltins import build_builtins

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def call(source: str, entrypoint: str = "run", **args: Any) -> dict[str, Any]:
    """Run legitimate code in this process (hostile code goes to run_in_child)."""
    job = {"source": source, "entrypoint": entrypoint, "mode": "args", "args": args, "limits": {"output": 64}}
    return json.loads(execute.run_job(job))


def ok(source: str, **args: Any) -> Any:
    reply = call(source, **args)
    assert reply["status"] == "ok", reply
    return reply["result"]


def blocked(source: str) -> str:
    reply = run_in_child({"source": source})
    assert reply["status"] == "blocked", reply
    assert reply["error"]["type"] == "PolicyViolation"
    return reply["error"]["message"]


# Tool code runs in this process: each test starts and ends with fresh guard state.
pytestmark = pytest.mark.usefixtures("fresh_guard_state")


# ---------------------------------------------------------------- the data


def test_policy_structure_is_complete() -> None:
    assert POLICY.builtins is ALLOWED_BUILTINS and POLICY.modules is ALLOWED_MODULES
    assert all(why.strip() for why in ALLOWED_BUILTINS.values())
    assert all(rule.why.strip() and rule.names for rule in ALLOWED_MODULES.values())
    assert all(why.strip() for why in REFUSED_CONSTRUCTS.values())
    assert set(ALLOWED_MODULES) >= {
        "math",
        "itertools",
        "functools",
        "collections",
        "heapq",
        "bisect",
        "fractions",
        "decimal",
        "statistics",
        "random",
        "string",
        "re",
        "json",
        "datetime",
        "typing",
    }


def test_builtins_table_matches_the_data() -> None:
    table = build_builtins(lambda *a, **k: None)
    for name in ALLOWED_BUILTINS:
        if name != "print":  # compiled to the _print_ collector
            assert name in table, name
    for name in ALLOWED_EXCEPTIONS:
        assert isinstance(table[name], type) and issubclass(table[name], BaseException)
    for withheld in (
        "open",
        "eval",
        "exec",
        "compile",
        "globals",
        "locals",
        "vars",
        "dir",
        "input",
        "breakpoint",
        "memoryview",
        "help",
        "exit",
        "quit",
    ):
        assert withheld not in table, withheld
    # The guarded versions, never the real ones.
    import builtins

    for guarded in (
        "getattr",
        "hasattr",
        "setattr",
        "delattr",
        "type",
        "sorted",
        "zip",
        "map",
        "filter",
        "enumerate",
        "reversed",
        "min",
        "max",
        "sum",
        "any",
        "all",
        "iter",
        "issubclass",
    ):
        assert table[guarded] is not getattr(builtins, guarded), guarded


def test_no_offered_name_is_a_control_exception_base_or_memory_error() -> None:
    table = build_builtins(lambda *a, **k: None)
    assert table["BaseException"] is Exception
    assert "MemoryError" not in table and "KeyboardInterrupt" not in table and "SystemExit" not in table
    offered = [v for v in table.values() if isinstance(v, type) and issubclass(v, BaseException)]
    for control in (guards.PolicyViolation, guards.OutputLimit):  # no handler a tool can write matches them
        assert not any(issubclass(control, cls) for cls in offered), control
    assert not any(issubclass(cls, MemoryError) for cls in offered)  # nor can it raise a MemoryError
    assert not guards.is_safe_type(MemoryError) and not guards.is_safe_type(guards.OutputLimit)
    assert guards.is_safe_type(KeyError)


def test_doc_names_every_allowed_builtin_module_and_member() -> None:
    text = DOC.read_text()
    named = set(re.findall(r"`([^`\s]+)`", text))
    missing = [b for b in ALLOWED_BUILTINS if b not in named]
    missing += [m for m in ALLOWED_MODULES if m not in named]
    missing += [f"{m}.{n}" for m, rule in ALLOWED_MODULES.items() for n in rule.names if m != "math" and n not in named]
    assert not missing, f"docs/security.md does not name: {missing}"
    assert "sandbox-restricted.md" in text and "sandbox-docker.md" in text


def test_doc_reasons_about_every_facade_and_callback_taking_builtin() -> None:
    """docs/security.md has a row saying why each facade's callbacks into
    tool objects are safe (the deepcopy-memo escape came through one)."""
    section = DOC.read_text().split("### Library code calling back into tool objects", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert all(len(row.split("|")) == 5 and row.split("|")[3].strip() for row in rows), "three filled cells a row"
    named = set(re.findall(r"`([^`\s(]+)", " ".join(row.split("|")[1] for row in rows)))
    missing = [m for m in ALLOWED_MODULES if not any(n == m or n.startswith(m + ".") for n in named)]
    missing += [
        b
        for b in ("sorted", "min", "max", "map", "filter", "iter", "print", "getattr", "type", "super")
        if b not in named
    ]
    assert not missing, f"no callback row for: {missing}"


# ---------------------------------------------------------------- getattr


def test_getattr_allows_public_attributes() -> None:
    assert guarded_getattr("abc", "upper")() == "ABC"
    assert guarded_getattr(3, "real") == 3
    assert guarded_getattr([], "missing", "fallback") == "fallback"
    with pytest.raises(AttributeError):
        guarded_getattr([], "missing")
    assert STATE.violation is None


@pytest.mark.parametrize("name", ["__class__", "_private", "__dict__", "__globals__"])
def test_getattr_refuses_private_names(name: str) -> None:
    with pytest.raises(PolicyViolation, match="names starting with"):
        guarded_getattr(len, name, None)  # a default does not soften a refusal
    assert STATE.violation is not None and name in STATE.violation


@pytest.mark.parametrize("name", ["gi_frame", "f_back", "tb_frame", "cr_frame", "ag_frame", "f_globals", "mro"])
def test_getattr_refuses_frame_and_code_internals(name: str) -> None:
    with pytest.raises(PolicyViolation, match=name):
        guarded_getattr(object(), name)


def test_getattr_refuses_str_subclass_names() -> None:
    class Sneaky(str):
        def startswith(self, prefix: Any, *args: Any) -> bool:
            return False

    with pytest.raises(PolicyViolation, match="plain str"):
        guarded_getattr("", Sneaky("__class__"))


def test_hasattr_answers_false_for_refused_names_without_blocking() -> None:
    assert guarded_hasattr("x", "upper") is True
    assert guarded_hasattr("x", "nope") is False
    assert guarded_hasattr("x", "__class__") is False
    assert guarded_hasattr("x", "gi_frame") is False
    assert STATE.violation is None


def test_format_is_guarded_but_works() -> None:
    fmt = guarded_getattr("{0[1]}-{name}-{x.real:>4}", "format")
    assert fmt([1, 2], name="n", x=5) == "2-n-   5"
    assert guarded_getattr("{a}", "format_map")({"a": 1}) == "1"
    assert guarded_getattr(str, "format")("{0}", 7) == "7"
    with pytest.raises(PolicyViolation, match="__class__"):
        guarded_getattr("{0.__class__}", "format")(1)
    with pytest.raises(PolicyViolation, match="__globals__"):
        guarded_getattr("{f.__globals__}", "format_map")({"f": test_format_is_guarded_but_works})


def test_format_through_super_is_refused() -> None:
    class S(str):
        pass

    with pytest.raises(PolicyViolation, match="super"):
        guarded_getattr(super(S, S("x")), "format")


def test_regex_scanner_is_refused_but_patterns_work() -> None:
    pattern = re.compile(r"(\d+)")
    assert guarded_getattr(pattern, "findall")("a1b22") == ["1", "22"]
    with pytest.raises(PolicyViolation, match="scanner"):
        guarded_getattr(pattern, "scanner")


# ---------------------------------------------------------------- writes


def test_write_guard_allows_containers_and_tool_objects() -> None:
    d: dict = {}
    assert write_guard(d) is d and write_guard([]) == []
    cls = guards.tool_metaclass("Point", (object,), {"__module__": "tool", "__qualname__": "Point"})
    point = cls()
    assert write_guard(point) is point and write_guard(cls) is cls


@pytest.mark.parametrize("target", [len, "text", 3, (1, 2), json])
def test_write_guard_refuses_everything_else(target: Any) -> None:
    with pytest.raises(PolicyViolation, match="cannot modify"):
        write_guard(target)


def test_setattr_and_delattr_only_on_tool_objects() -> None:
    assert ok("""
class Box(object):
    pass
def run():
    b = Box()
    setattr(b, "size", 3)
    b.colour = "red"
    delattr(b, "colour")
    return [b.size, hasattr(b, "colour")]
""") == [3, False]
    assert "cannot modify" in blocked('import math\ndef run():\n    setattr(math, "pi", 3)\n')
    assert "names starting with" in blocked('class B(object):\n    pass\ndef run():\n    setattr(B(), "_x", 1)\n')


# ---------------------------------------------------------------- inplacevar


@pytest.mark.parametrize(
    "op,x,y,expected",
    [
        ("+=", 5, 2, 7),
        ("-=", 5, 2, 3),
        ("*=", 5, 2, 10),
        ("/=", 5, 2, 2.5),
        ("//=", 5, 2, 2),
        ("%=", 5, 2, 1),
        ("**=", 5, 2, 25),
        ("<<=", 5, 2, 20),
        (">>=", 5, 2, 1),
        ("&=", 5, 3, 1),
        ("^=", 5, 3, 6),
        ("|=", 5, 3, 7),
    ],
)
def test_inplacevar_operators(op: str, x: int, y: int, expected: Any) -> None:
    assert inplacevar(op, x, y) == expected


def test_inplacevar_mutates_lists_in_place_and_guards_size() -> None:
    items = [1]
    assert inplacevar("+=", items, [2]) is items and items == [1, 2]
    with pytest.raises(MemoryError):
        inplacevar("*=", "ab", 10**9)
    with pytest.raises(PolicyViolation):
        inplacevar("=", 1, 2)


def test_augmented_assignment_of_attributes_and_items() -> None:
    assert ok("""
from collections import Counter
class Tally(object):
    total = 0
    def __init__(self):
        self.count = 0
def run():
    t = Tally()
    t.count += 2
    Tally.total += 1
    counts = Counter()
    for ch in "abca":
        counts[ch] += 1
    grid = [[0, 0], [0, 0]]
    grid[1][0] -= 4
    return [t.count, Tally.total, dict(counts), grid]
""") == [2, 1, {"a": 2, "b": 1, "c": 1}, [[0, 0], [-4, 0]]]


def test_augmented_assignment_keeps_the_guards() -> None:
    assert "__globals__" in blocked("def run():\n    run.__globals__ += 1\n")
    assert "cannot modify" in blocked("import json\ndef run():\n    json.dumps += 1\n")
    assert "Augmented assignment" in blocked("def run():\n    x = [1]\n    x[0:1] += [2]\n")


# ---------------------------------------------------------------- builtins


def test_iteration_builtins() -> None:
    assert ok("""
def gen():
    yield 3
    yield 1
    yield 2
def run():
    return [
        sorted(gen()), sorted(["b", "A", "c"], key=lambda s: s.lower(), reverse=True),
        list(zip("ab", gen())), list(enumerate("xy", start=1)), list(map(lambda a, b: a + b, [1, 2], [10, 20])),
        list(filter(None, [0, 1, 2])), list(reversed(gen())), list(reversed({"k": 1, "j": 2})),
        min(gen()), max([1, 5], key=lambda v: -v), max([], default=9), min(4, 2, 3), sum(gen(), 10),
        any(x > 2 for x in gen()), all(gen()), list(iter([1, 2].pop, 1)), next(iter(gen())),
        tuple(gen()), sorted(set(gen())), dict([("a", 1)], b=2), len(frozenset("aab")), list(range(2, 8, 3)),
    ]
""") == [
        [1, 2, 3],
        ["c", "b", "A"],
        [["a", 3], ["b", 1]],
        [[1, "x"], [2, "y"]],
        [11, 22],
        [1, 2],
        [2, 1, 3],
        ["j", "k"],
        1,
        1,
        9,
        2,
        16,
        True,
        True,
        [2],
        3,
        [3, 1, 2],
        [1, 2, 3],
        {"a": 1, "b": 2},
        2,
        [2, 5],
    ]


def test_zip_strict_and_number_builtins() -> None:
    assert ok("""
def run():
    out = [abs(-2), round(2.567, 2), divmod(7, 2), pow(2, 10), pow(3, 2, 5), chr(65), ord("a"), hex(255),
           bin(5), oct(8), int("12"), float("1.5"), str(3), bool(0), repr("x"), ascii("é"), format(3.14159, ".2f"),
           callable(len), isinstance([], list), isinstance(1, (str, int)), issubclass(bool, int)]
    try:
        list(zip([1], [1, 2], strict=True))
    except ValueError:
        out.append("strict")
    return out
""") == [
        2,
        2.57,
        [3, 1],
        1024,
        4,
        "A",
        97,
        "0xff",
        "0b101",
        "0o10",
        12,
        1.5,
        "3",
        False,
        "'x'",
        "'\\xe9'",
        "3.14",
        True,
        True,
        True,
        True,
        "strict",
    ]


def test_type_one_argument_only_and_only_for_safe_classes() -> None:
    assert (
        ok("""
from collections import Counter
class Node(object):
    pass
def run():
    return [type(1) is int, type("s") == str, type([]) is list, type(Node()) is Node,
            type(Counter()) is Counter, type(ValueError()) is ValueError]
""")
        == [True] * 6
    )
    assert "type() of" in blocked("def run():\n    return type(run)\n")
    assert "three arguments" in blocked("def run():\n    return type('X', (), {})\n")
    # type() with no argument (say, as a defaultdict factory) is an ordinary TypeError
    reply = run_in_child({"source": "import collections\ndef run():\n    return collections.defaultdict(type)['k']\n"})
    assert reply["status"] == "error" and reply["error"]["type"] == "TypeError", reply


def test_classes_subclassing_builtins_and_exceptions() -> None:
    assert ok("""
class Registry(dict):
    def register(self, key, value):
        self[key] = value
        return self
class ToolError(ValueError):
    pass
class Stack(object):
    def __init__(self):
        self.items = []
    def __len__(self):
        return len(self.items)
    def __repr__(self):
        return "Stack(%d)" % len(self.items)
    def push(self, x):
        self.items.append(x)
        return self
def run():
    try:
        raise ToolError("bad")
    except ValueError as exc:
        caught = str(exc)
    s = Stack().push(1).push(2)
    return [Registry().register("a", 1), caught, len(s), repr(s), isinstance(s, Stack)]
""") == [{"a": 1}, "bad", 2, "Stack(2)", True]


def test_class_creation_refusals() -> None:
    assert "metaclass" in blocked("class M(object, metaclass=type):\n    pass\ndef run():\n    return 1\n")
    assert "custom metaclass" in blocked(
        "from fractions import Fraction\nclass F(Fraction):\n    pass\ndef run():\n    return 1\n"
    )
    for hook in ("__getattr__", "__getattribute__", "__reduce__", "__init_subclass__", "__del__", "__new__"):
        assert hook in blocked(
            f"class A(object):\n    def {hook}(self, *a):\n        return 1\ndef run():\n    return 1\n"
        )


def test_print_is_collected_and_printed_is_per_function() -> None:
    reply = call("""
def helper():
    print("inner", 1, sep="-")
    return printed
def run():
    text = helper()
    print("outer", end="")
    return text
""")
    assert reply["status"] == "ok"
    assert reply["result"] == "inner-1\n"
    assert reply["stdout"] == "inner-1\nouter"


def test_print_to_a_file_is_refused() -> None:
    reply = run_in_child({"source": "def run():\n    print('x', file=run)\n"})
    assert reply["status"] == "error" and "file" in reply["error"]["message"]


def test_star_args_calls_go_through_apply() -> None:
    assert (
        ok(
            "def f(a, b, c=0):\n    return a + b + c\ndef run():\n    args = [1, 2]\n    kw = {'c': 3}\n"
            "    return f(*args, **kw)\n"
        )
        == 6
    )


def test_unpacking_is_guarded_but_works() -> None:
    assert ok(
        "def run():\n    (a, (b, c)), d = (1, (2, 3)), 4\n    out = []\n"
        "    for x, (y, z) in [(1, (2, 3))]:\n        out.append(x + y + z)\n"
        "    return [a, b, c, d, out]\n"
    ) == [1, 2, 3, 4, [6]]


# ---------------------------------------------------------------- compile-time rules


def test_refusals_name_the_construct_and_the_line() -> None:
    msg = blocked("def run():\n    x = 1\n    return x.__class__\n")
    assert msg == 'line 3: attribute name "__class__" is not allowed (names starting with "_" are private)'
    msg = blocked("def run():\n    import os\n")
    assert msg.startswith('line 2: import of "os" is not allowed (allowed: math, ')
    assert (
        blocked("def run():\n    return open('/etc/passwd')\n")
        == 'line 2: builtin "open" is not available in the sandbox'
    )
    assert blocked("async def run():\n    return 1\n").startswith("line 1: async def is not allowed")
    assert blocked("def run(x=1):\n    match x:\n        case 1:\n            return 1\n").startswith(
        "line 2: match is not allowed"
    )
    assert blocked("from os import *\ndef run():\n    return 1\n").startswith('line 1: "from ... import *"')


def test_refusals_are_sticky_even_when_caught() -> None:
    msg = blocked("""
def run():
    try:
        getattr(run, "__globals__")
    except BaseException:
        pass
    return "got away"
""")
    assert msg.startswith("line 4:") and "__globals__" in msg


def test_annotations_dunder_name_and_main_guard_compile() -> None:
    assert ok("""
from typing import Dict, List
counts: Dict[str, int] = {}
pending: List[int]
def run() -> List[str]:
    total: int = 0
    total += 1
    return [__name__, str(total)]
if __name__ == "__main__":
    print("not run in the sandbox")
""") == ["tool", "1"]
    assert "__name__" in blocked("__name__ = 'x'\ndef run():\n    return 1\n")


def test_deeply_nested_source_is_refused_not_crashed() -> None:
    reply = run_in_child({"source": "x = " + "-" * 3000 + "1\ndef run():\n    return x\n"})
    assert reply["status"] in ("blocked", "error")
    reply = run_in_child({"source": "x = " + "(" * 400 + "1" + ")" * 400 + "\ndef run():\n    return x\n"})
    assert reply["status"] in ("blocked", "error")


# ---------------------------------------------------------------- readable dunders


def test_name_qualname_and_init_are_readable_where_harmless() -> None:
    assert ok("""
class Base(object):
    def __init__(self, tag):
        self.tag = tag
    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, self.tag)
class Child(Base):
    def __init__(self):
        super().__init__("kid")
class Other(Base):
    def __init__(self):
        Base.__init__(self, "other")
class Oops(ValueError):
    def __init__(self, what):
        ValueError.__init__(self, "oops: " + what)
def run():
    try:
        raise Oops("x")
    except ValueError as exc:
        message = str(exc)
    return [repr(Child()), repr(Other()), run.__name__, Child.__qualname__, message]
""") == ["Child(kid)", "Other(other)", "run", "Child", "oops: x"]


def test_readable_dunders_stay_narrow() -> None:
    import types as pytypes

    with pytest.raises(PolicyViolation, match="only readable when it is a plain str"):
        guarded_getattr(pytypes.SimpleNamespace(__name__=3), "__name__")
    with pytest.raises(PolicyViolation, match="only readable on super"):
        guarded_getattr("text", "__init__")
    assert "__init__" in blocked("def run():\n    d = {}\n    d.__init__(a=1)\n    return d\n")
    assert "__name__" in blocked("class A(object):\n    pass\ndef run():\n    A.__name__ = 'B'\n")


# ------------------------------------------------- single-underscore helpers


def test_single_underscore_helper_names_work() -> None:
    source = """
_CACHE = {}
def _position(index, count):
    return index - 1 if index > 0 else count + index
def run(n):
    _CACHE["last"] = _position(n, 5)
    _total = sum(_CACHE.values())
    return [_total, [_x * 2 for _x in range(2)]]
"""
    assert ok(source, n=-1) == [4, [0, 2]]


@pytest.mark.parametrize("name", ["_print", "_tmp0", "_tmp12", "_getattr_", "_write_", "__builtins__", "__x", "_x_"])
def test_names_the_compiler_and_guards_rely_on_stay_refused(name: str) -> None:
    assert name in blocked(f"def run():\n    {name} = 1\n    return 1\n")


@pytest.mark.parametrize(
    "statement",
    ["import _strptime", "from _strptime import locale", "from json import _default_decoder", "import collections._x"],
)
def test_private_import_paths_are_refused(statement: str) -> None:
    assert "import of" in blocked(f"{statement}\ndef run():\n    return 1\n")


def test_future_import_still_compiles() -> None:
    assert ok("from __future__ import annotations\ndef run(n):\n    return n\n", n=3) == 3


# ----------------------------------------------------- unpacking fast path


def test_unpacking_plain_and_custom_sequences() -> None:
    source = """
class Pair:
    def __init__(self, a, b):
        self.a = a
        self.b = b
    def __iter__(self):
        return iter([self.a, self.b])
def run():
    out = []
    for x, y in zip([1, 2], [3, 4]):
        out.append(x + y)
    for x, y in [[5, 6]]:
        out.append(x * y)
    for (x, y), z in [((1, 2), 3)]:
        out.append(x + y + z)
    for x, *rest in [(1, 2, 3)]:
        out.append(rest)
    for x, y in [Pair(7, 8)]:
        out.append(x - y)
    a, b = (9, 10)
    c, d = Pair(11, 12)
    (e, f), g = [1, 2], 3
    out.append([a, b, c, d, e, f, g])
    return out
"""
    assert ok(source) == [4, 6, 30, 6, [2, 3], -1, [9, 10, 11, 12, 1, 2, 3]]


def test_unpacking_length_errors_are_the_usual_ones() -> None:
    reply = call("def run():\n    for a, b in [(1, 2, 3)]:\n        pass\n")
    assert reply["status"] == "error" and reply["error"]["type"] == "ValueError"
    reply = call("def run():\n    a, b = [1]\n")
    assert reply["status"] == "error" and reply["error"]["type"] == "ValueError"
