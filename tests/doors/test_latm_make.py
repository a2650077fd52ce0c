"""`make`, the LATM tool maker, with scripted replies (never a network) through
the real sandbox and a real SQLite registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from latm_tasks import DAYS, DAYS_REPLIES, SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, sort_wrap, write_json

from toolcrib import InvalidInput, Registry
from toolcrib.latm import ReplayModel, load_task, make, parse_task


def _user_prompts(result_transcript: str, stage: str) -> list[str]:
    messages = json.loads(Path(result_transcript).read_text())["messages"]
    return [m["content"] for m in messages if m["role"] == "user" and m["stage"] == stage]


def test_a_tool_is_made_verified_with_the_tasks_targets_and_its_transcript(reg: Registry, sort_task, tmp_path: Path):
    model = ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP])
    result = make(reg, sort_task, model)
    assert result.status == "made", result.error
    assert [(s.stage, s.attempts, s.passed) for s in result.stages] == [
        ("propose", 1, True),
        ("verify", 1, True),
        ("wrap", 1, True),
    ]
    tool = reg.get(result.tool)
    assert tool.ref == "sort_words@1.0.0" and tool.status == "verified"
    # One snippet test per validation example, expecting the example's own target.
    assert [t.expected for t in tool.tests] == [e["target"] for e in SORT[3:6]]
    assert all(t.snippet and "sort_words(" in t.snippet for t in tool.tests)
    assert "Example usage" not in tool.source  # admitted: the demo code is not part of the tool
    prov = tool.provenance
    assert prov.generator == model.model_id
    assert prov.metadata["latm.task"] == "word_sorting"
    digest = hashlib.sha256((tmp_path / "word_sorting.json").read_bytes()).hexdigest()
    assert prov.metadata["latm.task_sha256"] == digest == result.task_sha256
    use_cases = json.loads(prov.metadata["latm.use_cases"])
    assert [c["question"] for c in use_cases] == [e["input"] for e in SORT[3:6]]
    # The whole transcript is the provenance, and is kept in a file too.
    transcript = json.loads(prov.prompt)
    assert [m["stage"] for m in transcript["messages"] if m["role"] == "assistant"] == ["propose", "verify", "wrap"]
    assert (
        "Question: Sort the following words alphabetically: List: pear apple\nAnswer: apple pear"
        in (transcript["messages"][0]["content"])
    )
    assert json.loads(Path(result.transcript).read_text())["messages"] == transcript["messages"]
    assert [e.event for e in reg.audit(tool="sort_words")] == ["add", "verify"]


def test_a_sandboxed_failure_goes_back_to_the_model_and_the_repair_is_used(reg: Registry, sort_task):
    broken = SORT_PROPOSAL.replace('split("List:")[1]', 'split("Words:")[1]')
    model = ReplayModel([broken, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP])
    result = make(reg, sort_task, model)
    assert result.status == "made"
    assert result.stages[0].attempts == 2
    assert result.stages[0].errors == ["IndexError: list index out of range at line 3"]
    repair = _user_prompts(result.transcript, "propose")[1]
    assert "IndexError: list index out of range at line 3" in repair
    assert "Traceback" not in repair and "/" not in repair.split("That did not work:")[1].split(".")[0]


def test_a_blocked_construct_is_reported_to_the_model(reg: Registry, sort_task):
    hostile = SORT_PROPOSAL.replace("# Example usage:", "import os\nprint(os.listdir('/'))")
    model = ReplayModel([hostile, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP])
    result = make(reg, sort_task, model)
    assert result.status == "made"
    assert result.stages[0].errors[0].startswith("refused by the sandbox policy: ")
    assert '"os"' in result.stages[0].errors[0]


def test_a_failing_unit_test_is_repaired_within_the_verify_stage(reg: Registry, sort_task):
    wrong = SORT_TESTS.replace('assert ans == "heron lark moth"', 'assert ans == "lark heron moth"')
    model = ReplayModel([SORT_PROPOSAL, wrong, SORT_TESTS, SORT_WRAP])
    result = make(reg, sort_task, model)
    assert result.status == "made"
    assert result.stages[1].attempts == 2 and result.stages[1].errors[0].startswith("AssertionError")


def test_an_answer_the_model_got_wrong_is_stored_as_the_true_target(reg: Registry, sort_task):
    # The model copies a wrong "Answer:" into its use case; the stored test uses the task's target.
    wrap = sort_wrap(answers=("xylophone yak zebra", "moth lark heron", "ash birch cedar"))
    result = make(reg, sort_task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, wrap]))
    assert result.status == "made"
    tests = reg.get(result.tool).tests
    assert tests[1].expected == "heron lark moth" != "moth lark heron"


def test_a_test_fixed_to_match_a_wrong_function_is_caught(reg: Registry, sort_task):
    # The original LATM flaw: the function is wrong (reverse order), the model "fixes"
    # its tests to what the function returns, and they pass. The task's targets do not.
    bad = 'def sort_words(question):\n    words = question.split("List:")[1].split()\n    return sorted(words, reverse=True)\n'
    proposal = SORT_PROPOSAL.replace("    return sorted(words)\n", "    return sorted(words, reverse=True)\n")
    proposal = proposal.replace('    """Sort the words listed after \'List:\' alphabetically."""\n', "")
    tests = (
        "```python\n"
        + "".join(
            f'ans = " ".join(sort_words("{e["input"]}"))\nassert ans == "{" ".join(sorted(e["input"].split(": ")[2].split(), reverse=True))}"\n'
            for e in SORT[3:6]
        )
        + "```"
    )
    model = ReplayModel([proposal, tests, sort_wrap(function=bad)])
    result = make(reg, sort_task, model, retries=0)
    assert result.status == "failed" and result.failed_stage == "wrap"
    assert result.error == 'use case 1 gives a wrong answer: expected "xylophone yak zebra", got "zebra yak xylophone"'
    assert reg.list() == []  # nothing was registered


def test_a_wrap_whose_code_differs_from_the_verified_code_is_refused(reg: Registry, sort_task):
    changed = sort_wrap(function=SORT_FUNCTION_CHANGED)
    result = make(reg, sort_task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, changed, changed]), retries=1)
    assert result.status == "failed" and result.failed_stage == "wrap"
    assert result.stages[2].attempts == 2
    assert "not the code that was verified" in result.error
    assert reg.list() == []


SORT_FUNCTION_CHANGED = "def sort_words(question):\n    return sorted(question.split())\n"


def test_a_wrap_that_only_changes_comments_and_layout_is_the_same_code(reg: Registry, sort_task):
    relaid = (
        '# the tool\ndef sort_words(question):\n    """Sort the words listed after \'List:\' alphabetically."""\n'
        "    words = question.split('List:')[1].split()  # after the label\n\n    return sorted(words)\n"
    )
    result = make(reg, sort_task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, sort_wrap(function=relaid)]))
    assert result.status == "made", result.error


def test_numbers_and_a_function_fixed_in_the_test_reply(reg: Registry, tmp_path: Path):
    task = load_task(write_json(tmp_path / "days.json", DAYS))
    buggy = DAYS_REPLIES[0].replace(
        "return (date.fromisoformat(second) - date.fromisoformat(first)).days",
        "return (date.fromisoformat(second) - date.fromisoformat(first)).days + 1",
    )
    # The tests fail against the buggy function; the reply that fixes them brings the fixed function.
    fixed_function = DAYS_REPLIES[0].split("```python\n")[1].split("\nprint(")[0]
    model = ReplayModel(
        [
            buggy,
            DAYS_REPLIES[1],
            fixed_function.join(["```python\n", "\n"]) + DAYS_REPLIES[1].removeprefix("```python\n"),
            DAYS_REPLIES[2],
        ]
    )
    result = make(reg, task, model)
    assert result.status == "made", result.error
    assert result.stages[1].attempts == 2
    tool = reg.get(result.tool)
    assert [t.expected for t in tool.tests] == [30, 2, 365]
    assert "+ 1" not in tool.source


def test_the_replay_running_out_fails_the_stage_and_keeps_the_transcript(reg: Registry, sort_task, tmp_path: Path):
    broken = SORT_PROPOSAL.replace('split("List:")[1]', 'split("Words:")[1]')
    result = make(reg, sort_task, ReplayModel([broken]), transcript_path=tmp_path / "t.json")
    assert result.status == "failed" and result.failed_stage == "propose"
    assert result.error == (
        "the replay has no reply left (all 1 were used); "
        "the last problem was: IndexError: list index out of range at line 3"
    )
    assert Path(result.transcript) == tmp_path / "t.json"
    assert len(json.loads((tmp_path / "t.json").read_text())["messages"]) == 4  # prompt, reply, note, prompt


def test_task_files_in_three_shapes(tmp_path: Path):
    as_list = parse_task(json.dumps(SORT).encode(), name="t", origin="t")
    as_object = parse_task(json.dumps({"canary": "x", "examples": SORT}).encode(), name="t", origin="t")
    as_lines = parse_task("\n".join(json.dumps(e) for e in SORT).encode(), name="t", origin="t")
    assert as_list.examples == as_object.examples == as_lines.examples
    assert as_list.examples[0].target == "apple pear" and as_list.examples[0].has_target
    with pytest.raises(InvalidInput, match="example 2 needs an 'input' string"):
        parse_task(b'[{"input": "a", "target": 1}, {"target": 2}]', name="t", origin="t")
    with pytest.raises(InvalidInput, match="neither JSON nor JSONL"):
        parse_task(b"{not json", name="t", origin="t")


def test_too_few_examples_is_bad_input(reg: Registry, tmp_path: Path):
    task = load_task(write_json(tmp_path / "small.json", SORT[:4]))
    with pytest.raises(InvalidInput, match="needs 3 demos \\+ 3 for validation"):
        make(reg, task, ReplayModel([]))


# -- the command line -------------------------------------------------------------


def test_cli_make_json(tc, tmp_path: Path):
    task = write_json(tmp_path / "word_sorting.json", SORT)
    replies = write_json(tmp_path / "replies.json", [SORT_PROPOSAL, SORT_TESTS, SORT_WRAP])
    result = tc("make", task, "--replay", replies, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "made" and data["tool"] == "sort_words@1.0.0" and data["verification"] == "verified"
    assert data["tokens"] is None  # a replay knows no token counts
    assert "propose: attempt 1: passed" in result.stderr
    shown = json.loads(tc("show", "sort_words", "--json").stdout)
    assert shown["status"] == "verified"


def test_cli_make_failure_names_the_stage_the_error_and_the_transcript(tc, tmp_path: Path):
    task = write_json(tmp_path / "word_sorting.json", SORT)
    replies = write_json(
        tmp_path / "replies.json", [SORT_PROPOSAL, SORT_TESTS, sort_wrap(function=SORT_FUNCTION_CHANGED)]
    )
    result = tc("make", task, "--replay", replies, "--retries", "0", "--transcript", str(tmp_path / "kept.json"))
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: make failed at the wrap stage after 1 attempt(s): the function in the wrapped tool")
    assert line.endswith(f"transcript kept in {tmp_path / 'kept.json'}")
    assert (tmp_path / "kept.json").is_file()


def test_cli_make_without_a_model_or_with_a_bad_replay_is_a_usage_error(tc, tmp_path: Path):
    task = write_json(tmp_path / "word_sorting.json", SORT)
    result = tc("make", task)
    assert result.exit_code == 2 and "no model: pass --model ID or --replay FILE" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    result = tc("make", task, "--replay", str(bad))
    assert result.exit_code == 2 and "a JSON list of reply strings" in result.stderr
    result = tc("make", str(tmp_path / "missing.json"), "--replay", write_json(tmp_path / "r.json", []))
    assert result.exit_code == 2 and "task file not found" in result.stderr


def test_a_reworded_question_still_finds_its_example(reg: Registry, tmp_path: Path):
    # Models reflow questions: a line break becomes a space, a full stop appears.
    data = [dict(e, input=e["input"].replace(": List: ", ":\nList: ")) for e in SORT]
    task = load_task(write_json(tmp_path / "word_sorting.json", data))
    wrap = SORT_WRAP.replace(
        "alphabetically: List: zebra yak xylophone\n", "alphabetically: List: zebra yak xylophone.\n"
    )
    result = make(reg, task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, wrap]))
    assert result.status == "made", result.error
    assert [t.expected for t in reg.get(result.tool).tests] == [e["target"] for e in SORT[3:6]]


def test_cli_make_with_a_real_model_id_but_no_key_stops_before_any_request(
    tc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # llm's key store is an empty directory and no key variable is set: nothing is sent anywhere.
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    task = write_json(tmp_path / "word_sorting.json", SORT)
    result = tc("make", task, "--model", "gpt-4o-mini")
    assert result.exit_code == 2
    assert "No key found - add one using 'llm keys set openai'" in result.stderr
    unknown = tc("make", task, "--model", "no-such-model-xyz")
    assert unknown.exit_code == 2 and "unknown model 'no-such-model-xyz'" in unknown.stderr


def test_an_llm_model_holds_one_conversation_per_make(
    reg: Registry, sort_task, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # An `llm` plugin whose one model replies from a script, offline, and
    # notes how many earlier turns of the conversation it was given.
    import llm
    from llm.plugins import pm

    from toolcrib.latm import LLMModel

    replies, seen_turns = [SORT_PROPOSAL, SORT_TESTS, SORT_WRAP], []

    class Scripted(llm.Model):
        model_id = "toolcrib-test-scripted"
        can_stream = False

        def execute(self, prompt, stream, response, conversation):  # type: ignore[no-untyped-def]
            seen_turns.append(len(conversation.responses) if conversation else 0)
            response.set_usage(input=len(prompt.prompt), output=5)
            yield replies.pop(0)

    class Plugin:
        @llm.hookimpl
        def register_models(self, register):  # type: ignore[no-untyped-def]
            register(Scripted())

    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    pm.register(Plugin(), name="toolcrib-test-scripted")
    try:
        result = make(reg, sort_task, LLMModel("toolcrib-test-scripted"))
    finally:
        pm.unregister(name="toolcrib-test-scripted")
    assert result.status == "made", result.error
    assert seen_turns == [0, 1, 2]  # each stage sees the earlier turns
    assert result.model == "toolcrib-test-scripted" == reg.get(result.tool).provenance.generator
    assert result.tokens is not None and result.tokens["output"] == 15 and result.tokens["input"] > 0
