"""Provenance as stored, and as an in-toto Statement v1 / SLSA-style predicate."""

from __future__ import annotations

import hashlib

import pytest
from toolcrib.registry import InvalidInput, NotFound, ProvenanceInput, Registry

V1 = 'def area(w: float, h: float) -> float:\n    """Area of a rectangle."""\n    return w * h\n'
V2 = 'def area(w: float, h: float, scale: float = 1.0) -> float:\n    """Area of a scaled rectangle."""\n    return w * h * scale\n'
PROMPT = "System: you are a tool maker.\nUser: write a function for the area of a rectangle.\n"


@pytest.fixture
def registry_actor() -> str:
    """The shared `reg` records this pipeline as the actor."""
    return "maker-pipeline"


def test_stored_provenance(reg: Registry) -> None:
    one = reg.add(V1, provenance=ProvenanceInput(generator="gpt-4o", prompt=PROMPT, metadata={"run": "17"})).tool
    prov = one.provenance
    assert prov.generator == "gpt-4o"
    assert prov.prompt == PROMPT
    assert prov.prompt_sha256 == hashlib.sha256(PROMPT.encode()).hexdigest()
    assert prov.source_sha256 == hashlib.sha256(V1.encode()).hexdigest()
    assert prov.registered_by == "maker-pipeline"
    assert prov.registered_at == one.created_at and prov.registered_at.endswith("Z")
    assert prov.metadata == {"run": "17"}
    assert prov.parent is None and prov.parent_sha256 is None
    two = reg.add(V2, provenance=ProvenanceInput(generator="gpt-4o-mini", parent="area")).tool
    assert (two.provenance.parent, two.provenance.parent_sha256) == ("area@1.0.0", one.sha256)
    assert two.provenance.prompt is None and two.provenance.prompt_sha256 is None


def test_parent_must_exist(reg: Registry) -> None:
    with pytest.raises(NotFound, match="no tool named 'ghost'"):
        reg.add(V1, provenance=ProvenanceInput(parent="ghost@1.0.0"))
    with pytest.raises(InvalidInput, match="invalid reference"):
        reg.add(V1, provenance=ProvenanceInput(parent="not a ref"))
    assert reg.list() == []


def test_in_toto_statement(reg: Registry) -> None:
    one = reg.add(V1, provenance=ProvenanceInput(generator="gpt-4o", prompt=PROMPT, metadata={"run": "17"})).tool
    two = reg.add(V2, provenance=ProvenanceInput(generator="claude", parent=f"area@sha256:{one.sha256[:12]}")).tool
    st = reg.provenance("area@1.1.0")
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    assert st["subject"] == [{"name": "area@1.1.0", "digest": {"sha256": two.sha256}}]
    build = st["predicate"]["buildDefinition"]
    assert isinstance(build["buildType"], str) and build["buildType"].startswith("https://")
    assert build["externalParameters"]["generator"] == "claude"
    assert build["externalParameters"]["entrypoint"] == "area"
    assert build["resolvedDependencies"] == [
        {"name": "parent", "uri": "toolcrib:area@1.0.0", "digest": {"sha256": one.sha256}}
    ]
    run = st["predicate"]["runDetails"]
    assert run["builder"]["id"] == "claude"
    assert run["metadata"]["startedOn"] == two.provenance.registered_at

    first = reg.provenance("area@1.0.0")
    deps = first["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps == [{"name": "prompt", "digest": {"sha256": hashlib.sha256(PROMPT.encode()).hexdigest()}}]
    params = first["predicate"]["buildDefinition"]["externalParameters"]
    assert params["prompt"] == {"sha256": deps[0]["digest"]["sha256"]}
    assert params["metadata"] == {"run": "17"}
    # The prompt text itself never appears in the statement.
    assert "rectangle.\n" not in repr(first)


def test_statement_without_generator(reg: Registry) -> None:
    reg.add(V1)
    st = reg.provenance("area")
    assert st["predicate"]["runDetails"]["builder"]["id"] == "unknown"
    assert st["predicate"]["buildDefinition"]["resolvedDependencies"] == []
