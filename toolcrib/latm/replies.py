"""Reading a model's Markdown replies: code blocks, the wrapped tool's use
cases, and which code counts as "the same function".

Only text and `ast` here: nothing a model wrote is ever run on the host.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = [
    "MAX_REPLY_CHARS",
    "ReplyTooLong",
    "UseCase",
    "answer_names",
    "answer_variable",
    "check_reply",
    "code_blocks",
    "code_key",
    "defines",
    "for_record",
    "use_cases",
    "whitespace_free",
]

# The longest model reply the loop reads, in characters. A wrapped tool is
# admitted as a whole reply and admission takes at most 256 KiB of source
# (registry.admission.MAX_SOURCE_BYTES), so a longer reply could never
# become a tool; reading one would only cost the host time and memory.
MAX_REPLY_CHARS = 256 * 1024

# Tags of fenced blocks taken as Python (compared lower-case): python, py,
# python3, or none (a bare fence), the way tool makers reply.
_PYTHON_TAGS = frozenset({"", "python", "python3", "py"})
_FENCE = "```"
_QUESTION = re.compile(r"^[ \t]*Question:[ \t]*", re.MULTILINE)
_SOLUTION = re.compile(r"^[ \t]*Solution:[ \t]*$", re.MULTILINE)
_ANSWER_LINE = re.compile(r"^[ \t]*Answer:.*$", re.MULTILINE)
_ANS_NAME = re.compile(r"ans\w*")


class ReplyTooLong(ValueError):
    """A model reply over MAX_REPLY_CHARS: refused whole, never read."""


def check_reply(text: str) -> str:
    """`text` if it is within MAX_REPLY_CHARS, else ReplyTooLong saying so."""
    if len(text) > MAX_REPLY_CHARS:
        raise ReplyTooLong(
            f"the reply is {len(text)} characters; model replies are capped at {MAX_REPLY_CHARS} "
            "(toolcrib.latm.replies.MAX_REPLY_CHARS) and this one was not read"
        )
    return text


def for_record(text: str) -> str:
    """What a transcript keeps of a reply: all of it up to the cap, else its
    start and a note (the reply was refused; the record stays bounded)."""
    if len(text) <= MAX_REPLY_CHARS:
        return text
    return text[:MAX_REPLY_CHARS] + f"\n[toolcrib: reply cut at {MAX_REPLY_CHARS} of {len(text)} characters]"


@dataclass(frozen=True)
class UseCase:
    """One "Question: ... Solution: ```python```" pair of a wrapped tool."""

    question: str
    solution: str


def _opening_tag(line: str) -> str | None:
    """The lower-case tag of a line that opens a fenced block (exactly three
    backticks, then an optional word), else None. String operations only:
    each line is looked at a bounded number of times."""
    stripped = line.strip(" \t")
    if not stripped.startswith(_FENCE) or stripped.startswith(_FENCE + "`"):
        return None
    return stripped[len(_FENCE) :].strip(" \t").lower()


def _closes(line: str) -> bool:
    return line.strip(" \t") == _FENCE


def _fenced(reply: str) -> list[tuple[str, str]]:
    """(tag, body) of every closed fenced block, in one pass over the lines.

    A fence that is never closed ends the scan: no line after it closes
    anything, so nothing after it can be a closed block either. (A
    backtracking pattern over the whole text retried from every later line,
    quadratic in the reply.) A block tagged as another language is skipped
    whole, so its closing fence never opens a block."""
    lines = reply.split("\n")
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(lines) - 1:  # an opening line needs a line after it
        tag = _opening_tag(lines[i])
        if tag is None:
            i += 1
            continue
        close = next((j for j in range(i + 1, len(lines)) if _closes(lines[j])), None)
        if close is None:
            break
        found.append((tag.split()[0] if tag else "", "\n".join(lines[i + 1 : close])))
        i = close + 1
    return found


def code_blocks(reply: str) -> list[str]:
    """The Python code blocks of a reply, in order (a reply with no fence that parses as Python is code itself)."""
    blocks = [b.rstrip() + "\n" for tag, b in _fenced(reply) if tag in _PYTHON_TAGS and b.strip()]
    if not blocks and _FENCE not in reply and reply.strip() and _parses(reply):
        return [reply.rstrip() + "\n"]
    return blocks


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def use_cases(reply: str) -> list[UseCase]:
    """The use cases of a wrapped tool: every "Question:" followed by a
    "Solution:" and a code block. An "Answer:" line the model copied into the
    question is dropped (answers come from the task file, not the model)."""
    found: list[UseCase] = []
    starts = [m.end() for m in _QUESTION.finditer(reply)]
    ends = [m.start() for m in _QUESTION.finditer(reply)][1:] + [len(reply)]
    for start, end in zip(starts, ends):
        chunk = reply[start:end]
        marker = _SOLUTION.search(chunk)
        if marker is None:
            continue
        blocks = code_blocks(chunk[marker.end() :])
        if not blocks or "```" not in chunk[marker.end() :]:
            continue
        question = _ANSWER_LINE.sub("", chunk[: marker.start()]).strip()
        if question:
            found.append(UseCase(question=question, solution=blocks[0]))
    return found


def whitespace_free(text: str) -> str:
    """Text compared without any whitespace: models reflow questions (a
    newline becomes a space, spaces between brackets vanish)."""
    return "".join(text.split())


def _assigned(tree: ast.AST) -> list[str]:
    names: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append((node.lineno, node.col_offset, node.id))
    return [name for _, _, name in sorted(names)]


def answer_variable(snippet: str) -> str | None:
    """The variable holding a snippet's answer: ``ans`` if it is assigned, else
    the last assigned name that starts with ``ans`` (models number them:
    ``ans1``, ``ans2``), as the paper's tool user read it; None if neither."""
    try:
        assigned = _assigned(ast.parse(snippet))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if "ans" in assigned:
        return "ans"
    numbered = [name for name in assigned if _ANS_NAME.fullmatch(name)]
    return numbered[-1] if numbered else None


def answer_names(snippet: str) -> list[str]:
    """Every name a snippet may leave its answer in: ``ans`` and the numbered
    ``ans1``, ``ans2``... it assigns (``["ans"]`` if it assigns none, or
    cannot be read)."""
    try:
        assigned = _assigned(ast.parse(snippet))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ["ans"]
    return sorted({name for name in assigned if _ANS_NAME.fullmatch(name)} | {"ans"})


def defines(code: str, name: str) -> bool:
    """Does the code define a top-level function `name`?"""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)


def code_key(source: str) -> str:
    """What must match for two sources to be "the same code": the AST, every
    top-level statement of it (comments, blank lines and quoting may differ).
    `make` compares tool modules with evidence.module_key, which first drops
    the tests nothing in the module uses."""
    return ast.dump(ast.parse(source), annotate_fields=False, include_attributes=False)
