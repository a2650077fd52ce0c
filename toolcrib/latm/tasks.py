"""Task files: the examples a tool is made from, and questions for the tool user.

One format in three spellings: a JSON list of ``{"input", "target"}``
objects, the same list under ``{"examples": [...]}`` (BIG-Bench's shape, other
keys ignored), or JSONL (one object a line). ``target`` is optional for
questions given to the tool user, and required for making a tool.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry.errors import InvalidInput
from ..sandbox.inside.wire import MAX_FILE_DEPTH, MAX_JSON_BYTES, NotJSON, OverBound, read_json

__all__ = ["Example", "Task", "load_task", "parse_task"]

_MISSING = object()


@dataclass(frozen=True)
class Example:
    input: str
    target: Any = None
    has_target: bool = False


@dataclass(frozen=True)
class Task:
    name: str
    examples: list[Example]
    sha256: str
    path: str | None = None


def _examples(data: Any, origin: str) -> list[Example]:
    if isinstance(data, dict):
        if "examples" not in data:
            raise InvalidInput(f"{origin}: an object must hold the examples under 'examples'")
        data = data["examples"]
    if not isinstance(data, list):
        raise InvalidInput(f'{origin}: expected a list of {{"input", "target"}} objects')
    examples: list[Example] = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("input"), str) or not item["input"].strip():
            raise InvalidInput(f"{origin}: example {number} needs an 'input' string")
        target = item.get("target", _MISSING)
        examples.append(Example(item["input"], None if target is _MISSING else target, target is not _MISSING))
    return examples


def parse_task(raw: bytes, *, name: str, origin: str) -> Task:
    """Read a task from the bytes of its file (UTF-8 JSON or JSONL)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{origin} is not UTF-8 text") from None
    # The host's one bounded reader (size, depth, integer digits, finite
    # numbers): a number over a bound is refused, never retried as JSONL.
    try:
        data: Any = read_json(text, origin, max_depth=MAX_FILE_DEPTH)
    except OverBound as exc:
        raise InvalidInput(str(exc)) from None
    except NotJSON as first:
        lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
        try:
            data = [read_json(line, f"{origin}: line {number}", max_depth=MAX_FILE_DEPTH) for number, line in lines]
        except OverBound as exc:
            raise InvalidInput(str(exc)) from None
        except NotJSON:
            raise InvalidInput(f"{origin} is neither JSON nor JSONL: {first.detail}") from None
    # The digest is of the file's bytes, so `sha256sum TASK` matches the provenance.
    return Task(name=name, examples=_examples(data, origin), sha256=hashlib.sha256(raw).hexdigest())


def load_task(path: str | Path) -> Task:
    """Read a task file; its name is the file name without extension."""
    file = Path(path)
    try:
        with file.open("rb") as handle:  # at most one byte past the bound: /dev/zero is no task
            raw = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"task file not found: {file}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read task file {file}: {exc}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise InvalidInput(f"task file {file} is larger than {MAX_JSON_BYTES} bytes")
    name = file.name.split(".")[0] or "task"
    task = parse_task(raw, name=name, origin=str(file))
    return Task(name=task.name, examples=task.examples, sha256=task.sha256, path=str(file))
