"""Admission items of issue 21: two unrelated tools with the same function
name and signature are refused as a patch of each other (the same check as
for a major bump; --as-new-version still forces it); a star-import prelude
under the restricted policy is refused at add naming the prelude's own line
(under the plain policy it is admitted); a name pushed past 64 characters by
--namespace is refused naming the length, both parts and the room left.
Real registry; nothing runs in a sandbox (add does not verify)."""

from __future__ import annotations

import pytest
from toolcrib.registry import ConflictError, InvalidInput
from toolcrib.registry.errors import AdmissionError

from toolcrib import Registry

WORDS = '''\
def stats(values: list[float]) -> float:
    """Mean of the values."""
    return sum(values) / len(values)
'''
# The same name and signature, and nothing else in common.
OTHER = '''\
def stats(values: list[float]) -> float:
    """Spread: the largest value minus the smallest, zero for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[-1] - ordered[0]
'''
# A real patch of WORDS: a guard added.
PATCH = '''\
def stats(values: list[float]) -> float:
    """Mean of the values (0 for none)."""
    return sum(values) / len(values) if values else 0.0
'''


def test_an_unrelated_tool_is_not_a_silent_patch(reg: Registry) -> None:
    reg.add(WORDS)
    with pytest.raises(ConflictError, match=r"unrelated tool \(stats@1\.0\.0: the same signature but another body\)"):
        reg.add(OTHER)
    assert [t.version for t in reg.history("stats")] == ["1.0.0"]
    assert reg.add(PATCH).tool.version == "1.0.1"
    forced = reg.add(OTHER, as_new_version=True)
    assert forced.tool.version == "1.0.2" and forced.bump == "patch"


def test_a_star_import_prelude_is_refused_under_the_restricted_policy(reg: Registry) -> None:
    prelude = "import math\n\nfrom math import *\n"
    tool = 'def area(r: float) -> float:\n    """Area."""\n    return pi * r * r\n'
    with pytest.raises(AdmissionError) as refused:
        reg.add(tool, prelude=prelude)
    message = str(refused.value)
    assert "the prelude's line 3" in message and "from math import *" in message
    assert refused.value.line is None  # not a line of the tool's source
    assert not reg.has_tool("area")
    assert reg.add(tool, prelude=prelude, policy="plain").tool.policy == "plain"


def test_the_namespace_length_error_names_length_and_prefix(reg: Registry) -> None:
    name = "x" * 60
    source = f'def {name}(a: int) -> int:\n    """Same."""\n    return a\n'
    with pytest.raises(InvalidInput) as refused:
        reg.add(source, namespace="corpus")
    message = str(refused.value)
    assert "namespace 'corpus'" in message and "67 characters" in message and "(6 + 1 + 60)" in message
    assert "at most 3 characters" in message
    assert reg.add(source, namespace="abc").tool.name == "abc_" + name
