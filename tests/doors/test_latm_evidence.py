"""LATM verification that can fail (issue 15, item 5): the stored tool is
exactly the verified module, and a unit test or use case is evidence only if
the tool's entrypoint was called on the way to `ans` (observed in the
sandbox) and `ans` is not a literal copy of the target. Scripted replies
(never a network), the real sandbox, a real SQLite registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from latm_tasks import SORT, SORT_FUNCTION, SORT_PROPOSAL, SORT_TESTS, sort_wrap, write_json
from toolcrib.sandbox import Job
from toolcrib.sandbox.inside import wire

from toolcrib import Registry
from toolcrib.latm import MakeResult, ReplayModel, Task, load_task, make
from toolcrib.latm.runs import run_snippet


def _question(words: str) -> str:
    return f"Sort the following words alphabetically: List: {words}"


VALIDATION = [(e["input"], e["target"]) for e in SORT[3:6]]


def _proposal(function: str) -> str:
    return f'```python\n{function}\nprint(sort_words("{_question("pear apple")}"))\n```\n'


def _wrap(function: str, solutions: list[str]) -> str:
    cases = "\n".join(
        f"Question: {q}\nSolution:\n```python\n{s.rstrip()}\n```\n" for (q, _), s in zip(VALIDATION, solutions)
    )
    return f"Here is a function to solve a class of problems:\n\n```python\n{function}```\n\nUse cases:\n\n{cases}"


def _tests(lines: list[str]) -> str:
    return "```python\n" + "\n".join(lines) + "\n```\n"


def _failed_at(result: MakeResult, stage: str, message: str) -> None:
    assert result.status == "failed", "a forgery was verified"
    assert result.failed_stage == stage, result.error
    assert message in (result.error or ""), result.error


# -- the stored tool is exactly the verified module ---------------------------------------


HELPER_FUNCTION = '''def test_word(word):
    """Only words made of letters count."""
    return word.isalpha()


def sort_words(question):
    words = [w for w in question.split("List:")[1].split() if test_word(w)]
    return sorted(words)
'''

# The same entrypoint; the helper it calls now lets a chosen word through.
BACKDOORED_HELPER = HELPER_FUNCTION.replace("    return word.isalpha()", '    return word.isalpha() or word == "$(id)"')


def test_a_wrap_cannot_swap_a_helper_named_test_star(reg: Registry, sort_task: Task) -> None:
    model = ReplayModel([_proposal(HELPER_FUNCTION), SORT_TESTS, sort_wrap(function=BACKDOORED_HELPER)])
    result = make(reg, sort_task, model, retries=0)
    _failed_at(result, "wrap", "not the code that was verified")
    assert reg.list() == []


def test_the_helper_unchanged_is_made_and_stored(reg: Registry, sort_task: Task) -> None:
    model = ReplayModel([_proposal(HELPER_FUNCTION), SORT_TESTS, sort_wrap(function=HELPER_FUNCTION)])
    result = make(reg, sort_task, model, retries=0)
    assert result.status == "made", result.error
    assert reg.get(result.tool).source == HELPER_FUNCTION


COMMENTED = SORT_FUNCTION.replace("    return sorted(words)\n", "    return sorted(words)  # as verified\n")
DEAD_TEST = """

def test_sort_words():
    assert sort_words("List: b a") == ["a", "b"]
"""


def test_the_stored_source_is_the_verified_text_byte_for_byte(reg: Registry, sort_task: Task) -> None:
    # The proposal brings a test of its own (nothing in the tool uses it); the
    # wrap has other comments. What is stored is the text that was verified.
    proposal = _proposal(COMMENTED + DEAD_TEST + "\ntest_sort_words()\n")
    wrap = sort_wrap(function=SORT_FUNCTION.replace("def sort_words", "# the tool\ndef sort_words"))
    result = make(reg, sort_task, ReplayModel([proposal, SORT_TESTS, wrap]), retries=0)
    assert result.status == "made", result.error
    assert reg.get(result.tool).source == COMMENTED


def test_a_dead_test_in_the_wrap_is_not_stored(reg: Registry, sort_task: Task) -> None:
    wrap = sort_wrap(function=SORT_FUNCTION + DEAD_TEST)
    result = make(reg, sort_task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, wrap]), retries=0)
    assert result.status == "made", result.error
    assert "test_sort_words" not in reg.get(result.tool).source


def test_any_other_top_level_change_in_the_wrap_is_refused(reg: Registry, sort_task: Task) -> None:
    for extra in ("\nimport os\n", "\nLIMIT = 3\n", "\nclass Spare:\n    pass\n"):
        wrap = sort_wrap(function=SORT_FUNCTION + extra)
        result = make(reg, sort_task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, wrap]), retries=0)
        _failed_at(result, "wrap", "not the code that was verified")
    assert reg.list() == []


# -- evidence: the tool was called, and the answer is not a copy ----------------------------


WRONG = 'def sort_words(question):\n    return "WRONG"\n'
COMPUTED = [f'ans = " ".join(sorted("{q.split("List: ")[1]}".split()))' for q, _ in VALIDATION]
LITERAL = [f'ans = "{t}"' for _, t in VALIDATION]


def test_known_answers_written_into_ans_verify_no_tool(reg: Registry, sort_task: Task) -> None:
    tests = _tests([f'{line}\nassert ans == "{t}"' for line, (_, t) in zip(LITERAL, VALIDATION)])
    model = ReplayModel([_proposal(WRONG), tests, _wrap(WRONG, LITERAL)])
    result = make(reg, sort_task, model, retries=0)
    _failed_at(result, "verify", "the tests write an answer given in the questions into `ans`")
    assert reg.list() == []


def test_answers_computed_without_the_tool_verify_no_tool(reg: Registry, sort_task: Task) -> None:
    tests = _tests([f'{line}\nassert ans == "{t}"' for line, (_, t) in zip(COMPUTED, VALIDATION)])
    model = ReplayModel([_proposal(WRONG), tests, _wrap(WRONG, COMPUTED)])
    result = make(reg, sort_task, model, retries=0)
    _failed_at(result, "verify", "the tests never called sort_words")
    assert reg.list() == []


IGNORED = [f'ret = sort_words("{q}")\n{line}' for (q, _), line in zip(VALIDATION, COMPUTED)]


def test_tests_that_call_the_tool_and_ignore_it_verify_no_tool(reg: Registry, sort_task: Task) -> None:
    tests = _tests([f'{line}\nassert ans == "{t}"' for line, (_, t) in zip(IGNORED, VALIDATION)])
    model = ReplayModel([_proposal(WRONG), tests, _wrap(WRONG, IGNORED)])
    result = make(reg, sort_task, model, retries=0)
    _failed_at(result, "verify", "the tests pass without using what sort_words returns")
    assert reg.list() == []


def _made_with_wrap(reg: Registry, task: Task, solutions: list[str]) -> MakeResult:
    """A right tool and right tests, then a wrap whose use cases are these solutions."""
    return make(reg, task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, _wrap(SORT_FUNCTION, solutions)]), retries=0)


FORGED_CASES = {
    "never calls the tool": (COMPUTED, "use case 1 never called sort_words"),
    "calls the tool, then writes ans = target": (
        [f'ret = sort_words("{q}")\n{line}' for (q, _), line in zip(VALIDATION, LITERAL)],
        "use case 1 writes the answer into `ans` as a literal",
    ),
    "the target through another name": (
        [f'known = "{t}"\nret = sort_words("{q}")\nans = known' for q, t in VALIDATION],
        "use case 1 writes the answer into `ans` as a literal",
    ),
    "the target spelled in two halves": (
        [f'ret = sort_words("{q}")\nans = "{t[:3]}" + f"{t[3:]}"' for q, t in VALIDATION],
        "use case 1 writes the answer into `ans` as a literal",
    ),
    "calls the tool, then computes the answer itself": (
        IGNORED,
        "use case 1 gives the answer without using what sort_words returns",
    ),
    "uses the value only where an error is caught": (
        [
            f'ret = sort_words("{q}")\ntry:\n    ans = " ".join(ret)\nexcept Exception:\n    {line}'
            for (q, _), line in zip(VALIDATION, COMPUTED)
        ],
        "use case 1 gives the answer without using what sort_words returns",
    ),
    "a call that raised, caught": (
        [f"try:\n    sort_words(None)\nexcept Exception:\n    pass\n{line}" for line in COMPUTED],
        "use case 1 never called sort_words",
    ),
    "its own sort_words": (
        [
            'sort_words = lambda question: sorted(question.split("List:")[1].split())\n'
            f'ans = " ".join(sort_words("{q}"))'
            for q, _ in VALIDATION
        ],
        "use case 1 binds or changes the tool's own name(s) sort_words",
    ),
    "its own sort_words, through a loop": (
        [
            f'for sort_words in [sorted]:\n    ans = " ".join(sort_words("{q.split("List: ")[1]}".split()))'
            for q, _ in VALIDATION
        ],
        "use case 1 binds or changes the tool's own name(s) sort_words",
    ),
    # A def in a use case's block is taken into the wrapped module by admission,
    # which then is not the verified module.
    "its own sort_words, defined": (
        [
            'def sort_words(question):\n    return sorted(question.split("List:")[1].split())\n'
            f'ans = " ".join(sort_words("{q}"))'
            for q, _ in VALIDATION
        ],
        "not the code that was verified",
    ),
}


@pytest.mark.parametrize("solutions, message", FORGED_CASES.values(), ids=FORGED_CASES.keys())
def test_a_use_case_that_is_no_evidence_does_not_count(
    reg: Registry, sort_task: Task, solutions: list[str], message: str
) -> None:
    result = _made_with_wrap(reg, sort_task, solutions)
    _failed_at(result, "wrap", message)
    assert reg.list() == []


def test_a_use_case_rebinding_a_helper_the_tool_uses_does_not_count(reg: Registry, sort_task: Task) -> None:
    # The stored tool would drop "$(id)"; the case patches the helper so that it keeps it.
    solutions = [f'test_word = str.isascii\nret = sort_words("{q}")\nans = " ".join(ret)' for q, _ in VALIDATION]
    model = ReplayModel([_proposal(HELPER_FUNCTION), SORT_TESTS, _wrap(HELPER_FUNCTION, solutions)])
    result = make(reg, sort_task, model, retries=0)
    _failed_at(result, "wrap", "use case 1 binds or changes the tool's own name(s) test_word")


TABLE_FUNCTION = """IGNORED = set()


def sort_words(question):
    return sorted(w for w in question.split("List:")[1].split() if w not in IGNORED)
"""


@pytest.mark.parametrize("change", ['IGNORED.add("$(id)")', 'IGNORED |= {"x"}', "IGNORED.clear()"])
def test_a_use_case_changing_the_tools_own_objects_does_not_count(reg: Registry, sort_task: Task, change: str) -> None:
    solutions = [f'{change}\nret = sort_words("{q}")\nans = " ".join(ret)' for q, _ in VALIDATION]
    model = ReplayModel([_proposal(TABLE_FUNCTION), SORT_TESTS, _wrap(TABLE_FUNCTION, solutions)])
    result = make(reg, sort_task, model, retries=0)
    _failed_at(result, "wrap", "use case 1 binds or changes the tool's own name(s) IGNORED")


LEGITIMATE = {
    "the paper's shape": [f'ret = sort_words("{q}")\nans = " ".join(ret)' for q, _ in VALIDATION],
    "numbered answers, an import the tool does not have": [
        f'import re\nquestion = "{q}"\nans1 = sort_words(re.sub(r"\\s+", " ", question))\nans2 = " ".join(ans1)'
        for q, _ in VALIDATION
    ],
}


@pytest.mark.parametrize("solutions", LEGITIMATE.values(), ids=LEGITIMATE.keys())
def test_a_legitimate_wrap_still_verifies(reg: Registry, sort_task: Task, solutions: list[str]) -> None:
    result = _made_with_wrap(reg, sort_task, solutions)
    assert result.status == "made" and result.verification == "verified", result.error
    tool = reg.get(result.tool)
    assert [t.expected for t in tool.tests] == [t for _, t in VALIDATION]
    assert json.loads(tool.provenance.metadata["latm.use_cases"])[0]["solution"].startswith(solutions[0][:10])


OPTIONS = [
    {
        "input": f"Which number is largest?\nOptions:\n(A) {a}\n(B) {b}\n(C) {c}",
        "target": "(" + "ABC"[[a, b, c].index(max(a, b, c))] + ")",
    }
    for a, b, c in [(1, 5, 3), (9, 2, 4), (3, 4, 8), (7, 1, 2), (2, 6, 5), (4, 3, 9)]
]
LARGEST = '''def largest_option(question):
    """The index of the largest number among the options."""
    numbers = [int(line.split(")")[1]) for line in question.splitlines() if line.startswith("(")]
    return numbers.index(max(numbers))
'''


def test_an_option_table_in_a_use_case_is_not_a_copy(reg: Registry, tmp_path: Path) -> None:
    # Indexing into the list of labels is how such a case turns `ret` into an option.
    task = load_task(write_json(tmp_path / "largest.json", OPTIONS))
    proposal = f"```python\n{LARGEST}\nprint(largest_option({OPTIONS[0]['input']!r}))\n```"
    tests = _tests(
        [
            f'ans = ["(A)", "(B)", "(C)"][largest_option({e["input"]!r})]\nassert ans == {e["target"]!r}'
            for e in OPTIONS[3:6]
        ]
    )
    cases = "\n".join(
        f"Question: {e['input']}\nSolution:\n```python\n"
        f'ret = largest_option({e["input"]!r})\nans = ["(A)", "(B)", "(C)"][ret]\n```\n'
        for e in OPTIONS[3:6]
    )
    wrap = f"Here is a function:\n```python\n{LARGEST}```\n\nUse cases:\n\n{cases}"
    result = make(reg, task, ReplayModel([proposal, tests, wrap]), retries=0)
    assert result.status == "made", result.error


# -- the sandbox observes the calls -----------------------------------------------------


TOOL = "def double(x):\n    return 2 * x\n"


@pytest.mark.parametrize(
    "snippet, calls",
    [
        ("ans = double(double(1))", 2),
        ("ans = 4", 0),
        ("def double(x):\n    return 4\nans = double(1)", 0),  # its own function, not the tool's
        ("try:\n    double()\nexcept TypeError:\n    pass\nans = 4", 0),  # a call that raised
        ("f = double\nans = [f(i) for i in range(3)]", 3),
    ],
)
def test_the_sandbox_reports_the_calls_of_the_entrypoint(snippet: str, calls: int, backend: str) -> None:
    # Docker runs the plain policy here, as `make --backend docker` does (docs/latm.md: what a count is worth there).
    result = run_snippet(TOOL, "double", snippet, backend=backend)
    assert result.status == "ok", result.error
    assert result.calls == calls


PAIR = "def pair(x):\n    return [x, x]\n"


@pytest.mark.parametrize(
    "snippet",
    [
        "ans = pair(1) + [1]",
        "ans = str(pair(1))",
        "ans = 'yes' if pair(1) else 'no'",
        "ans = pair(1) == [1, 1]",
        "ans = [x for x in pair(1)]",
        "ans = pair(1)",
        "ans = pair(1)[0]",
        "print(pair(1))",
        "ans = f'{pair(1)}'",
        "ans = len(pair(1))",
        "ans = 1 in pair(1)",
        "ans = sorted(pair(1))",
        "ans = {'k': pair(1)}",
    ],
)
def test_a_stubbed_entrypoint_returns_nothing_a_snippet_can_use(snippet: str, backend: str) -> None:
    assert run_snippet(PAIR, "pair", snippet, backend=backend).status == "ok"
    stubbed = run_snippet(PAIR, "pair", snippet, stub_entrypoint=True, backend=backend)
    assert stubbed.status == "error", stubbed
    ignored = run_snippet(PAIR, "pair", "x = pair(1)\nans = 4", stub_entrypoint=True, backend=backend)
    assert (ignored.status, ignored.result, ignored.calls) == ("ok", 4, 1)


def test_only_a_snippet_job_stubs_its_entrypoint() -> None:
    with pytest.raises(ValueError, match="stub_entrypoint"):
        Job(source=TOOL, entrypoint="double", args={"x": 1}, stub_entrypoint=True)
    with pytest.raises(ValueError, match="stub_entrypoint"):
        Job(source=TOOL, entrypoint="double", mode="snippet", snippet="ans = 1", stub_entrypoint=1)  # type: ignore[arg-type]
    assert "stub_entrypoint" not in Job(source=TOOL, entrypoint="double", mode="snippet", snippet="ans = 1").wire()


@pytest.mark.parametrize(
    "snippet",
    [
        "ans = double.__closure__",
        "ans = getattr(double, '__closure__')",
        "ans = double.__wrapped__",
        "import gc\nans = gc.get_referents(double)",
        "import inspect\nans = inspect.getclosurevars(double)",
    ],
)
def test_restricted_code_cannot_reach_the_count(snippet: str) -> None:
    result = run_snippet(TOOL, "double", snippet)
    assert result.status in ("blocked", "error"), result
    assert result.calls is None


def test_the_count_is_a_checked_part_of_the_reply() -> None:
    def reply(**fields: object) -> bytes:
        base = {"status": "ok", "result": 1, "error": None, "limit": None, "stdout": ""}
        return json.dumps(base | fields).encode()

    assert wire.parse_reply(reply(calls=3), cap=1024)["calls"] == 3
    assert "calls" not in wire.parse_reply(reply(), cap=1024)
    for bad in (-1, True, "3", 1.5):
        with pytest.raises(wire.ProtocolError):
            wire.parse_reply(reply(calls=bad), cap=1024)
    error = {"type": "E", "message": "m", "line": None}
    with pytest.raises(wire.ProtocolError):
        wire.parse_reply(reply(status="error", result=None, error=error, calls=1), cap=1024)
    fields = wire.classify(wire.parse_reply(reply(calls=2), cap=1024), None, restricted=True, limits={})
    assert fields["calls"] == 2
