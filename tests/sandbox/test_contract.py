"""The one contract every sandbox backend honours (`toolcrib.sandbox.contract`).

Each test runs once per backend through the shared `backend` fixture, with
tools that are valid under the RestrictedPython policy and as plain Python,
so the expected outcome is the same everywhere. Limits are kept small so the
suite stays fast.
"""

from __future__ import annotations

import json

import pytest
from toolcrib.sandbox import Backend, Job, Limits, Result, get_backend

QUICK = Limits(cpu=2, wall=10, memory=128, output=64)


def run(backend: str, source: str, entrypoint: str = "f", **fields) -> Result:
    fields.setdefault("limits", QUICK)
    result = get_backend(backend).run(Job(source=source, entrypoint=entrypoint, **fields))
    assert isinstance(result, Result)
    return result


def test_backend_satisfies_the_protocol(backend: str) -> None:
    instance = get_backend(backend)
    assert isinstance(instance, Backend)
    assert instance.name == backend


def test_backend_answers_what_callers_ask(backend: str) -> None:
    """Callers ask the backend, never its name (`contract.Backend`): the
    default policy for each declared one, start, prepare, health."""
    instance = get_backend(backend)
    assert {p: instance.default_policy(p) for p in ("restricted", "plain")}["plain"] == "plain"
    assert instance.default_policy("restricted") in ("restricted", "plain")
    instance.start()
    health = instance.health()
    assert health["backend"] == backend and health["available"] is True, health


def test_args_mode_returns_the_value(backend: str) -> None:
    r = run(backend, "def add(a, b):\n    return a + b\n", "add", args={"a": 2, "b": 40})
    assert r.status == "ok", r
    assert r.result == 42
    assert r.error is None and r.limit is None
    assert r.backend == backend


def test_args_mode_passes_json_arguments_intact(backend: str) -> None:
    args = {"text": "ünïcode ✓", "items": [1, 2.5, None, True], "nested": {"k": ["v"]}}
    r = run(
        backend,
        "def echo(text, items, nested):\n    return {'text': text, 'items': items, 'nested': nested}\n",
        "echo",
        args=args,
    )
    assert r.status == "ok", r
    assert r.result == args


def test_snippet_mode_returns_ans(backend: str) -> None:
    r = run(
        backend,
        "def square(x):\n    return x * x\n",
        "square",
        mode="snippet",
        snippet="ans = [square(i) for i in range(5)]",
    )
    assert r.status == "ok", r
    assert r.result == [0, 1, 4, 9, 16]


def test_snippet_mode_without_ans_returns_printed_output(backend: str) -> None:
    r = run(
        backend,
        "def greet(name):\n    return 'hello ' + name\n",
        "greet",
        mode="snippet",
        snippet="print(greet('bob'))",
    )
    assert r.status == "ok", r
    assert r.result == "hello bob\n"
    assert r.stdout == "hello bob\n"


def test_prints_are_captured_beside_the_result(backend: str) -> None:
    r = run(backend, "def f(n):\n    for i in range(n):\n        print('line', i)\n    return n\n", args={"n": 3})
    assert r.status == "ok", r
    assert r.result == 3
    assert r.stdout == "line 0\nline 1\nline 2\n"


def test_result_crosses_as_json_types(backend: str) -> None:
    source = "def f():\n    return {'t': (1, (2, 3)), 'l': [None, True, 1.5, 'x'], 'd': {'inner': (4,)}}\n"
    r = run(backend, source)
    assert r.status == "ok", r
    assert r.result == {"t": [1, [2, 3]], "l": [None, True, 1.5, "x"], "d": {"inner": [4]}}
    # Nothing but JSON types anywhere in the value.
    assert json.loads(json.dumps(r.result)) == r.result
    assert type(r.result["t"]) is list and type(r.result["t"][1]) is list


def test_a_result_that_is_not_json_is_an_error(backend: str) -> None:
    r = run(backend, "def f():\n    return float('nan')\n")
    assert r.status == "error", r
    assert r.error is not None and r.error.type


def test_tool_exception_is_an_error_with_type_and_message(backend: str) -> None:
    r = run(
        backend,
        "def f(x):\n    if x < 0:\n        raise ValueError('x must not be negative: ' + str(x))\n    return x\n",
        args={"x": -3},
    )
    assert r.status == "error", r
    assert r.result is None
    assert r.error is not None
    assert r.error.type == "ValueError"
    assert "x must not be negative: -3" in r.error.message


def test_wrong_arguments_are_an_error(backend: str) -> None:
    r = run(backend, "def f(x):\n    return x\n", args={"y": 1})
    assert r.status == "error", r
    assert r.error is not None and r.error.type == "TypeError"


def test_wall_limit(backend: str) -> None:
    # A busy loop under a generous CPU limit: only the wall clock can stop it.
    r = run(
        backend, "def f():\n    n = 0\n    while True:\n        n += 1\n", limits=Limits(cpu=30, wall=1, memory=128)
    )
    assert r.status == "limit", r
    assert r.limit == "wall"
    assert r.result is None


def test_cpu_limit(backend: str) -> None:
    r = run(
        backend, "def f():\n    n = 0\n    while True:\n        n += 1\n", limits=Limits(cpu=1, wall=20, memory=128)
    )
    assert r.status == "limit", r
    assert r.limit == "cpu"


def test_cpu_limit_stops_a_loop_inside_c(backend: str) -> None:
    # One C call that never returns to the interpreter: in-process timers
    # cannot interrupt it, only the OS limit can.
    r = run(backend, "def f():\n    return sum(range(10 ** 12))\n", limits=Limits(cpu=1, wall=20, memory=128))
    assert r.status == "limit", r
    assert r.limit in ("cpu", "wall")


def test_memory_limit(backend: str) -> None:
    r = run(backend, "def f():\n    return len([0] * (200 * 2 ** 20))\n", limits=Limits(cpu=5, wall=20, memory=64))
    assert r.status == "limit", r
    assert r.limit == "memory"


def test_small_tools_run_under_a_small_memory_limit(backend: str) -> None:
    r = run(backend, "def f():\n    return len([0] * 100000)\n", limits=Limits(memory=32))
    assert r.status == "ok", r
    assert r.result == 100000


def test_output_limit_on_the_result(backend: str) -> None:
    r = run(backend, "def f():\n    return 'x' * (256 * 1024)\n", limits=Limits(output=64))
    assert r.status == "limit", r
    assert r.limit == "output"


def test_output_limit_on_prints(backend: str) -> None:
    r = run(
        backend,
        "def f():\n    for i in range(5000):\n        print('y' * 100)\n    return 1\n",
        limits=Limits(output=64),
    )
    assert r.status == "limit", r
    assert r.limit == "output"


def test_duration_is_measured(backend: str) -> None:
    quick = run(backend, "def f():\n    return 1\n")
    slow = run(backend, "def f():\n    n = 0\n    while True:\n        n += 1\n", limits=Limits(cpu=30, wall=1))
    assert quick.status == "ok" and slow.status == "limit"
    assert quick.duration_ms > 0
    # The wall-limited call lasted at least its wall limit.
    assert slow.duration_ms >= 1000


def test_reply_shape_is_the_same_on_every_backend(backend: str) -> None:
    results = [
        run(backend, "def f():\n    return [1]\n"),
        run(backend, "def f():\n    raise KeyError('k')\n"),
        run(backend, "def f():\n    return 'z' * 200000\n", limits=Limits(output=16)),
    ]
    assert [r.status for r in results] == ["ok", "error", "limit"]
    for r in results:
        dumped = r.to_json()
        # No backend-specific key: what only one backend knows goes in "environment" (strings).
        assert set(dumped) == {
            "status",
            "result",
            "error",
            "limit",
            "stdout",
            "backend",
            "duration_ms",
            "environment",
            "layers",
        }
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in dumped["environment"].items())
        assert dumped["backend"] == backend
        assert isinstance(dumped["stdout"], str)
        if r.error is not None:
            assert set(dumped["error"]) == {"type", "message", "line"}


@pytest.mark.parametrize("value", [0, -1.5, "", [], {}, None, [[[]]], {"a": {"b": {"c": [1, "2"]}}}])
def test_values_round_trip(backend: str, value) -> None:
    r = run(backend, "def f(v):\n    return v\n", args={"v": value})
    assert r.status == "ok", r
    assert r.result == value


# -- one wire, outcomes from facts (issue 7) ------------------------------------------


def test_a_lone_surrogate_comes_back_as_a_replacement_character(backend: str) -> None:
    r = run(backend, "def f():\n    print('p' + chr(0xDC80))\n    return ['a' + chr(0xD800), {chr(0xDFFF): 1}]\n")
    assert r.status == "ok", r
    assert r.result == ["a\ufffd", {"\ufffd": 1}]
    assert r.stdout == "p\ufffd\n"


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_a_hand_raised_memory_error_is_the_tools_error(backend: str, policy: str) -> None:
    # The restricted policy keeps MemoryError for itself (tool code cannot
    # raise it); plain tools can, and the host then sees no memory used.
    r = run(backend, "def f():\n    raise MemoryError('not really')\n", policy=policy)
    assert r.status in ("error", "blocked") and r.limit is None, r


def test_a_hand_raised_blocking_io_error_is_the_tools_error(backend: str) -> None:
    source = "def f():\n    raise BlockingIOError(11, 'Resource temporarily unavailable')\n"
    r = run(backend, source, policy="plain")
    assert (r.status, r.limit, r.error and r.error.type) == ("error", None, "BlockingIOError"), r
