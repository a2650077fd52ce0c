"""What a docstring says of the parameters: a description and, where the
maker wrote one, a type, for each; and the docstring without its parameter
section (a tool's description, where each parameter's schema already says it).

Four styles are read (docs/formats.md, "Types and descriptions from
docstrings"):

- Google: ``Args:`` (or ``Parameters:``, ``Arguments:``...) then indented
  ``name (type): description`` entries;
- CRAFT-style: the same header with its entries at the header's own indent
  (``Parameters:`` / ``x (int): ...``), optionally bulleted (``- x (int): ...``);
- numpydoc: ``Parameters`` underlined with dashes, then ``name : type``
  lines with indented descriptions;
- reST (Sphinx): ``:param [type] name: description`` and ``:type name: type``.

Only the standard library: the CLI and the exports import this without
pydantic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["DocParam", "Docstring", "annotation_text", "parse_docstring", "without_parameter_sections"]

_ARGS_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Kwargs|Other Parameters|Inputs?)\s*:\s*$",
    re.IGNORECASE,
)
_RETURNS_HEADER = re.compile(r"^(Returns?|Yields?|Outputs?)\s*:\s*(?P<rest>.*)$", re.IGNORECASE)
# Any other "Word:" section header (Raises:, Examples:, Note:...): the end of a section.
_OTHER_HEADER = re.compile(r"^[A-Z][A-Za-z ]{1,30}:\s*$")
_ENTRY = re.compile(r"^(?:[-*•]\s+)?\*{0,2}(?P<name>[A-Za-z_]\w*)\s*(?:\((?P<type>[^)]*)\))?\s*:\s*(?P<desc>.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(?P<names>\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::\s*(?P<type>.*))?$")
_NUMPY_PARAM_HEADERS = ("Parameters", "Other Parameters", "Arguments", "Args")
_SPHINX_PARAM = re.compile(
    r"^:(?:param|parameter|arg|argument|key|keyword)\s+(?:(?P<type>[^:]*?)\s+)?\*{0,2}(?P<name>\w+)\s*:\s*(?P<desc>.*)$"
)
_SPHINX_TYPE = re.compile(r"^:type\s+\*{0,2}(?P<name>\w+)\s*:\s*(?P<type>.*)$")
_SPHINX_RETURNS = re.compile(r"^:(?:returns?|rtype)\s*:")


@dataclass
class DocParam:
    """One parameter as the docstring describes it."""

    description: str = ""
    type: str | None = None


@dataclass
class Docstring:
    params: dict[str, DocParam] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _collapse(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def _underlined(lines: list[str], i: int) -> bool:
    return i + 1 < len(lines) and bool(lines[i + 1].strip()) and set(lines[i + 1].strip()) == {"-"}


def _clean_type(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip().rstrip(",").strip()
    return text or None


class _Reader:
    def __init__(self, doc: str) -> None:
        self.lines = doc.expandtabs().splitlines()
        self.params: dict[str, tuple[list[str], list[str | None]]] = {}
        # Line ranges [start, end) of the parameter sections (for the description without them).
        self.sections: list[tuple[int, int]] = []

    def entry(self, name: str) -> tuple[list[str], list[str | None]]:
        return self.params.setdefault(name, ([], [None]))

    def set_type(self, name: str, text: str | None) -> None:
        text = _clean_type(text)
        if text:
            self.entry(name)[1][0] = text

    def google(self, i: int) -> int:
        """An ``Args:`` section starting at line i; returns the line after it."""
        lines = self.lines
        base = _indent(lines[i])
        start = i
        i += 1
        current: list[str] | None = None
        entry_indent: int | None = None
        while i < len(lines):
            body = lines[i]
            text = body.strip()
            if not text:
                # A blank line ends a same-indent (CRAFT) section; an indented one may go on.
                if entry_indent is not None and entry_indent <= base:
                    break
                i += 1
                continue
            indent = _indent(body)
            if indent < base or (indent == base and (_OTHER_HEADER.match(text) or _RETURNS_HEADER.match(text))):
                break
            if entry_indent is not None and indent < entry_indent:
                break
            match = _ENTRY.match(text)
            if match and (entry_indent is None or indent == entry_indent):
                entry_indent = indent if entry_indent is None else entry_indent
                current = self.entry(match["name"])[0]
                current.append(match["desc"])
                self.set_type(match["name"], match["type"])
            elif indent == base:
                break  # a line at the header's indent that is no entry: the section is over
            elif current is not None:
                current.append(text)
            i += 1
        self.sections.append((start, i))
        return i

    def numpy(self, i: int) -> int:
        lines = self.lines
        base = _indent(lines[i])
        start = i
        i += 2
        current: list[str] | None = None
        while i < len(lines):
            body = lines[i]
            if body.strip() and _indent(body) <= base and _underlined(lines, i):
                break  # the next section
            if body.strip():
                if _indent(body) <= base:
                    match = _NUMPY_ENTRY.match(body.strip())
                    if match:
                        current = []
                        for name in re.split(r"\s*,\s*", match["names"]):
                            name = name.lstrip("*")
                            self.params[name] = (current, self.entry(name)[1])
                            self.set_type(name, match["type"])
                    else:
                        current = None
                elif current is not None:
                    current.append(body.strip())
            i += 1
        self.sections.append((start, i))
        return i

    def sphinx(self, i: int) -> int:
        lines = self.lines
        text = lines[i].strip()
        start = i
        param = _SPHINX_PARAM.match(text)
        typed = _SPHINX_TYPE.match(text)
        target: list[str] | None = None
        if param:
            target = self.entry(param["name"])[0]
            target.append(param["desc"])
            self.set_type(param["name"], param["type"])
        elif typed:
            self.set_type(typed["name"], typed["type"])
        base = _indent(lines[i])
        i += 1
        while i < len(lines) and lines[i].strip() and _indent(lines[i]) > base and not lines[i].strip().startswith(":"):
            if target is not None:
                target.append(lines[i].strip())
            i += 1
        self.sections.append((start, i))
        return i

    def read(self) -> None:
        lines = self.lines
        i = 0
        while i < len(lines):
            text = lines[i].strip()
            if _ARGS_HEADER.match(text):
                i = self.google(i)
            elif _underlined(lines, i) and text in _NUMPY_PARAM_HEADERS:
                i = self.numpy(i)
            elif _SPHINX_PARAM.match(text) or _SPHINX_TYPE.match(text):
                i = self.sphinx(i)
            else:
                i += 1


def parse_docstring(doc: str | None) -> Docstring:
    """Each documented parameter's description and type (as written), in any
    of the four styles."""
    out = Docstring()
    if not doc:
        return out
    reader = _Reader(doc)
    reader.read()
    for name, (parts, typ) in reader.params.items():
        out.params[name] = DocParam(_collapse(parts), typ[0])
    return out


def without_parameter_sections(doc: str | None) -> str:
    """The docstring without the sections that describe its parameters
    (what each parameter's schema says already), blank runs collapsed."""
    if not doc:
        return ""
    reader = _Reader(doc)
    reader.read()
    drop = {line for start, end in reader.sections for line in range(start, end)}
    kept = [line for index, line in enumerate(reader.lines) if index not in drop]
    text = "\n".join(kept).strip()
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text)


_TYPE_WORDS = {
    "string": "str",
    "strings": "str",
    "text": "str",
    "integer": "int",
    "integers": "int",
    "boolean": "bool",
    "booleans": "bool",
    "number": "float",
    "numbers": "float",
    "numeric": "float",
    "array": "list",
    "sequence": "list",
    "dictionary": "dict",
    "mapping": "dict",
    "none": "None",
}


def annotation_text(written: str | None) -> str | None:
    """A docstring's type, as written (``float``, ``list of str``, ``int,
    optional``, ``str or None``), as a Python annotation expression; None
    when there is none. Whether the expression names a type the signature
    deriver knows is the deriver's business."""
    if not written:
        return None
    text = written.strip()
    # "int, optional", "int, default 3", "int (optional)": optionality is the default's business.
    text = re.sub(r"\(?\boptional\b\)?", "", text, flags=re.IGNORECASE)
    text = re.sub(r",?\s*default(?:s)?\b.*$", "", text, flags=re.IGNORECASE)
    text = text.strip().strip(",").strip()
    if not text or len(text) > 100:
        return None

    def word(match: re.Match[str]) -> str:
        return _TYPE_WORDS.get(match[0].lower(), match[0])

    # "list of str" / "list of strings" -> list[str] (one level)
    of = re.fullmatch(r"(list|set|tuple|sequence|array|iterable)\s+of\s+([A-Za-z_][\w.]*)", text, re.IGNORECASE)
    if of:
        container = _TYPE_WORDS.get(of[1].lower(), of[1].lower())
        item = _TYPE_WORDS.get(of[2].lower(), of[2])
        text = f"{container}[{item}]" if container != "tuple" else f"tuple[{item}, ...]"
    text = re.sub(r"\s+or\s+", " | ", text)
    text = re.sub(r"(?<![.\w])[A-Za-z_]\w*", word, text)
    return text
