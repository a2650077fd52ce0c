"""Model replies are read in linear time and capped in size (issue 15, item 3):
make's stages, use's answers and add's Markdown. Nothing here times a run:
each pathological reply is parsed under a generous `signal.alarm` hang guard
at a size the old backtracking patterns would need hours for (a 176 KB reply
of unclosed fences held `make` for 64 s), and the well-formed replies of the
loop's tests parse exactly as the old pattern parsed them."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from latm_tasks import DAYS_REPLIES, SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, sort_wrap, write_json
from toolcrib.registry.admission import MAX_SOURCE_BYTES, admit, extract_python

from toolcrib import AdmissionError, Registry
from toolcrib.latm import Example, ReplayModel, dispatch, load_task, make, use
from toolcrib.latm.replies import MAX_REPLY_CHARS, code_blocks, use_cases

HANG_GUARD_SECONDS = 60  # the linear scanners need well under a second for any of these

# The pattern `code_blocks` used before (quadratic on unclosed fences), kept
# here only to show the scanner reads well-formed replies the same way.
_OLD_BLOCK = re.compile(
    r"^[ \t]*```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE | re.IGNORECASE
)


class Hung(Exception):
    pass


@pytest.fixture
def hang_guard() -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hung(f"parsing took more than {HANG_GUARD_SECONDS} s: not linear")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HANG_GUARD_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _old_blocks(reply: str) -> list[str]:
    return [b.rstrip() + "\n" for b in _OLD_BLOCK.findall(reply) if b.strip()]


TWO_MB = 2 * 1024 * 1024

PATHOLOGICAL = {
    "unclosed python fences": "```python\n" * (TWO_MB // 10),
    "unclosed tagged fences with code": "```py\nx = 1\n" * (TWO_MB // 12),
    "a fence then blanks on one line": "```" + " " * TWO_MB + "`\n",
    "a fence, tag, then blanks and tabs": "```python" + " \t" * (TWO_MB // 2) + "x\n",
    "questions without solutions": "Question: why?\n" * (TWO_MB // 15),
    "solutions opening unclosed fences": "Question: q\nSolution:\n```python\n" * (TWO_MB // 34),
    "blank lines with trailing blanks": (" " * 1000 + "\n") * (TWO_MB // 1001),
}


@pytest.mark.parametrize("reply", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_replies_parse_in_linear_time(reply: str, hang_guard: None) -> None:
    assert len(reply) > TWO_MB * 0.9
    assert code_blocks(reply) == []
    assert use_cases(reply) == []


def test_many_closed_blocks_are_all_found_in_one_pass(hang_guard: None) -> None:
    reply = "text\n```python\nx = 1\n```\n" * 100_000
    assert code_blocks(reply) == ["x = 1\n"] * 100_000


def test_well_formed_replies_parse_as_before() -> None:
    replies = [
        SORT_PROPOSAL,
        SORT_TESTS,
        SORT_WRAP,
        sort_wrap(answers=("a", "b", "c")),
        *DAYS_REPLIES,
        "Intro\n  ```py\n  def f():\n      return 1\n  ```\nand\n```PYTHON\nf()\n```\n",
        "```python\n```\n```python\nx = 2\n```",
        "```python3 \nx = 3\n```   \n",
    ]
    for reply in replies:
        assert code_blocks(reply) == _old_blocks(reply), reply


def test_a_block_in_another_language_is_skipped_whole() -> None:
    # The old pattern took the closing fence of the json block as the opening of a bare one.
    reply = 'Input:\n```json\n{"a": 1}\n```\nCode:\n```python\nx = 1\n```\n'
    assert code_blocks(reply) == ["x = 1\n"]


# -- add's Markdown ----------------------------------------------------------------


ADMISSION_PATHOLOGICAL = {
    "a fence then blanks": "```" + " " * (MAX_SOURCE_BYTES - 10) + "`",
    "a tilde fence then tildes": "~~~" + "~" * (MAX_SOURCE_BYTES - 10) + "`",
    "unclosed fences": "```python\n" * (MAX_SOURCE_BYTES // 10 - 1),
    "blank lines after a fence": "```\n" + (" " * 200 + "\n") * (MAX_SOURCE_BYTES // 202),
}


@pytest.mark.parametrize("text", ADMISSION_PATHOLOGICAL.values(), ids=ADMISSION_PATHOLOGICAL.keys())
def test_admission_reads_pathological_markdown_in_linear_time(text: str, hang_guard: None) -> None:
    with pytest.raises(AdmissionError):
        admit(text, markdown=None)
    with pytest.raises(AdmissionError):
        admit(text, markdown=True)


def test_admission_still_reads_fences_as_before() -> None:
    reply = (
        "Here:\n\n````python\ndef f(x):\n    return x\n````\n\n~~~py\ndef g():\n    return f(1)\n~~~\n"
        "```text\nnot code\n```\n"
    )
    code, notes = extract_python(reply, markdown=True)
    assert code == "def f(x):\n    return x\n\n\ndef g():\n    return f(1)\n"
    assert "skipped code block 3 (lines 12-14): tagged 'text', not Python" in notes


def test_a_markdown_reply_over_the_source_cap_is_refused_before_it_is_read() -> None:
    with pytest.raises(AdmissionError, match=f"the limit is {MAX_SOURCE_BYTES}"):
        admit("```python\n" * (MAX_SOURCE_BYTES // 10 + 1), markdown=True)


# -- the cap, in make and use ------------------------------------------------------------


def test_make_refuses_a_reply_over_the_cap_and_says_so(reg: Registry, tmp_path: Path, hang_guard: None) -> None:
    task = load_task(write_json(tmp_path / "word_sorting.json", SORT))
    huge = "```python\n" * (1024 * 1024 // 10)  # 1 MB of unclosed fences
    result = make(reg, task, ReplayModel([huge, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]))
    assert result.status == "made", result.error
    problem = result.stages[0].errors[0]
    assert problem == (
        f"the reply is {len(huge)} characters; model replies are capped at {MAX_REPLY_CHARS} "
        "(toolcrib.latm.replies.MAX_REPLY_CHARS) and this one was not read"
    )
    # The transcript (stored as provenance) keeps a bounded part of it.
    prompt = reg.get(result.tool).provenance.prompt
    assert len(prompt) < 2 * MAX_REPLY_CHARS + 100_000
    assert f"[toolcrib: reply cut at {MAX_REPLY_CHARS} of {len(huge)} characters]" in prompt


def test_use_does_not_read_a_reply_over_the_cap(reg: Registry, tmp_path: Path, hang_guard: None) -> None:
    made = make(
        reg,
        load_task(write_json(tmp_path / "word_sorting.json", SORT)),
        ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]),
    )
    assert made.tool is not None
    # A valid block first, then padding: over the cap, it is not read at all.
    reply = f'```python\nans = sort_words("{SORT[6]["input"]}")\n```\n' + "```python\n" * (MAX_REPLY_CHARS // 10)
    report = use(reg, made.tool, [Example(SORT[6]["input"], SORT[6]["target"], True)], ReplayModel([reply]))
    answer = report.answers[0]
    assert answer.status == "no_code" and answer.correct is False
    assert answer.error is not None and f"capped at {MAX_REPLY_CHARS}" in answer.error


def test_dispatch_does_not_read_a_reply_over_the_cap(reg: Registry, tmp_path: Path, hang_guard: None) -> None:
    made = make(
        reg,
        load_task(write_json(tmp_path / "word_sorting.json", SORT)),
        ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]),
    )
    assert made.status == "made", made.error
    # It names the task first, then runs on: over the cap, nothing of it is read.
    reply = "Task: word_sorting\n" + "Task:" + " " * MAX_REPLY_CHARS
    routed = dispatch(reg, SORT[6]["input"], ReplayModel([reply]))
    assert routed.candidates and routed.choice is None
    assert routed.reply is not None and len(routed.reply) < MAX_REPLY_CHARS + 100
    assert dispatch(reg, SORT[6]["input"], ReplayModel(["Task: word_sorting"])).choice == made.tool
