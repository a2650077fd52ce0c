"""Annotations are evaluated as Python evaluates them (issue 21): at def
time, under both policies, so ``def f(x: Image)`` with ``Image`` undefined
raises NameError in the sandbox as in plain Python, while string
annotations, typing's names, builtin generics and ``X | None`` work. The
tool's code used to inherit the sandbox's own ``from __future__ import
annotations`` (execute.py's, and RestrictedPython's compile module's) and
its annotations were never evaluated. On the real restricted backend."""

from __future__ import annotations

import pytest
from toolcrib.sandbox import Job, Limits

TYPED = """\
from typing import Dict, List, Optional
import datetime


def f(x: {ann} = None) -> {ann}:
    return 1
"""


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_an_undefined_annotation_is_a_name_error(rb, policy: str) -> None:
    result = rb.run(Job(source="def f(x: Image) -> int:\n    return 1\n", entrypoint="f", args={"x": 1}, policy=policy))
    assert result.status == "error"
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("NameError", "name 'Image' is not defined")


@pytest.mark.parametrize("policy", ["restricted", "plain"])
@pytest.mark.parametrize(
    "ann", ["'Later'", "Optional[str]", "Dict[str, List[int]]", "list[int]", "int | None", "datetime.date"]
)
def test_annotations_python_accepts_still_run(rb, policy: str, ann: str) -> None:
    result = rb.run(Job(source=TYPED.format(ann=ann), entrypoint="f", args={}, policy=policy, limits=Limits()))
    assert result.status == "ok", result.error
    assert result.result == 1


def test_annotations_are_evaluated_once_at_def_time(rb) -> None:
    source = """\
seen = []


def note(kind):
    seen.append(kind)
    return int


def f(x: note("param") = 0) -> note("return"):
    return len(seen)
"""
    result = rb.run(Job(source=source, entrypoint="f", args={}, policy="plain"))
    assert result.status == "ok" and result.result == 2
