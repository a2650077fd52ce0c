"""Signed review decisions across export and import (issue 18): an approval
travels with its version and counts in the importing registry only when its
signature verifies against a key that registry trusts. Real keys; a
FakeBackend sandbox (bundles and review are bookkeeping)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry.attest import generate_key, public_key, review_statement, sign_statement
from toolcrib.registry.models import ProvenanceInput
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import PolicyRefused, Registry

SOURCE = "def double(x: int) -> int:\n    return 2 * x\n"


def _registry(path: Path) -> Registry:
    return Registry(path, actor="tester", backends={"restricted": FakeBackend(name="restricted")})


@pytest.fixture
def exported(tmp_path: Path) -> tuple[dict[str, Any], Path, str]:
    """A bundle holding a model-made version approved with a key; the key's path."""
    key = tmp_path / "alice"
    made = generate_key(key, name="alice")
    with _registry(tmp_path / "a.db") as a:
        a.trust_key(made)
        ref = a.add(
            SOURCE, tests=[{"args": {"x": 1}, "expected": 2}], provenance=ProvenanceInput(generator="m")
        ).tool.ref
        a.verify(ref)
        a.approve(ref, key=key, note="ok")
        bundle = a.export()
    assert len(bundle["attestations"]) == 1 and bundle["attestations"][0]["ref"] == ref
    return bundle, key, ref


def test_an_import_keeps_an_approval_signed_by_a_trusted_key(tmp_path: Path, exported: Any) -> None:
    bundle, key, ref = exported
    with _registry(tmp_path / "b.db") as b:
        b.trust_key(public_key((key.parent / (key.name + ".pub")).read_text()))
        b.import_bundle(json.loads(json.dumps(bundle)))
        [decision] = b.decisions(ref)
        assert decision.decision == "approved" and decision.origin == "import" and decision.reviewer == "tester"
        b.verify(ref)  # evidence is never imported; the approval is
        assert b.call(ref, {"x": 4}).result == 8
        [(_, problem)] = b.verify_attestations(ref)
        assert problem is None


def test_an_import_drops_an_approval_by_a_key_it_does_not_trust(tmp_path: Path, exported: Any) -> None:
    bundle, _key, ref = exported
    with _registry(tmp_path / "c.db") as c:
        c.import_bundle(bundle)
        assert c.decisions(ref) == []
        dropped = c.audit(event="review-dropped")[-1]
        assert "no trusted reviewer key" in dropped.details["reason"]
        c.verify(ref)
        with pytest.raises(PolicyRefused, match="awaits review"):
            c.call(ref, {"x": 1})


@pytest.mark.parametrize("forgery", ["another digest", "altered payload", "unknown key"])
def test_forged_attestations_are_dropped_naming_why(tmp_path: Path, exported: Any, forgery: str) -> None:
    bundle, key, ref = exported
    bundle = copy.deepcopy(bundle)
    carried = bundle["attestations"][0]
    if forgery == "another digest":
        from toolcrib.registry.attest import load_signer

        signer, _ = load_signer(key, name="alice")
        statement = review_statement(ref=ref, sha256="0" * 64, decision="approved", reviewer="x", note=None, at="t")
        carried["envelope"] = sign_statement(statement, signer)
        expected = "another digest"
    elif forgery == "altered payload":
        statement = json.loads(base64.b64decode(carried["envelope"]["payload"]))
        statement["predicate"]["reviewer"] = "mallory"
        carried["envelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        expected = "does not verify"
    else:
        from toolcrib.registry.attest import load_signer

        other = tmp_path / "mallory"
        generate_key(other, name="mallory")
        signer, _ = load_signer(other, name="mallory")
        statement = json.loads(base64.b64decode(carried["envelope"]["payload"]))
        carried["envelope"] = sign_statement(statement, signer)
        expected = "unknown key"
    with _registry(tmp_path / "d.db") as d:
        d.trust_key(public_key((key.parent / (key.name + ".pub")).read_text()))
        d.import_bundle(bundle)
        assert d.decisions(ref) == []
        assert expected in d.audit(event="review-dropped")[-1].details["reason"]
