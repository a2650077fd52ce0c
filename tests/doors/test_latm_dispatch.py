"""`dispatch`, the LATM dispatcher: scripted replies, real search, a real
registry. The sandbox is not what is under test here (choosing a tool is):
the tools are made, verified and used on a `FakeBackend` (tests/conftest.py's
`fake_sandbox`), the registry's and the table's "restricted" for each test;
tests/doors/test_latm_make.py and test_latm_use.py run the loop in the real one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from latm_tasks import DAYS, DAYS_REPLIES, SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, RecordingModel, write_json
from reviewing import approve_waiting
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry
from toolcrib.latm import ReplayModel, dispatch, load_task, make

SORT_QUESTION = SORT[6]["input"]
UNRELATED = "What is the capital city of the country north of Mexico?"


@pytest.fixture(autouse=True)
def registry_backends(fake_sandbox: FakeBackend) -> dict[str, FakeBackend]:
    """`reg`, the CLI and `make`'s snippet runs all on the fake (every test)."""
    return {"restricted": fake_sandbox}


@pytest.fixture
def reg(reg: Registry, tmp_path: Path, fake_sandbox: FakeBackend) -> Registry:
    """The shared registry, with a word-sorting and a date-difference tool made."""
    for name, data, replies in (
        ("word_sorting", SORT, [SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]),
        ("date_difference", DAYS, DAYS_REPLIES),
    ):
        made = make(reg, load_task(write_json(tmp_path / f"{name}.json", data)), ReplayModel(replies))
        assert made.status == "made", made.error
    assert fake_sandbox.jobs  # made and verified on the fake, not in a zygote
    assert len(approve_waiting(reg, tmp_path)) == 2  # made by a model: a reviewer approves them
    return reg


def test_the_model_picks_a_tool_by_its_task_name(reg: Registry):
    model = RecordingModel(["Task: word_sorting"])
    routed = dispatch(reg, SORT_QUESTION, model)
    assert routed.by == "model" and routed.choice == "sort_words@1.0.0"
    prompt = model.prompts[0]
    # The paper's prompt: each candidate's task name and one of its use-case questions.
    assert f"Task: word_sorting\n\nQuestion: {SORT[3]['input']}" in prompt
    assert prompt.rstrip().endswith("Task: {task name or unknown}")
    assert SORT_QUESTION in prompt


def test_unknown_or_a_name_not_offered_means_none_fits(reg: Registry):
    assert dispatch(reg, SORT_QUESTION, RecordingModel(["Task: unknown"])).choice is None
    assert dispatch(reg, SORT_QUESTION, RecordingModel(["Task: poetry_writing"])).choice is None


def test_without_a_model_search_decides(reg: Registry):
    routed = dispatch(reg, "How many days are there from 2021-01-01 to 2021-03-01?", None)
    assert routed.by == "search" and routed.choice == "days_between@1.0.0"
    assert dispatch(reg, UNRELATED, None).choice is None


def test_no_candidate_at_all_does_not_ask_the_model(reg: Registry):
    model = RecordingModel([])
    routed = dispatch(reg, "zzz qqq", model)
    assert routed.choice is None and routed.candidates == [] and model.prompts == []


# -- the command line -------------------------------------------------------------


@pytest.fixture
def cli_registry(reg: Registry) -> Path:
    """The CLI dispatches to `reg`'s tools."""
    return reg.path


def test_cli_dispatch_to_a_tool_and_then_use_it(tc, tmp_path: Path):
    replies = write_json(
        tmp_path / "r.json",
        [
            "Task: word_sorting",
            f'```python\nans = " ".join(sort_words("{SORT_QUESTION}"))\n```',
        ],
    )
    result = tc("dispatch", SORT_QUESTION, "--replay", replies, "--then-use")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["sort_words@1.0.0", "rose tulip"]


def test_cli_dispatch_none_fits_exits_3(tc, tmp_path: Path):
    result = tc("dispatch", SORT_QUESTION, "--replay", write_json(tmp_path / "r.json", ["unknown"]), "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["choice"] is None and data["tool"] is None and data["candidates"]
    assert result.stderr.strip() == "Error: no tool fits this question"
    search_only = tc("dispatch", UNRELATED, "--search-only")
    assert search_only.exit_code == 3


def test_cli_dispatch_makes_a_tool_when_none_fits(tc, tmp_path: Path):
    questions = [
        {"input": f"Reverse the letters of {w}", "target": w[::-1]}
        for w in ("stressed", "drawer", "parts", "lever", "reward", "stop", "gateman")
    ]
    task = write_json(tmp_path / "reversal.json", questions)
    function = "def reverse_letters(question):\n    return question.split()[-1][::-1]\n"
    wrap = (
        "```python\n"
        + function
        + "```\n\nUse cases:\n\n"
        + "\n".join(
            f'Question: {q["input"]}\nSolution:\n```python\nans = reverse_letters("{q["input"]}")\n```\n'
            for q in questions[3:6]
        )
    )
    replies = write_json(
        tmp_path / "r.json",
        [
            "Task: unknown",
            f"```python\n{function}\nprint(reverse_letters('Reverse the letters of stressed'))\n```",
            "```python\n"
            + "".join(f'ans = reverse_letters("{q["input"]}")\nassert ans == "{q["target"]}"\n' for q in questions[3:6])
            + "```",
            wrap,
            '```python\nans = reverse_letters("Reverse the letters of the word gateman")\n```',
        ],
    )
    # "word" is in the sorting tool's questions, so the model is asked (and says unknown).
    question = "Reverse the letters of the word gateman"
    # Made and used in one go: only where the operator chose no review (under
    # "models" the made tool waits for a reviewer: tests/registry/test_review.py).
    assert tc("init", "--review", "none").exit_code == 0
    result = tc("dispatch", question, "--replay", replies, "--make-with", task, "--then-use", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["candidates"] and data["choice"] is None  # the dispatcher found nothing that fits ...
    assert data["made"]["status"] == "made" and data["tool"] == "reverse_letters@1.0.0"  # ... so one was made
    assert data["answer"]["answer"] == "nametag" and data["answer"]["status"] == "ok"
