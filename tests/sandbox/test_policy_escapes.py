"""The escape class of issue 7 (library code calling back into tool objects,
control exceptions, unbound library methods, finalisers after the refusal
check, silent key loss), each reproduced through `execute.run_job` and
shown closed; and the legitimate uses next to each one still working.

Hostile code runs in a forked child (`attacks.child`); legitimate code in
this process."""

from __future__ import annotations

import collections
import gc
import json
from typing import Any

import pytest
from attacks.child import call_in_child, run_in_child
from toolcrib.sandbox.inside import execute
from toolcrib.sandbox.inside.guards import STATE
from toolcrib.sandbox.inside.results import ResultNotJSON, to_json

# Tool code runs in this process: each test starts and ends with fresh guard state.
pytestmark = pytest.mark.usefixtures("fresh_guard_state")


def ok(source: str, **args: Any) -> Any:
    job = {"source": source, "entrypoint": "run", "mode": "args", "args": args, "limits": {"output": 64}}
    reply = json.loads(execute.run_job(job))
    assert reply["status"] == "ok", reply
    return reply["result"]


def hostile(source: str, **job: Any) -> dict[str, Any]:
    return run_in_child({"source": source, **job})


def blocked(source: str, phrase: str) -> str:
    reply = hostile(source)
    assert reply["status"] == "blocked", reply
    assert phrase in reply["error"]["message"], reply
    return str(reply["error"]["message"])


# ---------------------------------------------------------------- copy

# The escape as reported: a dict subclass as deepcopy's memo answers the
# lookups for the arguments of `getattr` that copy calls for `str.join`.
MEMO_ESCAPE = """
import copy, json
class Memo(dict):
    def get(self, key, default=None):
        self.step += 1
        if self.step == 2:
            return json.dumps
        if self.step == 3:
            return "__globals__"
        return default
def run():
    memo = Memo()
    memo.step = 0
    found = copy.deepcopy(str.join, memo)
    return str(found["__builtins__"]["open"])
"""


def test_deepcopy_memo_escape_is_refused() -> None:
    blocked(MEMO_ESCAPE, "memo argument is not offered")


@pytest.mark.parametrize(
    "code, phrase",
    [
        # the memo by keyword, and through functools.partial
        ("import copy\ndef run():\n    return copy.deepcopy([1], memo={})\n", "memo argument"),
        (
            "import copy, functools\ndef run():\n    return functools.partial(copy.deepcopy, memo={})([1])\n",
            "memo argument",
        ),
        # no memo, but a library method descriptor: copy would call getattr from __reduce_ex__
        ("import copy\ndef run():\n    return str(copy.deepcopy(str.join))\n", "copying method_descriptor"),
        ("import copy\ndef run():\n    return str(copy.copy(dict.get))\n", "copying method_descriptor"),
        # the same, held inside data and inside a tool object
        ("import copy\ndef run():\n    return str(copy.deepcopy({'f': [str.join]}))\n", "copying method_descriptor"),
        (
            "import copy\nclass Box(object):\n    def __init__(self):\n        self.f = str.join\n"
            "def run():\n    return str(copy.deepcopy(Box()).f)\n",
            "copying method_descriptor",
        ),
        # library objects that are not data: partials, iterators, exceptions the library made
        (
            "import copy, functools\ndef run():\n    return str(copy.deepcopy(functools.partial(max, 1)))\n",
            "copying partial objects",
        ),
        ("import copy\ndef run():\n    return str(copy.copy(iter([1, 2])))\n", "copying list_iterator"),
        (
            "import copy\ndef run():\n    try:\n        {}['k']\n    except KeyError as e:\n"
            "        return str(copy.deepcopy(e))\n",
            "copying KeyError",
        ),
    ],
)
def test_copy_refuses_memo_and_what_the_tool_did_not_build(code: str, phrase: str) -> None:
    blocked(code, phrase)


def test_copy_still_copies_data_and_tool_objects() -> None:
    assert ok("""
import copy, collections
class Point(object):
    def __init__(self, x, tags):
        self.x = x
        self.tags = tags
class Bag(dict):
    pass
class Stack(list):
    pass
class Oops(Exception):
    pass
Pair = collections.namedtuple("Pair", "a b")
def run():
    shared = [1, 2]
    data = {"a": shared, "b": shared, "t": (shared, 3), "s": {1, 2}, "f": frozenset({3})}
    data["self"] = data
    deep = copy.deepcopy(data)
    shallow = copy.copy(data)
    p = Point(1, ["x"])
    p2 = copy.deepcopy(p)
    p2.tags.append("y")
    bag = Bag(k=[1])
    bag.note = "n"
    bag2 = copy.deepcopy(bag)
    bag2["k"].append(2)
    st = copy.deepcopy(Stack([[1], [2]]))
    err = copy.deepcopy(Oops("boom"))
    pair = copy.deepcopy(Pair([1], 2))
    dq = copy.deepcopy(collections.deque([[1]], maxlen=3))
    dd = copy.deepcopy(collections.defaultdict(list, {"k": [1]}))
    od = collections.OrderedDict([("a", 1), ("b", 2)])
    od.move_to_end("a")
    cm = copy.deepcopy(collections.ChainMap({"a": 1}, {"b": 2}))
    counter = copy.copy(collections.Counter("abca"))
    return [
        deep["a"] is deep["b"], deep["a"] is not shared, deep["self"] is deep, deep["t"][0] is deep["a"],
        shallow["a"] is shared, type(p2).__name__, p.tags, p2.tags, type(bag2).__name__, bag2.note,
        bag["k"], bag2["k"], type(st).__name__, st, type(err).__name__, str(err), type(pair).__name__,
        pair.a is not None, dq.maxlen, list(dq), dd["new"], list(copy.deepcopy(od)), dict(cm),
        counter["a"], copy.deepcopy(len) is len, copy.deepcopy(Point) is Point, copy.deepcopy(3.5),
    ]
""") == [
        True,
        True,
        True,
        True,
        True,
        "Point",
        ["x"],
        ["x", "y"],
        "Bag",
        "n",
        [1],
        [1, 2],
        "Stack",
        [[1], [2]],
        "Oops",
        "boom",
        "Pair",
        True,
        3,
        [[1]],
        [],
        ["b", "a"],
        {"a": 1, "b": 2},
        2,
        True,
        True,
        3.5,
    ]


# ---------------------------------------------------------------- control exceptions

FLOOD = "print('x' * 5000)"


@pytest.mark.parametrize(
    "swallow",
    [
        f"    try:\n        {FLOOD}\n    except:\n        pass\n",
        f"    try:\n        {FLOOD}\n    except BaseException:\n        pass\n",
        f"    try:\n        {FLOOD}\n    except (ValueError, BaseException):\n        pass\n",
        f"    for _ in range(1):\n        try:\n            {FLOOD}\n        finally:\n            break\n",
        f"    with Quiet():\n        {FLOOD}\n",
    ],
)
def test_output_overflow_caught_by_the_tool_is_still_an_output_limit(swallow: str) -> None:
    source = (
        "class Quiet(object):\n    def __enter__(self):\n        return self\n"
        "    def __exit__(self, *exc):\n        return True\n"
        "def run():\n" + swallow + "    return 'got away'\n"
    )
    reply = hostile(source, limits={"output": 4})
    assert (reply["status"], reply["limit"]) == ("limit", "output"), reply


def test_a_refusal_swallowed_by_finally_return_is_still_blocked() -> None:
    blocked(
        "def run():\n    try:\n        getattr(run, '__globals__')\n    finally:\n        return 'fine'\n",
        "__globals__",
    )


def test_bare_except_still_catches_ordinary_errors() -> None:
    assert ok("def run():\n    try:\n        1 / 0\n    except:\n        return 'caught'\n") == "caught"
    assert ok(
        "class E(BaseException):\n    pass\ndef run():\n    try:\n        raise E('x')\n"
        "    except BaseException as exc:\n        return [str(exc), isinstance(exc, Exception)]\n"
    ) == ["x", True]


def test_raise_memory_error_is_not_a_memory_limit() -> None:
    reply = hostile("def run():\n    raise MemoryError('fake')\n")
    assert reply["status"] == "error" and reply["error"]["type"] == "NameError", reply
    # Nor can the class be taken from a real one and raised later.
    blocked(
        "def run():\n    try:\n        [0] * (10 ** 18)\n    except Exception as exc:\n"
        "        raise type(exc)('fake')\n",
        "type() of a",
    )
    # A real allocation failure still is one.
    reply = hostile("def run():\n    return [0] * (10 ** 18)\n")
    assert (reply["status"], reply["limit"]) == ("limit", "memory"), reply


def test_a_tool_raised_name_error_is_not_a_refusal() -> None:
    reply = hostile("def run():\n    raise NameError(\"name 'open' is not defined\", name='open')\n")
    assert reply["status"] == "error" and reply["error"]["type"] == "NameError", reply
    # A withheld builtin the tool also binds elsewhere: a plain NameError at run time.
    reply = hostile("def other():\n    open = 1\n    return open\ndef run():\n    return open('/etc/passwd')\n")
    assert reply["status"] == "error" and reply["error"]["type"] == "NameError", reply
    # Unbound, it is still refused by the compiler.
    blocked("def run():\n    return open('/etc/passwd')\n", 'builtin "open" is not available')


# ---------------------------------------------------------------- unbound library methods


@pytest.mark.parametrize(
    "code, phrase",
    [
        (
            "import collections, json\ndef run():\n    collections.ChainMap.__init__(json.dumps, {})\n    return 1\n",
            "ChainMap.__init__() needs a ChainMap object",
        ),
        (
            "import re, json\ndef run():\n    re.error.__init__(json.dumps, 'm')\n    return 1\n",
            "error.__init__() needs a error object",
        ),
        (
            "import re, json\ndef run():\n    getattr(re.error, '__init__')(json.loads, 'm')\n    return 1\n",
            "needs a error object",
        ),
        # an instance of the right class, but one the library made: not the tool's to re-initialise
        (
            "import json\ndef run():\n    try:\n        json.loads('[')\n    except json.JSONDecodeError as e:\n"
            "        json.JSONDecodeError.__init__(e, 'm', 'doc', 0)\n    return 1\n",
            "cannot modify JSONDecodeError",
        ),
        # C slot wrappers too (object.__init__ accepts anything)
        ("import json\ndef run():\n    object.__init__(json.dumps)\n    return 1\n", "cannot modify function objects"),
        # other methods of Python library classes, read from the class
        (
            "import collections\nclass Fake(object):\n    pass\ndef run():\n    f = Fake()\n    f.maps = [{}]\n"
            "    return str(collections.ChainMap.new_child(f))\n",
            "ChainMap.new_child() needs a ChainMap",
        ),
        # ... or reached with no class to check against
        ("import collections\ndef run():\n    return str(collections.ChainMap.parents.fget)\n", "ChainMap.parents"),
        (
            "import collections, functools\ndef run():\n    return str(functools.lru_cache(collections.ChainMap).new_child)\n",
            "ChainMap.new_child",
        ),
        # a library class's ABC registry is library state too
        (
            "import fractions\nclass Fake(object):\n    pass\ndef run():\n    fractions.Fraction.register(Fake)\n"
            "    return isinstance(Fake(), fractions.Fraction)\n",
            '"Fraction.register" is not allowed',
        ),
    ],
)
def test_unbound_library_methods_are_checked(code: str, phrase: str) -> None:
    blocked(code, phrase)


def test_base_init_and_unbound_methods_still_work() -> None:
    assert ok("""
import collections, fractions, re
class Tally(collections.Counter):
    def __init__(self, text):
        collections.Counter.__init__(self, text)
class Oops(ValueError):
    def __init__(self, msg):
        ValueError.__init__(self, "oops: " + msg)
class Sub(Oops):
    def __init__(self):
        super().__init__("sub")
class Plain(object):
    def __init__(self):
        object.__init__(self)
        self.ok = True
class RegexProblem(re.error):
    def __init__(self, msg):
        super().__init__(msg, "pat", 1)
def run():
    tally = Tally("abca")
    d = {}
    dict.__init__(d, k=1)
    half = fractions.Fraction.limit_denominator(fractions.Fraction(3333, 10000), 10)
    upper = str.upper("x")
    return [dict(tally), str(Oops("x")), str(Sub()), Plain().ok, d, str(half), upper,
            RegexProblem("bad").pos, Tally.most_common(tally, 1),
            collections.ChainMap.__init__.__name__]
""") == [{"a": 2, "b": 1, "c": 1}, "oops: x", "oops: sub", True, {"k": 1}, "1/3", "X", 1, [["a", 2]], "__init__"]


def test_attribute_error_obj_is_refused() -> None:
    blocked(
        "def run():\n    try:\n        (1).missing\n    except AttributeError as e:\n        return str(e.obj)\n",
        'attribute "obj" of AttributeError',
    )
    assert (
        ok("def run():\n    try:\n        (1).missing\n    except AttributeError as e:\n        return e.name\n")
        == "missing"
    )


# ---------------------------------------------------------------- finalisers after the check

# A generator in a garbage cycle whose `finally` is refused, made just
# before returning a result big enough that converting it triggers the
# collector (which, before the fix, ran the `finally` after the check).
FINALISER = """
def gen(box):
    try:
        yield 1
    finally:
        box.append(getattr(run, "__globals__"))
def run():
    result = [{"i": i} for i in range(20000)]
    box = []
    g = gen(box)
    next(g)
    box.append(g)   # box -> g -> frame -> box: only the collector frees it
    g = box = None
    return result
"""


def _reply_and_record() -> bytes:
    job = {"source": FINALISER, "entrypoint": "run", "limits": {"output": 1024}}
    data = execute.run_job(job)
    gc.disable()  # allocates nothing: the record below is the one run_job left
    violation = STATE.violation
    gc.enable()
    return json.dumps({"status": json.loads(data)["status"], "violation": violation}).encode()


def test_finalisers_run_before_the_outcome_is_decided() -> None:
    seen = json.loads(call_in_child(_reply_and_record))
    # The garbage's finaliser runs inside the call and its refusal counts;
    # before the fix it ran during conversion: "ok" with a refusal recorded.
    assert seen["status"] == "blocked" and "__globals__" in seen["violation"], seen


# ---------------------------------------------------------------- results


class Twin(str):
    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return self is other


def test_a_str_subclass_key_equal_to_another_key_is_an_error_not_a_loss() -> None:
    value = {"k": 1, Twin("k"): 2}
    assert len(value) == 2
    with pytest.raises(ResultNotJSON, match="two dict keys"):
        to_json(value, 1 << 20)
    with pytest.raises(ResultNotJSON, match="two dict keys"):
        to_json(collections.OrderedDict([(Twin("k"), 2), ("k", 1)]), 1 << 20)
    reply = hostile("""
class Twin(str):
    def __hash__(self):
        return 1
    def __eq__(self, other):
        return self is other
def run():
    return {"k": 1, Twin("k"): 2}
""")
    assert reply["status"] == "error" and reply["error"]["type"] == "ResultNotJSON", reply
