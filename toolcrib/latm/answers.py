"""How a snippet's ``ans`` becomes the task's answer.

The paper's format asks the model to turn the function's return value into
the answer, "for a multiple-choice question, into an option", and models
write an option as ``"E"``, ``"(E)"``, ``5`` or the option's text. Answers in
task files are text. So every snippet toolcrib runs for the loop (the tool
maker's use cases, stored as test cases, and the tool user's snippets) ends
with a short epilogue, visible in the stored test, that reads ``ans`` the
same way:

1. if the snippet assigned ``ans1``/``ans2``... but never ``ans``, the last of
   those is the answer (how the paper's tool user read it);
2. when the question lists options ``(A) ...``, an option's label, its
   letter, its 1-based number or its exact text becomes the label ``"(A)"``;
3. when the expected answer is text, a number becomes its text (``74514``
   becomes ``"74514"``).

Nothing else is changed: a tuple where the answer is text stays a mismatch.
The epilogue runs in the sandbox with the snippet; the host only compares
the JSON that comes back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .replies import answer_variable

__all__ = ["EPILOGUE_MARK", "options", "read_answer", "with_epilogue"]

EPILOGUE_MARK = '# toolcrib: read `ans` as the task\'s answer (docs/latm.md, "Answers")'

_OPTION = re.compile(r"^[ \t]*(\([A-Z]\))[ \t]+(.+?)[ \t]*$", re.MULTILINE)

# How `ans` is read as the task's answer: one definition, run in the sandbox
# as the epilogue's function and on the host as `read_answer` (evidence.py
# asks whether a literal in a snippet would become the target).
_READ_ANSWER = """def toolcrib_answer(value, options, as_text):
    if isinstance(value, bool) or value is None:
        return value
    for number, (label, text) in enumerate(options, 1):
        if value in (label, label[1:-1], number, text):
            return label
    if as_text and isinstance(value, (int, float)):
        return str(value)
    return value
"""

_EPILOGUE = """
{mark}
{alias}{read_answer}
ans = toolcrib_answer(ans, {options!r}, {as_text!r})
"""


def _host_reader() -> Callable[[Any, list[tuple[str, str]], bool], Any]:
    namespace: dict[str, Any] = {}
    exec(_READ_ANSWER, namespace)  # noqa: S102 - toolcrib's own constant text, never a model's
    reader: Callable[[Any, list[tuple[str, str]], bool], Any] = namespace["toolcrib_answer"]
    return reader


read_answer = _host_reader()
"""What the epilogue's ``toolcrib_answer`` makes of a value, on the host."""


def options(question: str) -> list[tuple[str, str]]:
    """The (label, text) options listed after "Options:" in a question."""
    _, found, rest = question.partition("Options:")
    return _OPTION.findall(rest) if found else []


def with_epilogue(snippet: str, question: str, *, as_text: bool) -> str:
    """The snippet followed by the epilogue that reads its answer."""
    variable = answer_variable(snippet)
    alias = f"ans = {variable}\n" if variable not in (None, "ans") else ""
    epilogue = _EPILOGUE.format(
        mark=EPILOGUE_MARK, alias=alias, read_answer=_READ_ANSWER, options=options(question), as_text=as_text
    )
    return snippet.rstrip() + "\n" + epilogue
