"""execute.run_job: the reply contract, call modes, error reporting, the
JSON result walker and the output/memory outcomes, in both policy modes."""

from __future__ import annotations

import collections
import json
import math
import sys
from typing import Any

import pytest
from attacks.child import call_in_child, run_in_child
from toolcrib.sandbox import Job
from toolcrib.sandbox.inside import execute
from toolcrib.sandbox.inside.execute import run_job
from toolcrib.sandbox.inside.guards import OutputLimit
from toolcrib.sandbox.inside.results import MAX_RESULT_DEPTH, ResultNotJSON, to_json

REPLY_KEYS = {"status", "result", "error", "limit", "stdout"}


def reply_of(source: str, *, restricted: bool = True, **job: Any) -> dict[str, Any]:
    full = {"source": source, "entrypoint": "run", "mode": "args", "args": {}, "limits": {"output": 64}, **job}
    data = run_job(full, restricted=restricted)
    assert isinstance(data, bytes)
    reply = json.loads(data)
    assert set(reply) == REPLY_KEYS
    assert reply["status"] in ("ok", "error", "blocked", "limit")
    return reply


@pytest.mark.parametrize("restricted", [True, False])
def test_args_mode_calls_the_entrypoint_with_keyword_args(restricted: bool) -> None:
    reply = reply_of(
        "def add(a, b=1):\n    return {'sum': a + b}\n", restricted=restricted, entrypoint="add", args={"a": 2, "b": 5}
    )
    assert reply == {"status": "ok", "result": {"sum": 7}, "error": None, "limit": None, "stdout": ""}


def test_job_wire_format_is_accepted() -> None:
    job = Job(source="def f(x):\n    print('hi')\n    return [x, x]\n", entrypoint="f", args={"x": "y"})
    reply = json.loads(run_job(job.wire()))
    assert reply["status"] == "ok" and reply["result"] == ["y", "y"] and reply["stdout"] == "hi\n"


@pytest.mark.parametrize("restricted", [True, False])
def test_snippet_mode_sets_ans(restricted: bool) -> None:
    reply = reply_of(
        "def square(n):\n    return n * n\nans = 'tool-level ans is not the answer'\n",
        restricted=restricted,
        mode="snippet",
        snippet="nums = [2, 3]\nans = [square(n) for n in nums]\n",
    )
    assert reply["status"] == "ok" and reply["result"] == [4, 9]


@pytest.mark.parametrize("restricted", [True, False])
def test_snippet_without_ans_answers_with_stdout(restricted: bool) -> None:
    reply = reply_of(
        "def square(n):\n    return n * n\n",
        restricted=restricted,
        mode="snippet",
        snippet="print(square(4))\nprint('done')\n",
    )
    assert reply["status"] == "ok" and reply["result"] == "16\ndone\n" and reply["stdout"] == "16\ndone\n"


def test_snippet_is_under_the_same_policy() -> None:
    reply = run_in_child(
        {"source": "def f():\n    return 1\n", "mode": "snippet", "snippet": "x = 1\nans = f.__globals__\n"}
    )
    assert reply["status"] == "blocked"
    assert reply["error"]["message"].startswith('line 2: attribute name "__globals__"')


@pytest.mark.parametrize("restricted", [True, False])
def test_tool_errors_carry_type_message_and_tool_line(restricted: bool) -> None:
    reply = reply_of(
        "def helper(d):\n    return d['missing']\n\ndef run():\n    return helper({})\n", restricted=restricted
    )
    assert reply["status"] == "error"
    assert reply["error"] == {"type": "KeyError", "message": "'missing'", "line": 2}


def test_syntax_errors_are_errors_with_a_line() -> None:
    reply = reply_of("def run():\n    return (1,\n\n")
    assert reply["status"] == "error" and reply["error"]["type"] == "SyntaxError"
    assert reply["error"]["line"] == 2


def test_missing_entrypoint_is_an_error() -> None:
    reply = reply_of("def other():\n    return 1\n", entrypoint="run")
    assert reply["status"] == "error" and reply["error"]["type"] == "NameError"
    assert "'run'" in reply["error"]["message"]


def test_exception_text_never_runs_tool_methods() -> None:
    # A tool-defined __str__ (or an argument's __repr__) that would hang is
    # not called: the message comes from the plain arguments or a placeholder.
    reply = run_in_child(
        {
            "source": """
class Stuck(Exception):
    def __str__(self):
        while True:
            pass
class Arg(object):
    def __repr__(self):
        while True:
            pass
def run(which="str"):
    if which == "str":
        raise Stuck("plain text")
    raise ValueError(Arg())
"""
        },
        timeout=5,
    )
    assert reply["status"] == "error" and reply["error"] == {"type": "Stuck", "message": "plain text", "line": 12}
    reply = run_in_child(
        {
            "source": "class Arg(object):\n    def __repr__(self):\n        while True:\n"
            "            pass\ndef run():\n    raise ValueError(Arg())\n"
        },
        timeout=5,
    )
    assert reply["error"]["message"] == "<ValueError with non-text arguments>"


def test_an_exception_wrapping_a_builtin_one_shows_the_wrapped_text() -> None:
    # pandas raises ValueError(err) from err, err an AssertionError.
    source = (
        "def run():\n    try:\n        assert False, '1 columns passed, passed data had 0 columns'\n"
        "    except AssertionError as err:\n        raise ValueError(err) from err\n"
    )
    reply = reply_of(source, restricted=False)
    assert reply["error"]["type"] == "ValueError"
    assert reply["error"]["message"] == "1 columns passed, passed data had 0 columns"
    # SyntaxError's arguments hold a tuple of plain values (eval of bad text).
    reply = reply_of("def run():\n    return eval('1 +')\n", restricted=False)
    assert reply["error"]["type"] == "SyntaxError" and "invalid syntax" in reply["error"]["message"]
    # A tool-made exception class is never asked for its text.
    source = "class Mine(AssertionError):\n    pass\ndef run():\n    raise ValueError(Mine('x'))\n"
    assert reply_of(source, restricted=False)["error"]["message"] == "<ValueError with non-text arguments>"


def test_memory_error_is_a_memory_limit_only_when_real() -> None:
    reply = run_in_child({"source": "def run():\n    return 'x' * (4 * 1024 ** 3)\n"})
    assert reply["status"] == "limit" and reply["limit"] == "memory"
    # Restricted tool code cannot name MemoryError, so it cannot fake the limit.
    reply = reply_of("def run():\n    raise MemoryError()\n")
    assert reply["status"] == "error" and reply["error"]["type"] == "NameError", reply


def test_recursion_is_an_error() -> None:
    reply = run_in_child({"source": "def run(n=0):\n    return run(n + 1)\n"})
    assert reply["status"] == "error" and reply["error"]["type"] == "RecursionError"


@pytest.mark.parametrize("restricted", [True, False])
def test_print_flood_is_an_output_limit(restricted: bool) -> None:
    reply = run_in_child(
        {"source": "def run():\n    while True:\n        print('flood')\n", "limits": {"output": 4}},
        restricted=restricted,
    )
    assert reply["status"] == "limit" and reply["limit"] == "output"
    assert len(reply["stdout"]) <= 4096


def test_large_result_is_an_output_limit_and_the_reply_fits_the_cap() -> None:
    for source in (
        "def run():\n    return 'y' * 9000\n",
        "def run():\n    return list(range(5000))\n",
        "def run():\n    print('p' * 3000)\n    return 'r' * 3000\n",
    ):
        data = run_job({"source": source, "entrypoint": "run", "limits": {"output": 4}})
        assert len(data) <= 4 * 1024
        reply = json.loads(data)
        assert reply["status"] == "limit" and reply["limit"] == "output", source


@pytest.mark.parametrize(
    "job",
    [
        {},
        {"source": None, "entrypoint": "run"},
        {"source": "def run():\n    return 1\n", "entrypoint": 5},
        {"source": "def run():\n    return 1\n", "entrypoint": "run", "mode": "weird"},
        {"source": "def run():\n    return 1\n", "entrypoint": "run", "mode": "snippet", "snippet": None},
        {"source": "def run(a):\n    return a\n", "entrypoint": "run", "args": {"b": 1}},
        {"source": "x = 1\x00\n", "entrypoint": "run"},
    ],
)
def test_malformed_jobs_get_an_answer_not_an_exception(job: dict) -> None:
    reply = json.loads(run_job(job))
    assert set(reply) == REPLY_KEYS and reply["status"] in ("error", "blocked")


def test_unreadable_output_limit_falls_back_to_the_default_cap() -> None:
    reply = json.loads(
        run_job({"source": "def run():\n    return 'z' * 5000\n", "entrypoint": "run", "limits": {"output": "lots"}})
    )
    assert reply["status"] == "ok" and reply["result"] == "z" * 5000


def test_plain_mode_has_real_python() -> None:
    reply = run_in_child(
        {
            "source": "import os, sys\ndef run():\n    print('plain')\n"
            "    return [os.getpid() > 0, type(sys.maxsize).__name__]\n"
        },
        restricted=False,
    )
    assert reply == {"status": "ok", "result": [True, "int"], "error": None, "limit": None, "stdout": "plain\n"}


def test_warm_leaves_nothing_to_import_at_call_time() -> None:
    """After warm(), a job using every facade imports no module at all (a
    forked child may not be able to read files)."""
    source = execute._WARM_SOURCE.replace("def run(n: int = 3)", "def run(n: int = 4)")

    def child() -> bytes:
        execute.warm()
        before = set(sys.modules)
        reply = run_job({"source": source, "entrypoint": "run", "args": {"n": 4}, "limits": {"output": 64}})
        new = sorted(set(sys.modules) - before)
        return json.dumps({"reply": json.loads(reply), "new": new}).encode()

    outcome = json.loads(call_in_child(child))
    assert outcome["reply"]["status"] == "ok", outcome
    assert outcome["new"] == []


# ---------------------------------------------------------------- to_json


def test_to_json_converts_by_exact_type() -> None:
    Point = collections.namedtuple("Point", "x y")
    value = {
        "t": (1, 2),
        "s": {3, 1, 2},
        "f": frozenset({"b", "a"}),
        "n": None,
        "b": True,
        "fl": 1.5,
        "c": collections.Counter("aab"),
        "d": collections.deque([1, 2]),
        "p": Point(1, 2),
        "mixed": {1, "a", (1, 2)},
    }
    assert to_json(value, 1 << 20) == {
        "t": [1, 2],
        "s": [1, 2, 3],
        "f": ["a", "b"],
        "n": None,
        "b": True,
        "fl": 1.5,
        "c": {"a": 2, "b": 1},
        "d": [1, 2],
        "p": [1, 2],
        "mixed": sorted([1, "a", [1, 2]], key=json.dumps),
    }


def test_to_json_reads_builtin_subclasses_without_their_methods() -> None:
    class Loud(dict):
        def items(self):
            raise AssertionError("items() must not be called")

        def __iter__(self):
            raise AssertionError("__iter__ must not be called")

    class Name(str):
        def __str__(self):
            raise AssertionError("__str__ must not be called")

    class Count(int):
        def __int__(self):
            raise AssertionError("__int__ must not be called")

    d = Loud()
    dict.__setitem__(d, Name("k"), Count(3))
    out = to_json([d], 1 << 20)
    assert out == [{"k": 3}] and type(out[0]) is dict and type(next(iter(out[0]))) is str
    assert type(out[0]["k"]) is int


@pytest.mark.parametrize(
    "value,fragment",
    [
        (math.nan, "float nan"),
        (math.inf, "float inf"),
        ({1: "a"}, "dict key of type int"),
        (object(), "object"),
        (b"bytes", "bytes"),
        (1 << 20000, "int too large"),
        (len, "builtin_function_or_method"),
    ],
    ids=["nan", "inf", "int-key", "object", "bytes", "huge-int", "builtin"],
)
def test_to_json_refuses_what_is_not_json(value: Any, fragment: str) -> None:
    with pytest.raises(ResultNotJSON, match=fragment):
        to_json(value, 1 << 20)


def test_to_json_refuses_cycles_and_depth() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(ResultNotJSON, match="cycle"):
        to_json(loop, 1 << 20)
    deep: list = []
    for _ in range(MAX_RESULT_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ResultNotJSON, match="deeper"):
        to_json(deep, 1 << 20)
    shallow: list = []
    for _ in range(MAX_RESULT_DEPTH - 1):
        shallow = [shallow]
    assert to_json(shallow, 1 << 20) is not None
    shared = [1]
    assert to_json([shared, shared], 1 << 20) == [[1], [1]]  # repeated, not cyclic


def test_to_json_budget() -> None:
    with pytest.raises(OutputLimit):
        to_json(["x" * 600, "y" * 600], 1000)
    assert to_json(["x" * 400], 1000) == ["x" * 400]


def test_user_objects_in_results_are_errors_not_calls() -> None:
    reply = run_in_child(
        {
            "source": """
class Sneaky(object):
    def __eq__(self, other):
        while True:
            pass
    def __repr__(self):
        while True:
            pass
def run():
    return {"ok": [1, Sneaky()]}
"""
        },
        timeout=5,
    )
    assert reply["status"] == "error"
    assert reply["error"] == {"type": "ResultNotJSON", "message": "result is not JSON: Sneaky", "line": None}
