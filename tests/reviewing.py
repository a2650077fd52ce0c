"""Test helper: a reviewer with a real Ed25519 key (made in the test's own
directory) approves what waits for review (issue 18), for tests whose
subject comes after review (the tool user, the dispatcher)."""

from __future__ import annotations

from pathlib import Path

from toolcrib.registry.attest import generate_key

from toolcrib import Registry


def approve_waiting(reg: Registry, key_dir: Path) -> list[str]:
    """Trust a new key and approve every verified version in the queue; the refs approved."""
    key = key_dir / "reviewer_ed25519"
    if not key.exists():
        reg.trust_key(generate_key(key, name="reviewer"))
    approved = []
    for item in reg.review_queue():
        if item.status == "verified":
            reg.approve(item.ref, key=key, note="approved by the test's reviewer")
            approved.append(item.ref)
    return approved
