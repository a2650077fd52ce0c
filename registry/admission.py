"""Admission of tool source: what may be stored, decided from the text and its AST.

The host never runs tool code, so everything here reads the source with `ast`
and never `exec`s or imports it.

Rules (documented for users in docs/tests-format.md and the README):

* Input is a `.py` file's text, stdin, or an LLM's Markdown reply. In a reply,
  every fenced block tagged ``python``/``py``/``python3`` or bare (untagged)
  that parses as Python is a candidate; only blocks that define at least one
  top-level function or class are used — the others are the tool maker's usage
  examples and are skipped with a note. Used blocks are joined in order. A
  block whose every definition is redefined by a later used block is dropped
  (the later version of a function wins, as it would in Python).
* The top level may only hold imports, function and class definitions,
  constants (assignments whose value is built from literals, names, operators
  and a few side-effect-free constructors such as ``set(...)`` or
  ``re.compile(...)``), docstrings, ``if TYPE_CHECKING:`` imports and
  ``try:`` blocks made of those. ``if __name__ == "__main__":`` blocks are
  always stripped with a note (they would never run in the sandbox anyway).
  Anything else (calls, prints, loops, assignments from calls) is refused with
  its line, or removed with ``strip_top_level=True`` and reported in the notes.
* Stripping works on line ranges of the original text, so comments and
  formatting of what is kept stay byte-identical. A comment block directly
  above a removed statement (no blank line between) goes with it.
* Entrypoint: the named function, else the only public top-level function,
  else the only public function that no other top-level code refers to.
* What the tool needs from outside (`find_missing`, applied by
  `Registry.add`, which refuses unless ``allow_missing``): imports of modules
  neither in the standard library nor provided by the version's lock, and
  global names that neither the tool, its prelude nor the builtins bind
  (Python's own scoping, via `symtable`). See docs/packages.md.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .errors import AdmissionError, InvalidInput
from .pyast import ModuleNeeds, imported_names, module_needs

__all__ = [
    "Admitted",
    "MAX_SOURCE_BYTES",
    "Missing",
    "NAME_PATTERN",
    "admit",
    "check_name",
    "extract_python",
    "find_missing",
    "refuse_missing",
]

MAX_SOURCE_BYTES = 256 * 1024
NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # always used with fullmatch: "$" would accept a trailing newline

# Info strings of fenced blocks taken as Python; "" is a bare ``` fence.
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3", "{.python}", "ipython"})
_FENCE_CHARS = "`~"

# Builtins that only build values: calling them with constant arguments at
# the top level is a constant, not "example usage".
_PURE_BUILTINS = frozenset(
    {
        "set",
        "frozenset",
        "tuple",
        "list",
        "dict",
        "range",
        "str",
        "int",
        "float",
        "bool",
        "sorted",
        "enumerate",
        "zip",
        "reversed",
        "len",
        "chr",
        "ord",
        "min",
        "max",
        "abs",
        "object",
    }
)
# Dotted constructors allowed at the top level, by (module, attribute).
_PURE_DOTTED = frozenset(
    {
        ("re", "compile"),
        ("typing", "TypeVar"),
        ("typing", "NewType"),
        ("collections", "namedtuple"),
        ("string", "Template"),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
    }
)


@dataclass(frozen=True)
class Admitted:
    """The outcome of admission: what is stored, and what admission noticed."""

    source: str
    entrypoint: str
    public_functions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Block:
    code: str
    first_line: int  # 1-based line of the block's first code line in the reply
    index: int  # 1-based position among all fenced blocks of the reply


def check_name(name: str) -> str:
    """Return `name` if it is a valid tool name, else raise InvalidInput saying why."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(f"invalid tool name {name!r}: use 1 to 64 characters from letters, digits, '_' and '-'")
    return name


# -- Markdown --------------------------------------------------------------


@dataclass(frozen=True)
class _Fence:
    indent: str
    char: str
    length: int
    info: str  # stripped, lower-case


def _fence_open(line: str) -> _Fence | None:
    """The opening fence on a line (three or more backticks or tildes after
    spaces or tabs, then an info string holding no backtick), else None.
    String operations only, a few passes over the line: a pattern with two
    adjacent runs that may both match blanks backtracks quadratically on a
    long line of them, and a Markdown reply may be one such line."""
    body = line.lstrip(" \t")
    if not body or body[0] not in _FENCE_CHARS:
        return None
    char = body[0]
    length = len(body) - len(body.lstrip(char))
    info = body[length:]
    if length < 3 or "`" in info:
        return None
    return _Fence(line[: len(line) - len(body)], char, length, info.strip().lower())


def _closes(line: str, fence: _Fence) -> bool:
    """Does the line close the fence (the same character, at least as many, nothing else but blanks)?"""
    stripped = line.strip(" \t")
    return len(stripped) >= fence.length and stripped == fence.char * len(stripped)


def _looks_like_markdown(text: str) -> bool:
    if not any(_fence_open(line) for line in text.splitlines()):
        return False
    # A Python file may mention ``` inside a docstring; if it parses, it is Python.
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    return False


def _fenced_blocks(text: str) -> list[tuple[str, str, int, int]]:
    """(info, code, first code line, closing line) of every fenced block
    (CommonMark-style). One pass: each line is read as an opening, a body
    line or a closing once; a fence never closed runs to the end."""
    lines = text.split("\n")
    blocks: list[tuple[str, str, int, int]] = []
    i = 0
    while i < len(lines):
        fence = _fence_open(lines[i])
        if fence is None:
            i += 1
            continue
        indent, info = fence.indent, fence.info
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not _closes(lines[j], fence):
            line = lines[j]
            # Strip the fence's own indentation (fences inside list items).
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip(" \t"))
            j += 1
        blocks.append((info, "\n".join(body), i + 2, min(j + 1, len(lines))))
        i = j + 1
    return blocks


def _top_level_definitions(tree: ast.Module) -> set[str]:
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _extract_blocks(text: str) -> tuple[list[_Block], list[str]]:
    notes: list[str] = []
    candidates: list[tuple[_Block, set[str]]] = []
    for index, (info, code, first, last) in enumerate(_fenced_blocks(text), start=1):
        where = f"code block {index} (lines {first - 1}-{last})"
        tag = info.split()[0] if info else ""
        if tag not in _PYTHON_TAGS:
            notes.append(f"skipped {where}: tagged {tag!r}, not Python")
            continue
        if code.lstrip().startswith(">>>"):
            notes.append(f"skipped {where}: an interactive session (>>>), not source")
            continue
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            if tag == "":
                notes.append(f"skipped {where}: untagged and not valid Python")
                continue
            line = getattr(exc, "lineno", None)
            raise AdmissionError(
                f"{where} does not parse: {getattr(exc, 'msg', exc)}",
                first + line - 1 if line else first,
            ) from None
        defined = _top_level_definitions(tree)
        if not defined:
            notes.append(f"skipped {where}: no function or class definition (usage example, not stored)")
            continue
        candidates.append((_Block(code, first, index), defined))
    used: list[_Block] = []
    for position, (block, defined) in enumerate(candidates):
        later = set().union(*(d for _, d in candidates[position + 1 :]))
        if defined <= later:
            notes.append(
                f"skipped code block {block.index}: every definition in it ({', '.join(sorted(defined))}) "
                "is replaced by a later block"
            )
            continue
        used.append(block)
    if not used:
        raise AdmissionError("no Python code block defining a function was found in the Markdown text")
    notes.insert(
        0,
        "used code block"
        + ("s " if len(used) > 1 else " ")
        + ", ".join(f"{b.index} (from line {b.first_line})" for b in used)
        + " of the Markdown reply",
    )
    return used, notes


def _join_blocks(blocks: list[_Block]) -> tuple[str, list[tuple[int, int]]]:
    """The joined code and, per code line, a map back to the reply's lines:
    a list of (first code line, reply line of it) segments."""
    parts: list[str] = []
    segments: list[tuple[int, int]] = []
    line = 1
    for block in blocks:
        code = block.code.rstrip("\n")
        segments.append((line, block.first_line))
        parts.append(code)
        line += code.count("\n") + 1 + 2  # two blank separator lines
    return "\n\n\n".join(parts) + "\n", segments


def extract_python(text: str, *, markdown: bool | None = None) -> tuple[str, list[str]]:
    """The Python code in `text` and notes on what was used.

    ``markdown=None`` treats the text as Markdown when it has ``` fences and
    does not itself parse as Python; ``False`` takes it as Python as is.
    """
    code, notes, _ = _extract(text, markdown)
    return code, notes


def _extract(text: str, markdown: bool | None) -> tuple[str, list[str], list[tuple[int, int]] | None]:
    if markdown is None:
        markdown = _looks_like_markdown(text)
    if not markdown:
        return text, [], None
    blocks, notes = _extract_blocks(text)
    code, segments = _join_blocks(blocks)
    return code, notes, segments


def _reply_line(line: int | None, segments: list[tuple[int, int]] | None) -> int | None:
    """Translate a line of the extracted code to the line of the text given."""
    if line is None or not segments:
        return line
    start, origin = max((s for s in segments if s[0] <= line), default=segments[0])
    return origin + (line - start)


# -- top-level rules ---------------------------------------------------------


class _ConstantChecker:
    """Decides whether an expression only builds a value (no user code runs)."""

    def __init__(self, tree: ast.Module) -> None:
        self.imports = imported_names(tree)
        self.definitions = _top_level_definitions(tree)
        # Every name the module binds itself: `set = ...` shadows the builtin.
        self.user_names = self.definitions | {
            name
            for node in tree.body
            if not isinstance(node, (ast.Import, ast.ImportFrom))
            for name in _bound_names(node)
        }

    def pure_call(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            if func.id in self.user_names:
                return False
            if func.id in _PURE_BUILTINS and func.id not in self.imports:
                return True
            target = self.imports.get(func.id, "")
            return tuple(target.rsplit(".", 1)) in _PURE_DOTTED
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            module = self.imports.get(func.value.id)
            return module is not None and (module, func.attr) in _PURE_DOTTED
        return False

    def constant(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Call):
            arguments = [*node.args, *(k.value for k in node.keywords)]
            # `sorted(xs, key=helper)` would run the tool's own code at load time.
            passes_user_code = any(
                isinstance(n, ast.Name) and n.id in self.definitions for a in arguments for n in ast.walk(a)
            )
            return self.pure_call(node.func) and not passes_user_code and all(self.constant(a) for a in arguments)
        if isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return False
        # A lambda's body may run at load time (as a sort key), so it must be pure too.
        return all(self.constant(child) for child in ast.iter_child_nodes(node))


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _simple_target(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_simple_target(t) for t in target.elts)
    if isinstance(target, ast.Starred):
        return _simple_target(target.value)
    return False


def _admissible(node: ast.stmt, checker: _ConstantChecker) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return True
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant)
    if isinstance(node, ast.Assign):
        return all(_simple_target(t) for t in node.targets) and checker.constant(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and (node.value is None or checker.constant(node.value))
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        return all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass)) for s in node.body + node.orelse)
    if isinstance(node, ast.Try):
        inner = node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        return all(_admissible(s, checker) for s in inner)
    return False


def _describe(node: ast.stmt) -> str:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return "a call"
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and not all(
        _simple_target(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
    ):
        return "an assignment to an item or attribute"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return "an assignment that runs code"
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        return "a loop"
    if _is_main_guard(node):
        return "an `if __name__ == '__main__':` block"
    return f"a top-level {type(node).__name__} statement"


def _drop_example_constants(tree: ast.Module, drop: list[ast.stmt]) -> list[ast.stmt]:
    """Add to `drop` the constants that only stripped code uses (the example's
    data), and those built from what stripped code defined (``ans = ret``)."""
    added: list[ast.stmt] = []
    while True:
        kept = [n for n in tree.body if n not in drop]
        used_by_dropped = set().union(*(_referenced_names(n) for n in drop))
        bound_by_kept = {name for n in kept for name in _bound_names(n)}
        orphaned = {name for n in drop for name in _bound_names(n)} - bound_by_kept
        for node in kept:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue
            names = set(_bound_names(node))
            used_by_kept = set().union(*(_referenced_names(n) for n in kept if n is not node))
            only_example = names & used_by_dropped and not names & used_by_kept and "__all__" not in names
            if only_example or _referenced_names(node) & orphaned:
                drop.append(node)
                added.append(node)
                break
        else:
            return added


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _strip(source: str, tree: ast.Module, drop: list[ast.stmt]) -> tuple[str, list[tuple[int, int]], list[int]]:
    """Remove the statements' lines (plus a comment block directly above each).

    Returns the new text, the removed (first, last) line span of each dropped
    statement, and for each line of the new text its line in `source`."""
    lines = source.split("\n")
    keep_ranges = [(_first_line(n), n.end_lineno or n.lineno) for n in tree.body if n not in drop]
    kept_lines = {line for a, b in keep_ranges for line in range(a, b + 1)}
    removed: set[int] = set()
    spans: list[tuple[int, int]] = []
    for node in drop:
        start, end = _first_line(node), node.end_lineno or node.lineno
        clash = kept_lines.intersection(range(start, end + 1))
        if clash:
            raise AdmissionError(
                f"cannot strip {_describe(node)}: it shares line {min(clash)} with code that is kept; "
                "put it on its own line",
                min(clash),
            )
        while start > 1 and lines[start - 2].lstrip().startswith("#") and (start - 1) not in kept_lines:
            start -= 1
        spans.append((start, end))
        removed.update(range(start, end + 1))
    kept = [number for number in range(1, len(lines) + 1) if number not in removed]
    return "\n".join(lines[number - 1] for number in kept), spans, kept


def _public_functions(tree: ast.Module) -> list[str]:
    last: dict[str, ast.stmt] = {}
    for node in tree.body:
        for name in _bound_names(node):
            last[name] = node
    ordered: list[str] = []
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef)
            and not node.name.startswith("_")
            and last.get(node.name) is node
            and node.name not in ordered
        ):
            ordered.append(node.name)
    return ordered


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _referenced_names(node: ast.AST) -> set[str]:
    """Global names `node` reads; a function's parameters and locals do not count."""
    if isinstance(node, _SCOPES):
        spec = node.args
        outside: list[ast.AST] = [*spec.defaults, *(d for d in spec.kw_defaults if d)]
        if not isinstance(node, ast.Lambda):
            outside += node.decorator_list
        params = [*spec.posonlyargs, *spec.args, *spec.kwonlyargs, *filter(None, [spec.vararg, spec.kwarg])]
        body = node.body if isinstance(node.body, list) else [node.body]
        local = {a.arg for a in params}
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    local.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(sub.name)
        local -= {name for stmt in body for sub in ast.walk(stmt) if isinstance(sub, ast.Global) for name in sub.names}
        inner = set().union(*(_loads(stmt) for stmt in body)) - local
        return inner | set().union(*(_referenced_names(n) for n in outside))
    return _loads(node)


def _loads(node: ast.AST) -> set[str]:
    if isinstance(node, _SCOPES):
        return _referenced_names(node)
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) else set()
    return set().union(*(_loads(child) for child in ast.iter_child_nodes(node)))


def _choose_entrypoint(tree: ast.Module, public: list[str], wanted: str | None) -> tuple[str, list[str]]:
    last: dict[str, ast.stmt] = {}
    for node in tree.body:
        for name in _bound_names(node):
            last[name] = node
    listing = ", ".join(public) if public else "none"
    if wanted is not None:
        bound = last.get(wanted)
        if bound is None:
            raise AdmissionError(f"no top-level function named {wanted!r} (public functions: {listing})")
        if isinstance(bound, ast.AsyncFunctionDef):
            raise AdmissionError(f"{wanted!r} is an async function; an entrypoint must be a plain def", bound.lineno)
        if isinstance(bound, ast.ClassDef):
            raise AdmissionError(f"{wanted!r} is a class; an entrypoint must be a function", bound.lineno)
        if not isinstance(bound, ast.FunctionDef):
            raise AdmissionError(f"{wanted!r} is last bound by a statement that is not a def", bound.lineno)
        return wanted, []
    if len(public) == 1:
        return public[0], []
    if not public:
        private = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and last.get(n.name) is n]
        hint = f" (private functions: {', '.join(private)}; pass --entrypoint to use one)" if private else ""
        raise AdmissionError("no public top-level function to use as the entrypoint" + hint)
    used_elsewhere: set[str] = set()
    for node in tree.body:
        own = (
            set(_bound_names(node))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            else set()
        )
        used_elsewhere |= _referenced_names(node) - own
    roots = [name for name in public if name not in used_elsewhere]
    if len(roots) == 1:
        return roots[0], [
            f"entrypoint {roots[0]!r} chosen: the only public function no other top-level code uses "
            f"(others: {', '.join(n for n in public if n != roots[0])}); pass --entrypoint to choose another"
        ]
    candidates = ", ".join(roots or public)
    raise AdmissionError(f"several public functions could be the entrypoint ({candidates}); pass --entrypoint NAME")


# -- admission ---------------------------------------------------------------


def _as_text(text: str | bytes, max_bytes: int) -> str:
    if isinstance(text, bytes):
        size = len(text)
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            raise AdmissionError(f"the source is not UTF-8 text (bad byte at offset {exc.start})", line) from None
    elif isinstance(text, str):
        decoded = text
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise AdmissionError(
                "the source is not valid UTF-8 text (lone surrogate)", text[: exc.start].count("\n") + 1
            ) from None
    else:
        raise AdmissionError(f"the source must be text, not {type(text).__name__}")
    if size > max_bytes:
        raise AdmissionError(f"the source is {size} bytes; the limit is {max_bytes}")
    return decoded


def _normalize(text: str, notes: list[str]) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
        notes.append("removed a byte-order mark")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        notes.append("converted line endings to \\n")
    return text


def _parse(code: str, origin: Callable[[int | None], int | None]) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        raise AdmissionError(f"syntax error: {exc.msg}", origin(exc.lineno)) from None
    except ValueError as exc:  # e.g. NUL bytes on older 3.11 patch releases
        raise AdmissionError(f"the source cannot be parsed: {exc}") from None
    except (RecursionError, MemoryError):
        raise AdmissionError("the source is nested too deeply to parse") from None


def admit(
    text: str | bytes,
    *,
    entrypoint: str | None = None,
    strip_top_level: bool = False,
    markdown: bool | None = None,
    max_bytes: int = MAX_SOURCE_BYTES,
    forms: Mapping[str, str] | None = None,
    prelude: str | None = None,
) -> Admitted:
    """Check and normalize tool source for storage; raises AdmissionError naming the line.

    Line numbers in errors and notes refer to `text` as given (for a Markdown
    reply: lines of the reply). ``forms``: parameter forms declared at add
    (`signature.derive_signature`), checked against the entrypoint here.
    ``prelude``: the text run before it, whose imports name types too (the
    note on parameters that accept any value counts only those).
    """
    notes: list[str] = []
    text = _normalize(_as_text(text, max_bytes), notes)
    code, extract_notes, segments = _extract(text, markdown)
    notes.extend(extract_notes)
    try:
        return _admit_code(code, segments, entrypoint, strip_top_level, notes, forms, prelude)
    except RecursionError:
        raise AdmissionError("the source is nested too deeply to check") from None


def _admit_code(
    code: str,
    segments: list[tuple[int, int]] | None,
    entrypoint: str | None,
    strip_top_level: bool,
    notes: list[str],
    forms: Mapping[str, str] | None = None,
    prelude: str | None = None,
) -> Admitted:
    def origin(line: int | None) -> int | None:
        return _reply_line(line, segments)

    tree = _parse(code, origin)
    checker = _ConstantChecker(tree)
    drop: list[ast.stmt] = []
    for node in tree.body:
        if _is_main_guard(node):
            drop.append(node)
            continue
        if _admissible(node, checker):
            continue
        if not strip_top_level:
            raise AdmissionError(
                f"{_describe(node)} at the top level would run when the tool loads; only imports, "
                "definitions, constants and docstrings are allowed (use --strip-top-level to remove it)",
                origin(node.lineno),
            )
        drop.append(node)
    examples: list[ast.stmt] = []
    if drop and strip_top_level:
        examples = _drop_example_constants(tree, drop)
    if drop:
        drop.sort(key=_first_line)
        code, spans, kept = _strip(code, tree, drop)
        for node, (start, end) in zip(drop, spans):
            a, b = origin(start), origin(end)
            where = f"line {a}" if a == b else f"lines {a}-{b}"
            if node in examples:
                names = ", ".join(repr(n) for n in _bound_names(node))
                what = f"an example constant ({names}) tied to stripped code"
            else:
                what = _describe(node)
            notes.append(f"stripped {what} at {where}")
        before = origin

        def origin(line: int | None) -> int | None:  # lines now refer to the stripped text
            return before(kept[line - 1]) if line is not None and 0 < line <= len(kept) else before(line)

        tree = _parse(code, origin)
    code = code.rstrip() + "\n"
    if not _top_level_definitions(tree):
        raise AdmissionError("the source defines no top-level function to use as the entrypoint")
    public = _public_functions(tree)
    try:
        chosen, choice_notes = _choose_entrypoint(tree, public, entrypoint)
        notes.extend(choice_notes)
        # Parameter checks (no *args, no positional-only) and the untyped list
        # live with the signature, which reads the same AST.
        from .signature import DOCSTRING_KEY, derive_signature

        signature = derive_signature(code, chosen, forms=forms, prelude=prelude)
    except AdmissionError as exc:
        raise AdmissionError(exc.message.removeprefix(f"line {exc.line}: "), origin(exc.line)) from None
    # A parameter whose docstring gave a type the deriver read is held to it
    # at call: it does not accept any value, though it has no annotation.
    properties = signature.input_schema.get("properties") or {}
    untyped = [
        name
        for name in signature.untyped
        if name not in (forms or {}) and not (properties.get(name) or {}).get(DOCSTRING_KEY)
    ]
    if untyped:
        notes.append(f"parameters without a type annotation accept any JSON value: {', '.join(untyped)}")
    return Admitted(source=code, entrypoint=chosen, public_functions=public, notes=notes)


# -- imports and names from outside -----------------------------------------------


@dataclass(frozen=True)
class Missing:
    """Something the tool needs that neither the standard library, its lock
    nor its prelude provides. ``where`` is "tool" or "prelude"."""

    kind: str  # "import" or "name"
    name: str
    line: int | None
    where: str = "tool"

    def describe(self) -> str:
        at = f"{self.where} line {self.line}" if self.line else self.where
        if self.kind == "import":
            return f"{at}: module {self.name!r} is neither in the standard library nor provided by the requirements"
        return f"{at}: name {self.name!r} is used but never defined, imported or a builtin"


def _needs(code: str, what: str) -> ModuleNeeds:
    try:
        return module_needs(code)
    except SyntaxError as exc:
        raise AdmissionError(f"the {what} does not parse: {exc.msg}", exc.lineno) from None
    except (RecursionError, MemoryError, ValueError):
        raise AdmissionError(f"the {what} is nested too deeply to check") from None


def find_missing(source: str, *, prelude: str | None = None, provided: Iterable[str] = ()) -> list[Missing]:
    """What `source` (run after `prelude`) imports or reads that nothing
    provides: modules outside the standard library (`sys.stdlib_module_names`)
    and the lock's import names (`provided`), and global names that the
    tool, the prelude and the builtins never bind. Imports guarded by
    ``try/except ImportError`` or ``if TYPE_CHECKING`` are not counted. A
    star import may bind any name, so names are not reported when one is
    in effect. Nothing is run."""
    modules = set(sys.stdlib_module_names) | set(provided)
    found: list[Missing] = []
    parts = [("prelude", prelude)] if prelude is not None else []
    needs = {where: _needs(code, where) for where, code in [*parts, ("tool", source)]}
    for where, need in needs.items():
        for use in need.imports:
            if not use.guarded and use.module not in modules:
                found.append(Missing("import", use.module, use.line, where))
    star = any(need.star_imports for need in needs.values())
    if not star:
        before: frozenset[str] = needs["prelude"].bound if "prelude" in needs else frozenset()
        for where, need in needs.items():
            for name, line in need.free.items():
                # The tool reads what the prelude bound; the prelude may call
                # back into the tool's functions only after both are loaded.
                if name in before or (where == "prelude" and name in needs["tool"].bound):
                    continue
                found.append(Missing("name", name, line, where))
    found.sort(key=lambda m: (m.where != "prelude", m.line or 0, m.kind, m.name))
    return found


def refuse_missing(found: list[Missing]) -> None:
    """AdmissionError naming the first missing things and the flag that allows them."""
    if not found:
        return
    first = found[0]
    shown = "; ".join(m.describe() for m in found[:3])
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    hint = (
        "declare it with --requires (or requires=[...])"
        if first.kind == "import"
        else "import it, define it, or add a prelude that does (--prelude)"
    )
    raise AdmissionError(f"{shown}{more}: {hint}, or pass --allow-missing to register it anyway")
