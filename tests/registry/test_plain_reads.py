"""The lean reads of `list` and `show` (registry/plain_reads.py, issue 21)
read the same rows as `Registry` does and make of them the same values as
the models: every field of every version `show` prints, its verification,
usage, the maxima and checks, and every page `list` prints, on a registry
with varied versions (tests of every kind, limits, a prelude, provenance,
deprecated, yanked, failed, several versions, calls of each outcome)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry import InvalidInput, ProvenanceInput, Registry
from toolcrib.registry.plain_reads import PlainReader
from toolcrib.sandbox import Limits
from toolcrib.sandbox.fake import FakeBackend


@pytest.fixture
def registry_backends() -> dict[str, Any]:
    return {"restricted": FakeBackend(name="restricted")}


SORT = '''
def sort_words(words: list[str], reverse: bool = False) -> list[str]:
    """Sort words.

    Second line."""
    return sorted(words, reverse=reverse)
'''
HALF = '''
def half(x: float) -> float:
    """Half of x."""
    return SCALE * x
'''


@pytest.fixture
def filled(reg: Registry) -> Iterator[Registry]:
    reg.add(
        SORT,
        tests=[
            {"name": "two", "args": {"words": ["b", "a"]}, "expected": ["a", "b"]},
            {"snippet": "ans = sort_words(['c', 'a'])", "expected": ["a", "c"]},
        ],
        provenance=ProvenanceInput(generator="gpt-x", prompt="sort them", metadata={"task": "sorting"}),
        limits=Limits(cpu=1, memory=128),
    )
    reg.add(SORT.replace("sorted(words", "sorted(set(words)"), tests=[{"args": {"words": []}, "expected": []}])
    reg.add(
        HALF,
        prelude="SCALE = 0.5\n",
        tests=[{"args": {"x": 1.0}, "expected": 0.5000000001, "comparator": "float", "tolerance": 1e-6}],
        provenance=ProvenanceInput(parent="sort_words@1.0.0"),
    )
    reg.add(
        'def zed(b: int, a: int) -> int:\n    """Z."""\n    return a - b\n',
        tests=[{"args": {"a": 1, "b": 2}, "expected": 0}],
    )
    reg.add('def gone() -> int:\n    """Gone."""\n    return 1\n')
    reg.add("def quiet() -> int:\n    return 1\n")
    reg.verify("sort_words@1.0.0")
    reg.verify("half")
    reg.verify("zed")  # fails: -1 is not 0
    reg.deprecate("half", "use sort_words")
    reg.yank("gone", "broken")
    for args in ({"words": ["b", "a"]}, {"words": ["x"]}, {"words": 3}):
        try:
            reg.call("sort_words@1.0.0", args)
        except Exception:  # noqa: BLE001 - a refused call is audited too; only the counts matter here
            pass
    reg.call("half", {"x": 2.0})
    yield reg


def _plain(registry_path: Path) -> Iterator[PlainReader]:
    conn = sqlite3.connect(registry_path)
    try:
        yield PlainReader(conn)
    finally:
        conn.close()


@pytest.fixture
def reader(filled: Registry, registry_path: Path) -> Iterator[PlainReader]:
    yield from _plain(registry_path)


def _listed(rows: Iterator[Any]) -> list[tuple[Any, ...]]:
    return [(t.name, t.version, t.status, t.deprecated, t.yanked, t.signature.description) for t in rows]


@pytest.mark.parametrize(
    "page",
    [
        {},
        {"include_yanked": True},
        {"limit": 2},
        {"limit": 2, "offset": 1},
        {"after": "half", "limit": 10},
        {"status": "verified"},
        {"status": "failed", "include_yanked": True},
        {"name_glob": "*o*"},
        {"limit": 0},
    ],
)
def test_a_page_of_list_is_the_registrys(filled: Registry, reader: PlainReader, page: dict[str, Any]) -> None:
    expected = _listed(filled.iter_list(**page))
    assert _listed(reader.listed(**page)) == expected
    if not page:
        assert [row[0] for row in expected] == ["half", "quiet", "sort_words", "zed"]


def test_bad_pages_are_refused_alike(filled: Registry, reader: PlainReader) -> None:
    for page in ({"status": "nope"}, {"limit": -1}, {"offset": -1}):
        with pytest.raises(InvalidInput) as theirs:
            list(filled.iter_list(**page))
        with pytest.raises(InvalidInput) as ours:
            reader.listed(**page)
        assert ours.value.message == theirs.value.message


@pytest.mark.parametrize(
    "ref", ["sort_words", "sort_words@1.0.0", "half", "zed", "gone@1.0.0", "quiet", "sort_words@sha256:"]
)
def test_show_reads_what_the_registry_reads(filled: Registry, reader: PlainReader, ref: str) -> None:
    if ref.endswith("sha256:"):
        ref += filled.get("sort_words@1.0.0").sha256[:10]
    shown = reader.shown(ref)
    tool = filled.get(ref)
    assert dataclasses.asdict(shown.tool) == tool.model_dump()
    assert list(shown.tool.signature.input_schema["properties"]) == list(tool.signature.input_schema["properties"])
    assert (shown.tool.ref, shown.tool.requires) == (tool.ref, tool.requires)
    evidence = filled.verification(tool.ref)
    if evidence is None:
        assert shown.evidence is None
    else:
        assert shown.evidence is not None
        assert dataclasses.asdict(shown.evidence) == evidence.model_dump(
            include={"status", "backend", "policy", "layers", "passed", "failed", "verified_at"}
        )
    assert dataclasses.asdict(shown.usage) == filled.usage([tool.ref])[tool.ref].model_dump()
    assert shown.max_limits == filled.max_limits
    assert shown.checks == filled.checks(tool.ref)


def test_the_usage_read_is_of_real_calls(reader: PlainReader) -> None:
    assert reader.shown("sort_words@1.0.0").usage.calls == 3  # refused: a model's tool awaits review
    half = reader.shown("half").usage
    assert (half.calls, half.successes) == (1, 1) and half.median_ms is not None
    assert reader.shown("quiet").usage.calls == 0


def test_a_miss_is_the_registrys_miss(filled: Registry, reader: PlainReader) -> None:
    from toolcrib.registry import NotFound

    for ref in ("sort_word", "sort_words@9.9.9", "gone"):
        try:
            filled.get(ref, allow_yanked=True)
        except NotFound as err:
            with pytest.raises(NotFound) as ours:
                reader.shown(ref)
            assert ours.value.message == err.message
