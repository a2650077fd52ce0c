"""`make --holdout K [--min-accuracy X]` (issue 19): the finished tool
answers task examples the model never saw, in the real sandbox, with
scripted replies; the accuracy is in the provenance and --json, and below
the threshold the make fails with nothing registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from latm_tasks import SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, sort_wrap, write_json

from toolcrib import InvalidInput, Registry
from toolcrib.latm import ReplayModel, make

# Right on every three-word list (the validation examples), wrong on the
# two-word lists held out after them.
THREE_ONLY = '''def sort_words(question):
    """Sort the words listed after 'List:' alphabetically."""
    words = question.split("List:")[1].split()
    if len(words) == 3:
        return sorted(words)
    return words
'''
THREE_ONLY_PROPOSAL = SORT_PROPOSAL.replace(SORT_PROPOSAL.split("```python\n")[1].split("\n# Example")[0], THREE_ONLY)


def _held_out_replies() -> list[str]:
    """The tool user's call snippet for each held-out question (SORT[6:9])."""
    return [f'```python\nret = sort_words("{example["input"]}")\nans = " ".join(ret)\n```' for example in SORT[6:9]]


def test_a_tool_right_on_validation_and_wrong_on_held_out_examples_fails_the_make(reg: Registry, sort_task) -> None:
    model = ReplayModel([THREE_ONLY_PROPOSAL, SORT_TESTS, sort_wrap(THREE_ONLY), *_held_out_replies()])
    result = make(reg, sort_task, model, holdout=3, min_accuracy=0.5)
    assert result.status == "failed" and result.failed_stage == "holdout"
    assert result.holdout is not None
    assert (result.holdout.correct, result.holdout.examples, result.holdout.accuracy) == (1, 3, 0.3333)
    assert [a.correct for a in result.holdout.answers] == [
        False,
        True,
        False,
    ]  # tulip rose, violet lily iris, quartz opal
    assert result.holdout.answers[0].answer == "tulip rose" and result.holdout.answers[0].target == "rose tulip"
    assert "below --min-accuracy 0.5" in (result.error or "")
    assert not reg.has_tool("sort_words")  # nothing registered
    messages = json.loads(Path(result.transcript).read_text())["messages"]
    assert [m["stage"] for m in messages if m["role"] == "assistant"][-3:] == ["holdout"] * 3


def test_the_held_out_accuracy_goes_into_the_provenance(reg: Registry, sort_task) -> None:
    model = ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, *_held_out_replies()])
    result = make(reg, sort_task, model, holdout=3, min_accuracy=0.9)
    assert result.status == "made", result.error
    assert result.holdout is not None and result.holdout.accuracy == 1.0
    recorded = json.loads(reg.get(result.tool or "").provenance.metadata["latm.holdout"])
    assert recorded == {"examples": 3, "correct": 3, "accuracy": 1.0, "min_accuracy": 0.9}


def test_without_a_threshold_a_weak_tool_is_registered_with_its_accuracy(reg: Registry, sort_task) -> None:
    model = ReplayModel([THREE_ONLY_PROPOSAL, SORT_TESTS, sort_wrap(THREE_ONLY), *_held_out_replies()[:2]])
    result = make(reg, sort_task, model, holdout=2)
    assert result.status == "made"
    assert json.loads(reg.get("sort_words").provenance.metadata["latm.holdout"])["accuracy"] == 0.5


def test_holdout_needs_the_examples_and_a_threshold_needs_a_holdout(reg: Registry, sort_task) -> None:
    with pytest.raises(InvalidInput, match="--holdout 4 needs 10"):
        make(reg, sort_task, ReplayModel([]), holdout=4)
    with pytest.raises(InvalidInput, match="needs --holdout K"):
        make(reg, sort_task, ReplayModel([]), min_accuracy=0.5)


def test_cli_make_holdout_json_and_exit_code(tc: Any, tmp_path: Path) -> None:
    task = write_json(tmp_path / "word_sorting.json", SORT)
    replies = write_json(
        tmp_path / "replies.json", [THREE_ONLY_PROPOSAL, SORT_TESTS, sort_wrap(THREE_ONLY), *_held_out_replies()]
    )
    out = tc("make", task, "--replay", replies, "--holdout", "3", "--min-accuracy", "0.5", "--json")
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert data["status"] == "failed" and data["failed_stage"] == "holdout"
    assert data["holdout"]["accuracy"] == 0.3333 and data["tool"] is None
    assert "held-out accuracy 0.3333 (1 of 3) is below --min-accuracy 0.5" in out.stderr
