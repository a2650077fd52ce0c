"""Export bundles and all-or-nothing, digest-checked import.

Bundles are the registry's bookkeeping, not the sandbox's: both registries
verify on an injected `FakeBackend` (plain exec of this module's own tools).
A bundle's packages meeting the real jail is tests/attacks/test_lock_jail.py's."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry import BundleError, ProvenanceInput, Registry
from toolcrib.registry.versions import canonical_json, sha256_text
from toolcrib.sandbox.fake import FakeBackend

ADD = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return a + b\n'
ADD2 = 'def add(a: int, b: int, c: int = 0) -> int:\n    """Add up to three integers."""\n    return a + b + c\n'
NEG = 'def neg(x: float) -> float:\n    """Negate a number."""\n    return -x\n'
TESTS = [{"args": {"a": 1, "b": 2}, "expected": 3}]


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend(name="restricted")


@pytest.fixture
def source(tmp_path: Path, fake: FakeBackend) -> Iterator[Registry]:
    with Registry(tmp_path / "src.db", actor="exporter", backends={"restricted": fake}) as reg:
        reg.add(
            ADD, tests=TESTS, provenance=ProvenanceInput(generator="gpt-4o", prompt="write add", metadata={"k": "v"})
        )
        reg.add(ADD2, provenance=ProvenanceInput(parent="add"))
        reg.add(NEG, tests=[{"args": {"x": 1.5}, "expected": -1.5}])
        reg.verify("add@1.0.0")
        reg.deprecate("add@1.0.0", "use 1.1.0")
        reg.yank("neg", "sign bug")
        yield reg


@pytest.fixture
def target(tmp_path: Path, fake: FakeBackend) -> Iterator[Registry]:
    with Registry(tmp_path / "dst.db", actor="importer", backends={"restricted": fake}) as reg:
        yield reg


def _roundtrip(bundle: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(bundle))


def test_export_shape(source: Registry) -> None:
    bundle = source.export()
    assert bundle["format"] == "toolcrib.bundle/v1"
    assert bundle["exported_at"].endswith("Z")
    assert [(t["name"], t["version"]) for t in bundle["tools"]] == [
        ("add", "1.0.0"),
        ("add", "1.1.0"),
        ("neg", "1.0.0"),
    ]
    first = bundle["tools"][0]
    assert set(first) == {
        "name",
        "version",
        "sha256",
        "entrypoint",
        "source",
        "signature",
        "tests",
        "limits",
        "policy",
        "provenance",
        "deprecated",
        "yanked",
        "created_at",
    }
    assert first["policy"] == "restricted"
    assert first["provenance"]["prompt"] == "write add"
    assert first["deprecated"] == "use 1.1.0"
    assert bundle["tools"][2]["yanked"] == "sign bug"
    assert [t["version"] for t in source.export(["add@1.1.0"])["tools"]] == ["1.0.0", "1.1.0"]
    assert json.loads(canonical_json(bundle)) == bundle  # pure JSON


def test_round_trip(source: Registry, target: Registry) -> None:
    results = target.import_bundle(_roundtrip(source.export()))
    assert [(r.tool.ref, r.created, r.bump) for r in results] == [
        ("add@1.0.0", True, "explicit"),
        ("add@1.1.0", True, "explicit"),
        ("neg@1.0.0", True, "explicit"),
    ]
    for ref in ("add@1.0.0", "add@1.1.0", "neg@1.0.0"):
        mine, theirs = target.get(ref), source.get(ref)
        assert mine.sha256 == theirs.sha256
        assert mine.provenance == theirs.provenance
        assert (mine.source, mine.signature, mine.tests) == (theirs.source, theirs.signature, theirs.tests)
        assert (mine.deprecated, mine.yanked) == (theirs.deprecated, theirs.yanked)
        # Evidence is not trusted across registries.
        assert mine.status == "unverified"
    assert source.get("add@1.0.0").status == "verified"
    assert target.get("add").version == "1.1.0"
    imports = target.audit(event="import")
    assert [(e.tool, e.actor) for e in imports] == [
        ("add@1.0.0", "importer"),
        ("add@1.1.0", "importer"),
        ("neg@1.0.0", "importer"),
    ]
    assert target.audit_verify().ok
    # A second import finds everything present and writes nothing.
    again = target.import_bundle(_roundtrip(source.export()))
    assert [(r.created, r.bump) for r in again] == [(False, "existing")] * 3
    assert len(target.audit()) == 4


def _refused(target: Registry, bundle: dict[str, Any], match: str) -> None:
    before = len(target.audit())
    with pytest.raises(BundleError, match=match):
        target.import_bundle(bundle)
    assert len(target.audit()) == before


def test_tampered_source_refuses_everything(source: Registry, target: Registry) -> None:
    bundle = _roundtrip(source.export())
    bundle["tools"][1]["source"] = bundle["tools"][1]["source"].replace("a + b + c", "a - b - c")
    _refused(target, bundle, r"tools\[1\] \(add@1\.1\.0\): sha256 mismatch")
    assert target.list(include_yanked=True) == []


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("tests", 0, "expected"), 4, "sha256 mismatch"),
        (("signature", "description"), "lies", "sha256 mismatch"),
        (("entrypoint",), "neg", r"tools\[0\]"),
        (("sha256",), "0" * 64, "sha256 mismatch"),
        (("provenance", "prompt"), "another prompt", "prompt_sha256"),
        (("provenance", "source_sha256"), "1" * 64, "source_sha256"),
        (("version",), "1.0", r"invalid version"),
        (("name",), "bad name", r"tools\[0\]"),
        (("provenance", "registered_by"), None, r"tools\[0\].*registered_by"),
        (("surprise",), 1, r"tools\[0\].*surprise"),
    ],
)
def test_tampered_entries_are_refused(
    source: Registry, target: Registry, path: tuple[Any, ...], value: Any, match: str
) -> None:
    bundle = _roundtrip(source.export())
    node = bundle["tools"][0]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _refused(target, bundle, match)
    assert target.list(include_yanked=True) == []


def test_malformed_bundles(source: Registry, target: Registry) -> None:
    good = _roundtrip(source.export())
    _refused(target, [], "JSON object")  # type: ignore[arg-type]
    _refused(target, {**good, "format": "toolcrib.bundle/v0"}, "not a toolcrib bundle")
    _refused(target, {**good, "tools": {}}, "must be a list")
    _refused(target, {**good, "tools": [1]}, r"tools\[0\]: an entry is a JSON object")
    twice = copy.deepcopy(good)
    twice["tools"].append(copy.deepcopy(twice["tools"][0]))
    _refused(target, twice, "appears twice")
    assert target.list(include_yanked=True) == []


def test_same_version_other_content_is_refused(source: Registry, target: Registry) -> None:
    target.add(NEG.replace("-x", "0 - x"))  # neg@1.0.0 here, different content
    before = len(target.audit())
    with pytest.raises(BundleError, match="neg@1.0.0 already exists here with different content"):
        target.import_bundle(_roundtrip(source.export()))
    # The add versions that came before the clash in the bundle are not imported either.
    assert [t.ref for t in target.list(include_yanked=True)] == ["neg@1.0.0"]
    assert len(target.audit()) == before


def test_existing_content_is_skipped(source: Registry, target: Registry) -> None:
    target.add(ADD, tests=TESTS)
    results = target.import_bundle(_roundtrip(source.export(["add"])))
    assert [(r.tool.ref, r.created) for r in results] == [("add@1.0.0", False), ("add@1.1.0", True)]
    assert target.get("add@1.0.0").provenance.registered_by == "importer"  # the local one was kept
    assert sha256_text(target.get("add@1.1.0").source) == target.get("add@1.1.0").provenance.source_sha256


def test_imported_versions_can_be_verified_locally(source: Registry, target: Registry) -> None:
    target.import_bundle(_roundtrip(source.export(["add"])))
    assert target.verify("add@1.0.0").status == "verified"
    assert target.get("add@1.0.0").status == "verified"
