"""The loop's prompts: the LATM paper's stages as templates, in our own words.

Tool making is one conversation: propose (k demos as Question/Answer pairs),
verify (unit tests on validation examples), wrap (the function and its use
cases as Question/Solution pairs). The tool user gets the wrapped tool and a
question; the dispatcher gets one question per tool and picks a task name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .replies import UseCase
from .tasks import Example

__all__ = [
    "dispatch_prompt",
    "fix_prompt",
    "propose_prompt",
    "qa_pairs",
    "use_prompt",
    "verify_prompt",
    "wrap_prompt",
    "wrapped_tool",
]

_CODE_FORMAT = "{ret} and store the return value in `ret`, then turn `ret` into the answer (for a multiple-choice question, the option) and store it in `ans`"


def _answer_text(target: object) -> str:
    return target if isinstance(target, str) else repr(target)


def qa_pairs(examples: Iterable[Example]) -> str:
    return "\n\n".join(f"Question: {e.input}\nAnswer: {_answer_text(e.target)}" for e in examples)


def propose_prompt(demos: Sequence[Example]) -> str:
    return (
        f"{qa_pairs(demos)}\n\n"
        "Write a generic Python function that solves this type of problem, using only the Python standard "
        "library. Its return value should be easy to turn into the answer (for a multiple-choice question, "
        "into an option). After the function, add code that calls it on the questions above. "
        "Put all the code in ```python blocks."
    )


def verify_prompt(validation: Sequence[Example]) -> str:
    steps = _CODE_FORMAT.format(ret="parse the question into the function's arguments, call the function")
    return (
        f"{qa_pairs(validation)}\n\n"
        "Write unit tests that check the function on the questions above. For each question: "
        f"{steps}; then `assert ans ==` the answer given. Put the tests in a ```python block."
    )


def fix_prompt(stage: str, problem: str) -> str:
    what = (
        "the function and the tests"
        if stage == "verify"
        else (
            "the wrapped tool: keep the function exactly as it was verified, correct the use cases"
            if stage == "wrap"
            else "the function"
        )
    )
    return (
        f"That did not work: {problem}. Fix {what} and reply again in the same format, "
        "with the complete code in ```python blocks."
    )


def rejected_prompt(ref: str, reviewer: str, reason: str) -> str:
    """What the model is told first when a reviewer rejected the previous
    tool made for this task: the reviewer's own words (issue 18)."""
    return (
        f"A human reviewer rejected the previous tool made for this task ({ref}). "
        f"The reviewer ({reviewer}) wrote: {reason}\n"
        "Write the new function so that it answers this objection.\n\n"
    )


def wrap_prompt() -> str:
    steps = _CODE_FORMAT.format(ret="parse the question into the function's arguments, call the function")
    return (
        "The tests pass. Summarise the function and how to use it, in exactly this format:\n\n"
        "Here is a function to solve a class of problems:\n"
        "```python\n{the function, with the imports it needs}\n```\n\n"
        "Use cases:\n"
        "Question: {a question from the tests, with its options}\n"
        "Solution:\n"
        f"```python\n{{{steps}}}\n```\n\n"
        "Write one use case for each question of the tests."
    )


def wrapped_tool(source: str, cases: Sequence[UseCase]) -> str:
    """The wrapped tool as the tool user sees it: the stored source and its use cases."""
    parts = ["Here is a function to solve a class of problems:", f"```python\n{source.rstrip()}\n```", "", "Use cases:"]
    for case in cases:
        parts += ["", f"Question: {case.question}", "Solution:", f"```python\n{case.solution.rstrip()}\n```"]
    return "\n".join(parts)


def use_prompt(wrapped: str, question: str) -> str:
    return (
        f"{wrapped}\n\nQuestion: {question}\n\n"
        "Reply with the Solution for this question: one ```python block that parses the question, calls the "
        "function and stores the answer in `ans`, like the use cases above."
    )


def dispatch_prompt(tasks: Sequence[tuple[str, str]], question: str) -> str:
    listed = "".join(f"Task: {name}\n\nQuestion: {example}\n\n===\n\n" for name, example in tasks)
    return (
        "Here are questions from several tasks:\n\n"
        f"{listed}"
        "Which of these tasks does the following question belong to? Answer unknown if it belongs to none.\n\n"
        f"{question}\n\n"
        "Reply in the format:\nTask: {task name or unknown}"
    )
