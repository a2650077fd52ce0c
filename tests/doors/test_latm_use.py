"""`use`, the LATM tool user: scripted replies, the real sandbox, a real registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from latm_tasks import SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, RecordingModel, write_json
from reviewing import approve_waiting

from toolcrib import PolicyRefused, Registry
from toolcrib.latm import Example, ReplayModel, load_task, make, use
from toolcrib.latm.answers import with_epilogue
from toolcrib.latm.runs import run_snippet


@pytest.fixture
def sort_tool(reg: Registry, tmp_path: Path) -> str:
    made = make(
        reg,
        load_task(write_json(tmp_path / "word_sorting.json", SORT)),
        ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]),
    )
    assert made.status == "made" and made.tool is not None
    assert approve_waiting(reg, tmp_path) == [made.tool]  # made by a model: a reviewer approves it first
    return made.tool


def _call(question: str) -> str:
    return f'```python\nret = sort_words("{question}")\nans = " ".join(ret)\n```'


def test_a_batch_is_answered_in_the_sandbox_and_scored(reg: Registry, sort_tool: str):
    questions = [Example(e["input"], e["target"], True) for e in SORT[6:9]] + [Example("Sort: List: b a")]
    model = ReplayModel(
        [
            _call(SORT[6]["input"]),  # right
            '```python\nans = "lily iris violet"\n```',  # wrong
            "```python\nans = sort_words(None)\n```",  # raises in the sandbox
            "I would sort them.",  # no code at all
        ]
    )
    report = use(reg, sort_tool, questions, model)
    assert [a.status for a in report.answers] == ["ok", "ok", "error", "no_code"]
    assert [a.correct for a in report.answers] == [True, False, False, None]
    assert report.answers[0].answer == "rose tulip" and report.answers[0].target == "rose tulip"
    assert report.answers[2].error.startswith("AttributeError")
    assert (report.scored, report.correct, report.accuracy) == (3, 1, 0.3333)
    # Each snippet ran as an audited call of the stored version.
    calls = [e for e in reg.audit(tool="sort_words", event="call")]
    assert len(calls) == 3 and all(c.details["mode"] == "snippet" for c in calls)


def test_the_tool_user_sees_the_stored_source_and_use_cases(reg: Registry, sort_tool: str):
    model = RecordingModel([_call(SORT[6]["input"])], tokens=True)
    report = use(reg, sort_tool, [Example(SORT[6]["input"])], model)
    prompt = model.prompts[0]
    assert reg.get(sort_tool).source.strip() in prompt
    assert f"Question: {SORT[3]['input']}\nSolution:\n```python\nret = sort_words(" in prompt
    assert f"\n\nQuestion: {SORT[6]['input']}\n\nReply with the Solution" in prompt
    assert report.tokens == {"input": len(prompt), "output": 7}


def test_an_unverified_tool_is_refused(reg: Registry):
    reg.add("def f(x: int) -> int:\n    return x\n")
    with pytest.raises(PolicyRefused):
        use(reg, "f", [Example("q")], ReplayModel(["```python\nans = f(1)\n```"]))


@pytest.mark.parametrize(
    ("ans", "expected"),
    [("'B'", "(B)"), ("'(C)'", "(C)"), ("2", "(B)"), ("'a red ball'", "(A)"), ("'nothing'", "nothing"), ("True", True)],
)
def test_an_option_answer_becomes_its_label(ans: str, expected: object):
    question = "Which is it?\nOptions:\n(A) a red ball\n(B) a blue ball\n(C) a green ball"
    result = run_snippet("def f():\n    return 1\n", "f", with_epilogue(f"ans = {ans}", question, as_text=True))
    assert result.status == "ok" and result.result == expected


def test_numbered_answer_variables_and_numbers_as_text():
    snippet = "ans1 = 41\nans2 = ans1 + 1\n"
    as_text = run_snippet("def f():\n    return 1\n", "f", with_epilogue(snippet, "How many?", as_text=True))
    as_number = run_snippet("def f():\n    return 1\n", "f", with_epilogue(snippet, "How many?", as_text=False))
    assert (as_text.result, as_number.result) == ("42", 42)


# -- the command line -------------------------------------------------------------


@pytest.fixture
def cli_registry(registry_path: Path) -> Path:
    """Here the CLI runs on `reg`'s own registry file (one registry for both)."""
    return registry_path


@pytest.fixture
def cli_tool(tc, reg: Registry, tmp_path: Path) -> str:
    task = write_json(tmp_path / "word_sorting.json", SORT)
    made = tc("make", task, "--replay", write_json(tmp_path / "make.json", [SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]))
    assert made.exit_code == 0, made.output
    assert approve_waiting(reg, tmp_path) == ["sort_words@1.0.0"]
    return "sort_words"


def test_cli_use_one_question_and_stdin(tc, cli_tool: str, tmp_path: Path):
    replies = write_json(tmp_path / "r.json", [_call(SORT[6]["input"]), _call(SORT[7]["input"])])
    result = tc("use", cli_tool, SORT[6]["input"], "--replay", replies)
    assert result.exit_code == 0 and result.stdout == "rose tulip\n"
    replies = write_json(tmp_path / "r2.json", [_call(SORT[7]["input"])])
    result = tc("use", cli_tool, "-", "--replay", replies, input=SORT[7]["input"] + "\n")
    assert result.exit_code == 0 and result.stdout == "iris lily violet\n"


def test_cli_use_questions_file_json_and_accuracy(tc, cli_tool: str, tmp_path: Path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(e) for e in SORT[6:9]))
    replies = write_json(tmp_path / "r.json", [_call(e["input"]) for e in SORT[6:8]] + ['```python\nans = "x"\n```'])
    result = tc("use", cli_tool, "--questions", str(questions), "--replay", replies, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [a["correct"] for a in data["answers"]] == [True, True, False]
    assert data["accuracy"] == 0.6667 and data["tool"] == "sort_words@1.0.0"
    assert set(data["answers"][0]) >= {"snippet", "status", "answer", "target", "duration_ms"}
    text = tc("use", cli_tool, "--questions", str(questions), "--replay", replies)
    assert text.stdout.splitlines() == ["rose tulip  ✓", "iris lily violet  ✓", "x  ✗ (target 'opal quartz')"]
    assert "accuracy: 2/3 = 66.67%" in text.stderr


def test_cli_use_errors(tc, cli_tool: str, tmp_path: Path):
    replies = write_json(tmp_path / "r.json", [])
    assert tc("use", cli_tool, "--replay", replies).exit_code == 2  # no question
    ran_out = tc("use", cli_tool, "q", "--replay", replies)
    assert ran_out.exit_code == 1 and "no reply left" in ran_out.stderr
    missing = tc("use", "nope", "q", "--replay", replies)
    assert missing.exit_code == 3


def test_cli_default_model_setting(tc, cli_tool: str):
    assert tc("model", "--json").stdout.strip() == '{\n  "model": null\n}'.strip()
    assert tc("model", "no-such-model-xyz").exit_code == 0
    assert json.loads(tc("model", "--json").stdout) == {"model": "no-such-model-xyz"}
    # The default is used when no --model is given; an unknown id is a clean usage error.
    result = tc("use", cli_tool, "q")
    assert result.exit_code == 2 and "unknown model 'no-such-model-xyz'" in result.stderr
    assert tc("model", "--unset").exit_code == 0
    assert json.loads(tc("model", "--json").stdout) == {"model": None}
    settings = json.loads(tc("audit", "--event", "setting", "--json").stdout)
    assert [e["details"]["value"] for e in settings] == ["no-such-model-xyz", None]


def test_a_tool_added_by_hand_shows_its_snippet_tests_as_use_cases(reg: Registry):
    source = (Path(__file__).resolve().parents[2] / "examples" / "word_sorting.py").read_text()
    tests = json.loads((Path(__file__).resolve().parents[2] / "examples" / "word_sorting.tests.json").read_text())
    tool = reg.add(source, tests=tests, strip_top_level=True).tool
    assert reg.verify(tool.ref).status == "verified"
    model = RecordingModel(["```python\nans = ' '.join(sort_words('fig ant'.split()))\n```"], tokens=True)
    report = use(reg, tool.ref, [Example("Sort: fig ant", "ant fig", True)], model)
    assert report.answers[0].correct is True
    snippet_case = next(t for t in tests if "snippet" in t)
    assert f"Question: {snippet_case['name']}\nSolution:\n```python\n{snippet_case['snippet']}\n```" in model.prompts[0]


def test_answers_are_scored_with_the_comparator_the_tool_was_made_with(reg: Registry, tmp_path: Path):
    # Targets written with spaces between brackets, answers without (BIG-Bench's Dyck task).
    task = [{"input": f"Complete: {'[ ' * n}", "target": " ".join("]" * n)} for n in range(1, 9)]
    proposal = (
        "```python\ndef close_all(text):\n    return ']' * text.count('[')\n\n"
        "for q in ['Complete: [ ', 'Complete: [ [ ', 'Complete: [ [ [ ']:\n    print(close_all(q))\n```"
    )
    tests = (
        "```python\n"
        + "\n".join(f"assert close_all('Complete: {'[ ' * n}') == '{']' * n}'" for n in (4, 5, 6))
        + "\n```"
    )
    wrap = "Use the tool below.\n```python\ndef close_all(text):\n    return ']' * text.count('[')\n```\n" + "".join(
        f"Question: Complete: {'[ ' * n}\nSolution:\n```python\nans = close_all('Complete: {'[ ' * n}')\n```\n"
        for n in (4, 5, 6)
    )
    made = make(
        reg,
        load_task(write_json(tmp_path / "dyck.json", task)),
        ReplayModel([proposal, tests, wrap]),
        comparator="compact_text",
    )
    assert made.status == "made", made
    assert approve_waiting(reg, tmp_path) == [made.tool]
    question = task[7]
    model = ReplayModel([f"```python\nans = close_all({question['input']!r})\n```"])
    report = use(reg, made.tool, [Example(question["input"], question["target"], True)], model)
    assert report.answers[0].answer == "]" * 8 and report.answers[0].target == " ".join("]" * 8)
    assert report.correct == 1
