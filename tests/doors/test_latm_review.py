"""`make` after a reviewer rejected the task's previous tool (issue 18): the
reviewer's reason is in the model's first prompt of the next make, and the
new version records which rejection it answers. Scripted replies, a real
registry and real Ed25519 keys; the sandbox is a FakeBackend (make's
bookkeeping is under test, not isolation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from latm_tasks import SORT, SORT_FUNCTION, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, sort_wrap, write_json
from toolcrib.registry.attest import generate_key
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import PolicyRefused, Registry
from toolcrib.latm import ReplayModel, load_task, make

REASON = "it keeps duplicate words; the task wants each word once"


@pytest.fixture(autouse=True)
def registry_backends(fake_sandbox: FakeBackend) -> dict[str, FakeBackend]:
    return {"restricted": fake_sandbox}


def _first_prompt(transcript: str) -> str:
    messages = json.loads(Path(transcript).read_text())["messages"]
    return str(next(m["content"] for m in messages if m["role"] == "user"))


def test_the_reviewers_reason_reaches_the_next_make_and_is_answered(reg: Registry, tmp_path: Path) -> None:
    task = load_task(write_json(tmp_path / "word_sorting.json", SORT))
    first = make(reg, task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]))
    assert first.status == "made" and first.tool == "sort_words@1.0.0"
    assert REASON not in _first_prompt(first.transcript)
    with pytest.raises(PolicyRefused, match="awaits review"):
        reg.call(first.tool, snippet="ans = 1")
    key = tmp_path / "reviewer"
    reg.trust_key(generate_key(key, name="alice"))
    rejected = reg.reject(first.tool, REASON, key=key)

    fixed = SORT_FUNCTION.replace("return sorted(words)", "return sorted(set(words))")
    proposal = SORT_PROPOSAL.replace(SORT_FUNCTION, fixed)
    second = make(reg, task, ReplayModel([proposal, SORT_TESTS, sort_wrap(fixed)]))
    assert second.status == "made", second.error
    prompt = _first_prompt(second.transcript)
    assert REASON in prompt and "sort_words@1.0.0" in prompt and "tester" in prompt
    answered = reg.get(second.tool).provenance.metadata["latm.answers_rejection"]
    assert answered == f"sort_words@1.0.0 review {rejected.id} by tester"
    # The new version waits for review too.
    assert [item.ref for item in reg.review_queue()] == [second.tool]
