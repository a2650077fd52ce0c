"""Human review (issue 18): the review setting, which versions need
approval, signed approvals and rejections, and the gate every call passes.
Real Ed25519 keys are made in each test; the sandbox is a FakeBackend (what
is under test is the registry's bookkeeping, not isolation)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry.attest import generate_key, load_signer, review_statement, sign_statement
from toolcrib.registry.errors import InvalidInput, NotFound, PolicyRefused
from toolcrib.registry.models import ProvenanceInput
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

SOURCE = "def double(x: int) -> int:\n    return 2 * x\n"
TESTS = [{"args": {"x": 2}, "expected": 4}]


@pytest.fixture
def registry_backends() -> dict[str, Any]:
    return {"restricted": FakeBackend(name="restricted")}


@pytest.fixture
def key(tmp_path: Path, reg: Registry) -> Path:
    """A reviewer key made now and trusted by `reg`."""
    path = tmp_path / "keys" / "reviewer"
    made = generate_key(path, name="alice")
    assert reg.trust_key(made) is True
    return path


def _made_by_model(reg: Registry, source: str = SOURCE, generator: str = "gpt-4o") -> str:
    ref = reg.add(source, tests=TESTS, provenance=ProvenanceInput(generator=generator)).tool.ref
    assert reg.verify(ref).status == "verified"
    return ref


def test_new_registry_requires_review_of_model_made_versions(reg: Registry) -> None:
    assert reg.review_mode() == "models"
    ref = _made_by_model(reg)
    with pytest.raises(PolicyRefused, match=rf"awaits review .*toolcrib approve {ref}"):
        reg.call(ref, {"x": 3})
    # allow_unverified is about tests, not review: it opens no door.
    with pytest.raises(PolicyRefused, match="awaits review"):
        reg.call(ref, {"x": 3}, allow_unverified=True)
    assert reg.servable() == []
    refused = reg.audit(event="call")[-1]
    assert refused.details["status"] == "refused" and "awaits review" in refused.details["reason"]
    [item] = reg.review_queue()
    assert item.ref == ref and "gpt-4o" in item.why


def test_a_human_made_version_needs_no_review_under_models(reg: Registry) -> None:
    ref = _made_by_model(reg, generator="human")
    assert reg.call(ref, {"x": 3}).result == 6
    assert reg.review_queue() == []


def test_review_all_holds_back_every_version_and_none_holds_back_nothing(reg: Registry) -> None:
    ref = _made_by_model(reg, generator="human")
    assert reg.set_review("all") is True
    with pytest.raises(PolicyRefused, match="review is 'all'"):
        reg.call(ref, {"x": 1})
    assert reg.set_review("none") is True
    assert reg.call(ref, {"x": 1}).result == 2
    changes = [e.details for e in reg.audit(event="setting") if e.details.get("key") == "review"]
    assert [c["value"] for c in changes] == ["all", "none"]
    with pytest.raises(InvalidInput):
        reg.set_review("some")


def test_signed_approval_lets_the_version_run_and_be_served(reg: Registry, key: Path) -> None:
    ref = _made_by_model(reg)
    decision = reg.approve(ref, key=key, note="read it, fine")
    assert decision.decision == "approved" and decision.keyid is not None
    assert reg.call(ref, {"x": 3}).result == 6
    assert [f"{n}@{v}" for n, v, _ in reg.servable()] == [ref]
    entry = reg.audit(event="review")[-1]
    assert entry.tool == ref and entry.actor == "tester"
    assert entry.details["decision"] == "approved" and entry.details["note"] == "read it, fine"
    [(checked, problem)] = reg.verify_attestations(ref)
    assert problem is None and checked.envelope is not None
    statement = json.loads(__import__("base64").b64decode(checked.envelope["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == reg.get(ref).sha256
    assert statement["predicate"]["decision"] == "approved"


def test_an_unapproved_new_version_leaves_the_approved_one_served(reg: Registry, key: Path) -> None:
    first = _made_by_model(reg)
    reg.approve(first, key=key)
    second = _made_by_model(reg, SOURCE.replace("2 * x", "x + x"))
    assert [f"{n}@{v}" for n, v, _ in reg.servable()] == [first]
    with pytest.raises(PolicyRefused, match="awaits review"):
        reg.call(second, {"x": 3})


def test_approval_needs_a_trusted_key(reg: Registry, tmp_path: Path) -> None:
    ref = _made_by_model(reg)
    stranger = tmp_path / "stranger"
    generate_key(stranger, name="mallory")
    with pytest.raises(PolicyRefused, match="not trusted"):
        reg.approve(ref, key=stranger)
    with pytest.raises(PolicyRefused, match="awaits review"):
        reg.call(ref, {"x": 1})


def test_untrusting_a_key_withdraws_its_approvals(reg: Registry, key: Path) -> None:
    ref = _made_by_model(reg)
    decision = reg.approve(ref, key=key)
    assert decision.keyid
    reg.untrust_key(decision.keyid[:12])
    with pytest.raises(PolicyRefused):
        reg.call(ref, {"x": 1})
    with pytest.raises(NotFound):
        reg.untrust_key("00000000")


def test_rejection_refuses_and_names_the_reason(reg: Registry, key: Path) -> None:
    ref = _made_by_model(reg)
    with pytest.raises(InvalidInput, match="needs a reason"):
        reg.reject(ref, "  ")
    reg.reject(ref, "doubles negative numbers wrongly", key=key)
    with pytest.raises(PolicyRefused, match="rejected"):
        reg.call(ref, {"x": 1})
    assert reg.review_queue() == []
    [d] = reg.decisions(ref)
    assert d.decision == "rejected" and d.note == "doubles negative numbers wrongly"


@pytest.mark.parametrize("why", ["unverified", "yanked", "not queued", "decided"])
def test_approve_refuses_what_is_not_waiting(reg: Registry, key: Path, why: str) -> None:
    if why == "unverified":
        ref = reg.add(SOURCE, tests=TESTS, provenance=ProvenanceInput(generator="m")).tool.ref
        match = "unverified"
    elif why == "yanked":
        ref = _made_by_model(reg)
        reg.yank(ref, "bad")
        match = "yanked"
    elif why == "not queued":
        ref = _made_by_model(reg, generator="human")
        match = "not in the review queue"
    else:
        ref = _made_by_model(reg)
        reg.approve(ref, key=key)
        match = "approved already"
    with pytest.raises(PolicyRefused, match=match) as caught:
        reg.approve(ref, key=key)
    assert caught.value.exit_code == 4


def test_existing_registry_migrates_to_review_none(tmp_path: Path) -> None:
    """A registry made before review keeps calling what it called."""
    from toolcrib.registry.migrations import apply_migrations
    from toolcrib.registry.store import open_database

    path = tmp_path / "old.db"
    db = open_database(path)
    apply_migrations(db, stop_before="m007_review")
    db.execute(
        "INSERT INTO audit (seq, at, actor, event, tool, details, prev_hash, entry_hash) "
        "VALUES (1, '2026-01-01T00:00:00.000000Z', 'x', 'init', NULL, '{}', ?, ?)",
        ["0" * 64, "1" * 64],
    )
    db.close()
    with Registry(path, backends={"restricted": FakeBackend(name="restricted")}) as old:
        assert old.review_mode() == "none"
        ref = _made_by_model(old)
        assert old.call(ref, {"x": 2}).result == 4


def test_a_statement_signed_by_the_key_verifies_only_for_its_digest(tmp_path: Path) -> None:
    from toolcrib.registry.attest import verify_envelope
    from toolcrib.registry.errors import VerificationFailed

    signer, pub = load_signer(generate_key(tmp_path / "k", name="a") and tmp_path / "k", name="a")
    st = review_statement(ref="t@1.0.0", sha256="a" * 64, decision="approved", reviewer="a", note=None, at="now")
    env = sign_statement(st, signer)
    assert verify_envelope(env, [pub], sha256="a" * 64).decision == "approved"
    with pytest.raises(VerificationFailed, match="another digest"):
        verify_envelope(env, [pub], sha256="b" * 64)


def test_call_refusal_reads_no_table_a_pre_review_file_lacks(tmp_path: Path) -> None:
    """The gate tolerates a file whose schema predates review (a call on an
    unmigrated file is refused elsewhere; the gate itself must not crash)."""
    from toolcrib.registry.review import gate

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE versions (id INTEGER PRIMARY KEY)")
    assert gate(conn, 1, "t@1.0.0") is None


def test_an_expired_key_signs_nothing_that_counts(reg: Registry, key: Path) -> None:
    """A key's expiry: an approval it signed at or after it stops counting and
    fails verification naming the expiry; a new approval with it is refused."""
    import dataclasses

    from toolcrib.registry.attest import public_key

    ref = _made_by_model(reg)
    reg.approve(ref, key=key)
    assert reg.call(ref, {"x": 1}).result == 2
    trusted = public_key((key.parent / (key.name + ".pub")).read_text())
    # Compromised since 2000: everything it signed is withdrawn (audited as key-trust).
    assert reg.trust_key(dataclasses.replace(trusted, expires="2000-01-01T00:00:00.000000Z")) is True
    assert reg.audit(event="key-trust")[-1].details["expires"] == "2000-01-01T00:00:00.000000Z"
    with pytest.raises(PolicyRefused, match="awaits review"):
        reg.call(ref, {"x": 1})
    [(_, problem)] = reg.verify_attestations(ref)
    assert problem is not None and "after it expired (2000-01-01" in problem
    second = _made_by_model(reg, SOURCE.replace("2 * x", "x * 2"))
    with pytest.raises(PolicyRefused, match="expired"):
        reg.approve(second, key=key)


@pytest.mark.parametrize("mode", ["models", "all"])
def test_the_sql_rule_holds_back_exactly_what_the_call_gate_refuses(reg: Registry, key: Path, mode: str) -> None:
    """servable() leaves out store_review.held_back_rows (SQL); a call asks
    review.gate (Python): the two must be one rule, edge cases included."""
    from toolcrib.registry import review

    made: list[str] = []
    variants: list[tuple[str | None, dict[str, str], str]] = [
        ("human", {}, "tester"),
        (" HUMAN\t", {}, "tester"),
        ("", {}, "tester"),
        (None, {}, "tester"),
        ("gpt-4o", {}, "tester"),
        (None, {"latm.task": ""}, "tester"),
        (None, {"latm.task": "sorting"}, "tester"),
        (None, {}, "mcp:agent/1"),
        (None, {}, "MCP:agent/1"),
    ]
    for i, (generator, metadata, actor) in enumerate(variants):
        source = SOURCE.replace("double", f"double_{i}")
        with reg.acting_as(actor):
            ref = reg.add(
                source, tests=TESTS, provenance=ProvenanceInput(generator=generator, metadata=metadata)
            ).tool.ref
        reg.verify(ref)
        made.append(ref)
    reg.set_review(mode)
    reg.approve(made[4], key=key)  # one approved: it runs whatever the rule
    conn = reg.db.conn
    held = review.held_back_ids(conn)
    for ref in made:
        row = reg._resolve(ref)
        assert (row.id in held) == (not review.allows(conn, row.id, ref)), (mode, ref)
    expected = set(made) if mode == "all" else {made[i] for i in (6, 7)}
    assert {r for r in made if not review.allows(conn, reg._resolve(r).id, r)} == expected - {made[4]}
