"""Small tasks and scripted model replies for the LATM loop tests (our own
data, written for these tests). Each task is a list of {"input", "target"}."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from toolcrib.latm import Reply

__all__ = [
    "DAYS",
    "DAYS_REPLIES",
    "SORT",
    "SORT_PROPOSAL",
    "SORT_TESTS",
    "SORT_WRAP",
    "sort_wrap",
    "write_json",
]


def _sort_question(words: str) -> str:
    return f"Sort the following words alphabetically: List: {words}"


_WORD_LISTS = [
    "pear apple",
    "fig date kiwi",
    "oven ant",
    "zebra yak xylophone",
    "moth lark heron",
    "cedar birch ash",
    "tulip rose",
    "violet lily iris",
    "quartz opal",
]
SORT = [{"input": _sort_question(w), "target": " ".join(sorted(w.split()))} for w in _WORD_LISTS]

SORT_FUNCTION = '''def sort_words(question):
    """Sort the words listed after 'List:' alphabetically."""
    words = question.split("List:")[1].split()
    return sorted(words)
'''

SORT_PROPOSAL = f"""Here is a generic function:

```python
{SORT_FUNCTION}
# Example usage:
print(" ".join(sort_words("Sort the following words alphabetically: List: pear apple")))
```
"""

SORT_TESTS = """```python
# Test 1
ret = sort_words("Sort the following words alphabetically: List: zebra yak xylophone")
ans = " ".join(ret)
assert ans == "xylophone yak zebra"

# Test 2
ret = sort_words("Sort the following words alphabetically: List: moth lark heron")
ans = " ".join(ret)
assert ans == "heron lark moth"

# Test 3
ret = sort_words("Sort the following words alphabetically: List: cedar birch ash")
ans = " ".join(ret)
assert ans == "ash birch cedar"
```
"""


def sort_wrap(
    function: str = SORT_FUNCTION,
    answers: tuple[str, str, str] = ("xylophone yak zebra", "heron lark moth", "ash birch cedar"),
) -> str:
    cases = []
    for words, answer in zip(("zebra yak xylophone", "moth lark heron", "cedar birch ash"), answers):
        cases.append(
            f"Question: {_sort_question(words)}\nAnswer: {answer}\n\nSolution:\n```python\n"
            f'ret = sort_words("{_sort_question(words)}")\nans = " ".join(ret)\n```\n'
        )
    return (
        "Here is a function to solve a class of problems:\n\n```python\n"
        + function
        + "```\n\nUse cases:\n\n"
        + "\n".join(cases)
    )


SORT_WRAP = sort_wrap()


def _days_question(a: date, b: date) -> str:
    return f"How many days are there from {a.isoformat()} to {b.isoformat()}?"


_DATE_PAIRS = [
    (date(2023, 1, 1), date(2023, 2, 1)),
    (date(2020, 2, 1), date(2020, 3, 1)),
    (date(2021, 12, 25), date(2022, 1, 1)),
    (date(2019, 3, 1), date(2019, 3, 31)),
    (date(2024, 2, 28), date(2024, 3, 1)),
    (date(2000, 1, 1), date(2000, 12, 31)),
    (date(2022, 7, 4), date(2022, 7, 14)),
]
DAYS = [{"input": _days_question(a, b), "target": (b - a).days} for a, b in _DATE_PAIRS]

_DAYS_FUNCTION = '''from datetime import date

def days_between(first, second):
    """Days from the first ISO date to the second."""
    return (date.fromisoformat(second) - date.fromisoformat(first)).days
'''


def _days_solution(question: str) -> str:
    first, second = question.split("from ")[1].rstrip("?").split(" to ")
    return f'ret = days_between("{first}", "{second}")\nans = ret\n'


DAYS_REPLIES = [
    f"```python\n{_DAYS_FUNCTION}\nprint(days_between('2023-01-01', '2023-02-01'))\n```",
    "```python\n" + "".join(_days_solution(e["input"]) + f"assert ans == {e['target']}\n" for e in DAYS[3:6]) + "```",
    "Here is a function to solve a class of problems:\n```python\n"
    + _DAYS_FUNCTION
    + "```\n\nUse cases:\n\n"
    + "\n".join(f"Question: {e['input']}\nSolution:\n```python\n{_days_solution(e['input'])}```\n" for e in DAYS[3:6]),
]


def write_json(path: Path, data: object) -> str:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return str(path)


class RecordingModel:
    """A scripted model that also keeps the prompts it was sent (and, with
    ``tokens``, reports token counts as a real model does)."""

    model_id = "recording"

    def __init__(self, replies: list[str], *, tokens: bool = False) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.tokens = tokens

    def start(self) -> RecordingModel:
        return self

    def send(self, prompt: str) -> Reply:
        self.prompts.append(prompt)
        if self.tokens:
            return Reply(self.replies.pop(0), input_tokens=len(prompt), output_tokens=7)
        return Reply(self.replies.pop(0))
