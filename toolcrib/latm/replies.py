"""Reading a model's Markdown replies: code blocks, the wrapped tool's use
cases, and which code counts as "the same function".

Only text and `ast` here: nothing a model wrote is ever run on the host.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = ["UseCase", "answer_variable", "code_blocks", "code_key", "defines", "use_cases", "whitespace_free"]

# Fenced blocks tagged python/py/python3 or untagged, the way tool makers reply.
_BLOCK = re.compile(r"^[ \t]*```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE | re.IGNORECASE)
_QUESTION = re.compile(r"^[ \t]*Question:[ \t]*", re.MULTILINE)
_SOLUTION = re.compile(r"^[ \t]*Solution:[ \t]*$", re.MULTILINE)
_ANSWER_LINE = re.compile(r"^[ \t]*Answer:.*$", re.MULTILINE)
_ANS_NAME = re.compile(r"ans\w*")


@dataclass(frozen=True)
class UseCase:
    """One "Question: ... Solution: ```python```" pair of a wrapped tool."""

    question: str
    solution: str


def code_blocks(reply: str) -> list[str]:
    """The Python code blocks of a reply, in order (a reply with no fence that parses as Python is code itself)."""
    blocks = [b.rstrip() + "\n" for b in _BLOCK.findall(reply) if b.strip()]
    if not blocks and "```" not in reply and reply.strip() and _parses(reply):
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
        blocks = code_blocks(chunk[marker.end():])
        if not blocks or "```" not in chunk[marker.end():]:
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


def defines(code: str, name: str) -> bool:
    """Does the code define a top-level function `name`?"""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)


def code_key(source: str) -> str:
    """What must match for two sources to be "the same code": the AST (so
    comments, blank lines and quoting may differ), leaving out test functions
    (``test_*``) that a unit-test reply adds beside the tool."""
    tree = ast.parse(source)
    tree.body = [
        node for node in tree.body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"))
    ]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)
