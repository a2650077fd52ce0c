"""An entrypoint's interface as JSON Schema, read from the source's AST.

Annotations are never evaluated: a small reader maps the annotation's AST to
Python types over an allowlist (builtins, `typing`, `collections.abc`), and
pydantic turns those into JSON Schema and a validator. Anything the reader
does not understand (a user class, `Callable`, a type variable) is accepted as
any JSON value, and the parameter's description says so.

Arguments cross into the sandbox as JSON, so a `set` or `tuple` parameter
receives a JSON array (a list); the schema says what the caller may send, not
what Python object the tool will hold. A `pandas.DataFrame` parameter takes
a frame's JSON form (an array of records, or ``{"columns", "data"}``) and a
`numpy.ndarray` one nested lists of numbers; their schemas carry
``"x-toolcrib-form"`` (`arg_forms`), and the sandbox converts the JSON
before the call (docs/formats.md, "DataFrame and ndarray arguments"). A
parameter without an annotation can be declared to take one of those forms
at add (``forms``, `add --param table=dataframe`): the same schema, marked
``"x-toolcrib-declared"`` so it can be derived again from the source.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from .docstrings import annotation_text, parse_docstring
from .errors import AdmissionError, ArgumentsError
from .models import Signature
from .pyast import declared_order, find_function, imported_names

# Re-exported: they live where a call can import them without pydantic.
from .schema_check import (
    DECLARED_KEY,
    FORM_KEY,
    PARAM_FORMS,
    arg_forms,
    declared_forms,
    json_arguments,
    validate_stored_arguments,
)

__all__ = [
    "DECLARED_KEY",
    "DOCSTRING_KEY",
    "FORM_KEY",
    "PARAM_FORMS",
    "arg_forms",
    "bump_kind",
    "declared_forms",
    "declared_order",
    "derive_signature",
    "validate_arguments",
    "validate_stored_arguments",
]

# The mark on a parameter whose type was read from the docstring (it had no annotation).
DOCSTRING_KEY = "x-toolcrib-from-docstring"

_MAX_ANNOTATION_DEPTH = 12
_CACHE_SIZE = 256

_SCALARS: dict[str, Any] = {
    "builtins.int": int,
    "builtins.float": float,
    "builtins.str": str,
    "typing.Text": str,
    "builtins.bool": bool,
    "builtins.object": Any,
    "typing.Any": Any,
    "builtins.None": type(None),
}
_LISTS = {
    "builtins.list",
    "typing.List",
    "typing.Sequence",
    "typing.MutableSequence",
    "typing.Iterable",
    "typing.Collection",
    "collections.abc.Sequence",
    "collections.abc.MutableSequence",
    "collections.abc.Iterable",
    "collections.abc.Collection",
}
_SETS = {
    "builtins.set",
    "builtins.frozenset",
    "typing.Set",
    "typing.FrozenSet",
    "typing.AbstractSet",
    "collections.abc.Set",
    "collections.abc.MutableSet",
    "typing.MutableSet",
}
_DICTS = {
    "builtins.dict",
    "typing.Dict",
    "typing.Mapping",
    "typing.MutableMapping",
    "collections.abc.Mapping",
    "collections.abc.MutableMapping",
}
_TUPLES = {"builtins.tuple", "typing.Tuple"}
# Annotations whose JSON form the sandbox converts (see `_FRAME`, `_ARRAY`).
_FRAMES = {"pandas.DataFrame", "pandas.core.frame.DataFrame"}
_ARRAYS = {"numpy.ndarray", "numpy.typing.NDArray", "numpy.typing.ArrayLike"}
_BUILTIN_NAMES = {"int", "float", "str", "bool", "object", "list", "set", "frozenset", "dict", "tuple"}
_TYPING_NAMES = {
    "Any",
    "List",
    "Dict",
    "Tuple",
    "Set",
    "FrozenSet",
    "Optional",
    "Union",
    "Literal",
    "Sequence",
    "Iterable",
    "Mapping",
    "MutableMapping",
    "MutableSequence",
    "Collection",
    "Annotated",
    "AbstractSet",
    "MutableSet",
}


# -- reading annotations -------------------------------------------------------


class _TypeReader:
    """Maps an annotation's AST to a Python type, noting what it could not read."""

    def __init__(self, tree: ast.Module, outside: Mapping[str, str] | None = None) -> None:
        self.user_names = {
            n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        } | {
            name.id
            for n in tree.body
            if isinstance(n, (ast.Assign, ast.AnnAssign))
            for target in (n.targets if isinstance(n, ast.Assign) else [n.target])
            for name in ast.walk(target)
            if isinstance(name, ast.Name)
        }
        # Names the prelude imports (`outside`) are the tool's too, unless the
        # tool binds the name itself: it runs after the prelude.
        self.imports = {
            local: qualified for local, qualified in (outside or {}).items() if local not in self.user_names
        } | imported_names(tree)
        # Module-level type aliases (`Interval = tuple[str, str]`) are read
        # through; the depth limit stops alias cycles.
        self.aliases: dict[str, ast.expr] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.aliases[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.aliases[node.target.id] = node.value
        self.notes: list[str] = []

    def qualified(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.imports:
                name = self.imports[node.id]
            elif node.id in self.user_names:
                return None
            elif node.id in _BUILTIN_NAMES:
                name = f"builtins.{node.id}"
            elif node.id in _TYPING_NAMES:
                name = f"typing.{node.id}"  # lenient: a forgotten `from typing import ...`
            else:
                return None
        elif isinstance(node, ast.Attribute):
            base = self.qualified_module(node.value)
            if base is None:
                return None
            name = f"{base}.{node.attr}"
        else:
            return None
        return name.replace("typing_extensions.", "typing.", 1)

    def qualified_module(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.imports.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified_module(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def unknown(self, node: ast.expr) -> Any:
        self.notes.append(f"annotation {ast.unparse(node)!r} is not checked; any JSON value is accepted")
        return Any

    def read(self, node: ast.expr, depth: int = 0) -> Any:
        if depth > _MAX_ANNOTATION_DEPTH:
            return self.unknown(node)
        if isinstance(node, ast.Constant):
            if node.value is None:
                return type(None)
            if isinstance(node.value, str):
                try:
                    inner = ast.parse(node.value.strip(), mode="eval").body
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    # Not an expression (or one nested past the parser's limits).
                    return self.unknown(node)
                return self.read(inner, depth + 1)
            return self.unknown(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return Union[self.read(node.left, depth + 1), self.read(node.right, depth + 1)]  # noqa: UP007
        if isinstance(node, ast.Subscript):
            return self.read_generic(node, depth)
        if isinstance(node, ast.Name) and node.id in self.aliases and node.id not in self.imports:
            before = len(self.notes)
            alias = self.read(self.aliases[node.id], depth + 1)
            if any("is not checked" in note for note in self.notes[before:]):
                # Report the name the author wrote, not the alias's insides.
                del self.notes[before:]
                return self.unknown(node)
            return alias
        name = self.qualified(node)
        if name in _FRAMES:
            return _FRAME
        if name in _ARRAYS:
            return _ARRAY
        if name in _SCALARS:
            return _SCALARS[name]
        if name in _LISTS:
            return list[Any]
        if name in _SETS:
            return _unique_list(Any)
        if name in _DICTS:
            return dict[str, Any]
        if name in _TUPLES:
            return tuple[Any, ...]
        return self.unknown(node)

    def read_generic(self, node: ast.Subscript, depth: int) -> Any:
        try:
            return self._read_generic(node, depth)
        except (TypeError, ValueError, AssertionError, IndexError):
            # e.g. `Union[()]` or `Literal[()]`: not a type Python would accept either.
            return self.unknown(node)

    def _read_generic(self, node: ast.Subscript, depth: int) -> Any:
        name = self.qualified(node.value)
        items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if name in ("typing.Literal",):
            values = [self.literal_value(item) for item in items]
            if not values or any(v is _NOT_LITERAL for v in values):
                return self.unknown(node)
            return Literal[tuple(values)]
        if name == "typing.Annotated":
            return self.read(items[0], depth + 1)
        if name in _ARRAYS:  # NDArray[np.float64]: the dtype is the tool's business
            return _ARRAY
        if name in _TUPLES and len(items) == 2 and isinstance(items[1], ast.Constant) and items[1].value is ...:
            return _parametrize(tuple, (self.read(items[0], depth + 1), ...))
        args = [self.read(item, depth + 1) for item in items]
        if name == "typing.Optional" and len(items) == 1:
            return _parametrize(Optional, args[0])
        if name == "typing.Union":
            return _parametrize(Union, tuple(args))
        if name in _LISTS and len(items) == 1:
            return _parametrize(list, args[0])
        if name in _SETS and len(items) == 1:
            return _unique_list(args[0])
        if name in _DICTS and len(items) == 2:
            if args[0] is not str:
                self.notes.append("object keys arrive as JSON strings")
            return _parametrize(dict, (str, args[1]))
        if name in _TUPLES:
            if len(items) == 1 and isinstance(items[0], ast.Tuple) and not items[0].elts:
                return tuple[()]
            return _parametrize(tuple, tuple(args))
        return self.unknown(node)

    @staticmethod
    def literal_value(node: ast.expr) -> Any:
        try:
            value = ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return _NOT_LITERAL
        if isinstance(value, int) and not isinstance(value, bool) and not _json_int(value):
            raise AdmissionError(_HUGE_INT, node.lineno)
        if value is None or isinstance(value, (str, int, bool)):
            return value
        return _NOT_LITERAL


_NOT_LITERAL = object()


# -- DataFrame and ndarray parameters --------------------------------------------

_MAX_ARRAY_DIMS = 4
_CELL = {"type": ["string", "number", "boolean", "null"]}
_RECORDS_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "object", "additionalProperties": _CELL}}
_FRAME_SCHEMA: dict[str, Any] = {
    FORM_KEY: "dataframe",
    "anyOf": [
        _RECORDS_SCHEMA,
        {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": ["string", "integer"]}},
                "data": {"type": "array", "items": {"type": "array", "items": _CELL}},
            },
            "required": ["columns", "data"],
            "additionalProperties": False,
        },
    ],
}


def _array_schema(dims: int) -> dict[str, Any]:
    # Nested lists of numbers, written out to a fixed depth: a recursive
    # $ref would have to point into the root of whichever schema holds it.
    number = {"type": ["number", "boolean"]}
    return {"type": "array", "items": number if dims <= 1 else {"anyOf": [number, _array_schema(dims - 1)]}}


_ARRAY_SCHEMA: dict[str, Any] = {FORM_KEY: "ndarray", **_array_schema(_MAX_ARRAY_DIMS)}


def _is_cell(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _check_frame(value: Any) -> Any:
    if isinstance(value, list):
        if not all(isinstance(row, dict) and all(_is_cell(v) for v in row.values()) for row in value):
            raise ValueError(
                'a DataFrame is an array of records (objects of scalars) or {"columns": [...], "data": [[...]]}'
            )
        return value
    if isinstance(value, dict) and set(value) == {"columns", "data"}:
        columns, data = value["columns"], value["data"]
        if (
            isinstance(columns, list)
            and all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in columns)
            and isinstance(data, list)
            and all(isinstance(row, list) and all(_is_cell(v) for v in row) for row in data)
        ):
            return value
    raise ValueError('a DataFrame is an array of records (objects of scalars) or {"columns": [...], "data": [[...]]}')


def _check_array(value: Any, depth: int = 0) -> Any:
    if isinstance(value, list) and depth < _MAX_ARRAY_DIMS:
        for item in value:
            if not isinstance(item, (int, float, bool)):
                _check_array(item, depth + 1)
        return value
    raise ValueError(f"an array is nested lists of numbers (at most {_MAX_ARRAY_DIMS} deep)")


_FRAME: Any = Annotated[Any, AfterValidator(_check_frame), WithJsonSchema(_FRAME_SCHEMA)]
_ARRAY: Any = Annotated[Any, AfterValidator(_check_array), WithJsonSchema(_ARRAY_SCHEMA)]
# The forms a parameter may be declared to take at `add` (`PARAM_FORMS`).
_FORM_TYPES: dict[str, Any] = {"dataframe": _FRAME, "ndarray": _ARRAY}
_FORM_WORDS = {"dataframe": "a DataFrame", "ndarray": "an ndarray"}


def _form_of(tp: Any) -> str | None:
    """The form an annotation's type converts to (also inside an Optional), or None."""
    for form, form_type in _FORM_TYPES.items():
        if tp is form_type or (get_origin(tp) is Union and form_type in get_args(tp)):
            return form
    return None


def _check_declared(forms: tuple[tuple[str, str], ...], names: list[str], entrypoint: str) -> dict[str, str]:
    """Declared forms ({parameter: form}) that name a parameter and a known
    form, or AdmissionError saying which does not."""
    for name, form in forms:
        if form not in _FORM_TYPES:
            raise AdmissionError(
                f"parameter {name!r}: unknown form {form!r} (a parameter may be declared to take: "
                f"{', '.join(PARAM_FORMS)})"
            )
        if name not in names:
            known = ", ".join(names) if names else "none"
            raise AdmissionError(
                f"a form is declared for {name!r}, but {entrypoint} has no such parameter (its parameters: {known})"
            )
    return dict(forms)


def _check_unique(items: list[Any]) -> list[Any]:
    seen: set[str] = set()
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            raise ValueError(f"items should be unique ({key} repeats)")
        seen.add(key)
    return items


def _parametrize(generic: Any, params: Any) -> Any:
    """``generic[params]`` for parameters known only at run time (written as a
    subscript, a type checker would read it as a static type expression)."""
    return generic[params]


def _unique_list(item: Any) -> Any:
    """A set parameter as JSON: an array with unique items (items need not be hashable)."""
    return Annotated[list[item], AfterValidator(_check_unique), Field(json_schema_extra={"uniqueItems": True})]


# -- docstrings ----------------------------------------------------------------

_GOOGLE_ARGS = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Kwargs|Other Parameters):\s*$"
)
_GOOGLE_RETURNS = re.compile(r"^(Returns|Return|Yields):\s*$")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(\([^)]*\))?\s*:\s*(?P<desc>.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(?P<names>\w+(\s*,\s*\*{0,2}\w+)*)\s*(:.*)?$")
_SPHINX_PARAM = re.compile(
    r"^:(param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?\*{0,2}(?P<name>\w+)\s*:\s*(?P<desc>.*)$"
)
_SPHINX_RETURNS = re.compile(r"^:(returns?)\s*:\s*(?P<desc>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _collapse(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def _summary(doc: str | None) -> str | None:
    if not doc:
        return None
    paragraph: list[str] = []
    for line in doc.strip().splitlines():
        if not line.strip():
            break
        paragraph.append(line)
    return _collapse(paragraph) or None


def _parse_docstring(doc: str | None) -> tuple[dict[str, str], str | None]:
    """Per-parameter descriptions and the return description (Google, NumPy or Sphinx style)."""
    if not doc:
        return {}, None
    lines = doc.expandtabs().splitlines()
    params: dict[str, list[str]] = {}
    returns: list[str] = []
    i = 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if _GOOGLE_ARGS.match(stripped) or _GOOGLE_RETURNS.match(stripped):
            is_args = bool(_GOOGLE_ARGS.match(stripped))
            base = _indent(line)
            i += 1
            current: list[str] | None = None
            entry_indent: int | None = None
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                body = lines[i]
                if body.strip():
                    if is_args:
                        match = _GOOGLE_ENTRY.match(body.strip())
                        if match and (entry_indent is None or _indent(body) <= entry_indent):
                            entry_indent = _indent(body)
                            current = params.setdefault(match["name"], [])
                            current.append(match["desc"])
                        elif current is not None:
                            current.append(body.strip())
                    else:
                        returns.append(body.strip())
                i += 1
            continue
        if underlined and stripped in ("Parameters", "Other Parameters", "Returns", "Yields"):
            is_args = "Parameters" in stripped
            base = _indent(line)
            i += 2
            current = None
            while i < len(lines):
                body = lines[i]
                if body.strip() and _indent(body) <= base and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                    break  # the next section
                if body.strip():
                    if _indent(body) <= base:
                        match = _NUMPY_ENTRY.match(body.strip())
                        if is_args and match:
                            current = []
                            for name in re.split(r"\s*,\s*", match["names"]):
                                params[name.lstrip("*")] = current
                        elif not is_args:
                            current = None  # "type" line of a Returns entry
                    elif is_args and current is not None:
                        current.append(body.strip())
                    elif not is_args:
                        returns.append(body.strip())
                i += 1
            continue
        sphinx = _SPHINX_PARAM.match(stripped)
        found = sphinx or _SPHINX_RETURNS.match(stripped)
        if found:
            target = params.setdefault(found["name"], []) if sphinx else returns
            target.append(found["desc"])
            base = _indent(line)
            i += 1
            while (
                i < len(lines)
                and lines[i].strip()
                and _indent(lines[i]) > base
                and not lines[i].strip().startswith(":")
            ):
                target.append(lines[i].strip())
                i += 1
            continue
        i += 1
    described = {name: _collapse(parts) for name, parts in params.items() if _collapse(parts)}
    return described, (_collapse(returns) or None)


# -- the model -------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    signature: Signature
    model: type[BaseModel]
    names: tuple[str, ...]
    kwargs: TypeAdapter[Any] | None
    function: str


# (source digest, entrypoint, legacy docstrings, declared forms, prelude imports)
_CacheKey = tuple[str, str, bool, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
_cache: OrderedDict[_CacheKey, _Compiled] = OrderedDict()
_cache_lock = threading.Lock()


# CPython will not write an int of more than 4300 decimal digits as text
# (sys.int_info.default_max_str_digits), so neither can json; 14,000 bits
# (~4214 digits) stays below that, as the sandbox's results do.
_MAX_JSON_INT_BITS = 14_000
_HUGE_INT = "an integer literal this large (over 14,000 bits, about 4,200 digits) cannot be written as JSON"


def _json_int(value: int) -> bool:
    return value.bit_length() <= _MAX_JSON_INT_BITS


def _json_default(value: Any) -> tuple[bool, Any]:
    """(ok, JSON form) of a literal default; sets, bytes, complex and NaN have
    none. Raises AdmissionError for an int JSON cannot hold."""
    if isinstance(value, int) and not isinstance(value, bool) and not _json_int(value):
        raise AdmissionError(_HUGE_INT)
    if value is None or isinstance(value, (str, bool, int)):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, (list, tuple)):
        items = [_json_default(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict):
        entries = {k: _json_default(v) for k, v in value.items()}
        ok = all(isinstance(k, str) for k in value) and all(ok for ok, _ in entries.values())
        return ok, {k: v for k, (_, v) in entries.items()}
    return False, None


def _accepts_none(tp: Any) -> bool:
    try:
        TypeAdapter(tp).validate_python(None, strict=True)
    except ValidationError:
        return False
    return True


def _docstring_type(reader: _TypeReader, written: str | None) -> Any:
    """The type a docstring wrote for an unannotated parameter, or None when
    it wrote none the reader knows (an unknown name is no evidence)."""
    text = annotation_text(written)
    if text is None:
        return None
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    notes, reader.notes = reader.notes, []
    try:
        tp = reader.read(node)
    except AdmissionError:
        tp = None
    unknown = any("is not checked" in note for note in reader.notes)
    reader.notes = notes
    return None if unknown or tp is Any or tp is None else tp


def _compile(
    source: str,
    entrypoint: str,
    legacy_docstrings: bool = False,
    forms: tuple[tuple[str, str], ...] = (),
    outside: tuple[tuple[str, str], ...] = (),
) -> _Compiled:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise AdmissionError(f"syntax error: {exc.msg}", exc.lineno) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise AdmissionError(f"the source cannot be parsed: {exc}") from None
    fn = find_function(tree, entrypoint)
    spec = fn.args
    if spec.posonlyargs:
        arg = spec.posonlyargs[0]
        raise AdmissionError(
            f"parameter {arg.arg!r} of {entrypoint} is positional-only; tools are called with named arguments",
            arg.lineno,
        )
    if spec.vararg:
        raise AdmissionError(
            f"*{spec.vararg.arg} cannot be given as named JSON arguments; take a list parameter instead",
            spec.vararg.lineno,
        )
    doc = ast.get_docstring(fn, clean=True)
    param_docs, returns_doc = _parse_docstring(doc)
    doc_types: dict[str, str | None] = {}
    if not legacy_docstrings:
        # Google, CRAFT-style, numpydoc and reST: descriptions, and the types written there.
        read = parse_docstring(doc)
        param_docs = {**param_docs, **{n: p.description for n, p in read.params.items() if p.description}}
        doc_types = {n: p.type for n, p in read.params.items()}
    reader = _TypeReader(tree, dict(outside))
    defaults: list[ast.expr | None] = [None] * (len(spec.args) - len(spec.defaults)) + list(spec.defaults)
    params = list(zip(spec.args, defaults)) + list(zip(spec.kwonlyargs, spec.kw_defaults))
    fields: dict[str, Any] = {}
    untyped: list[str] = []
    names: list[str] = []
    declared = _check_declared(forms, [arg.arg for arg, _ in params], entrypoint)
    for index, (arg, default) in enumerate(params):
        names.append(arg.arg)
        reader.notes = []
        from_doc = False
        form = declared.get(arg.arg)
        if arg.annotation is None:
            untyped.append(arg.arg)
            tp: Any = Any
            if form is None and arg.arg in doc_types:
                found = _docstring_type(reader, doc_types[arg.arg])
                if found is not None:
                    tp, from_doc = found, True
        else:
            tp = reader.read(arg.annotation)
            if form is not None and tp is not Any:
                if _form_of(tp) != form:
                    raise AdmissionError(
                        f"parameter {arg.arg!r} is annotated {ast.unparse(arg.annotation)!r}, not {_FORM_WORDS[form]}: "
                        "a form is declared only for a parameter without an annotation (or one read as any value)",
                        arg.annotation.lineno,
                    )
                form = None  # the annotation already says it: nothing to declare
        kwargs: dict[str, Any] = {"alias": arg.arg, "title": arg.arg.replace("_", " ").strip().title() or arg.arg}
        if form is not None:
            # Declared at add: converted like an annotated one, and marked so
            # the schema can be derived again (bundle import) and shown.
            tp, reader.notes = _FORM_TYPES[form], []
            kwargs["json_schema_extra"] = {DECLARED_KEY: True}
        elif from_doc:
            kwargs["json_schema_extra"] = {DOCSTRING_KEY: True}
        if default is not None:
            try:
                ok, value = _json_default(ast.literal_eval(default))
            except AdmissionError:
                raise AdmissionError(f"the default of parameter {arg.arg!r}: {_HUGE_INT}", default.lineno) from None
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                ok, value = False, None
            if ok:
                kwargs["default"] = value
                # `x: int = None` is the old implicit Optional: null means "the default".
                if value is None and not _accepts_none(tp):
                    tp = Optional[tp]  # noqa: UP045 - built at run time from a variable
            else:
                # Optional, but the real default lives in the tool: the schema shows none.
                kwargs["default_factory"] = _missing
        description = " ".join(filter(None, [param_docs.get(arg.arg), *dict.fromkeys(reader.notes)]))
        if description:
            kwargs["description"] = description
        fields[f"p{index}"] = (tp, Field(**kwargs))
    kwargs_adapter: TypeAdapter[Any] | None = None
    extra_schema: dict[str, Any] | None = None
    if spec.kwarg:
        reader.notes = []
        extra_type = Any if spec.kwarg.annotation is None else reader.read(spec.kwarg.annotation)
        kwargs_adapter = TypeAdapter(extra_type)
        extra_schema = kwargs_adapter.json_schema()
        extra_schema.pop("title", None)
        note = " ".join(filter(None, [param_docs.get(spec.kwarg.arg), *dict.fromkeys(reader.notes)]))
        if note:
            extra_schema["description"] = note
    summary = _summary(doc)
    config = ConfigDict(extra="allow" if spec.kwarg else "forbid", strict=True, title=entrypoint)
    model = create_model(entrypoint, __config__=config, __doc__=summary, **fields)
    input_schema = model.model_json_schema()
    if not summary:
        input_schema.pop("description", None)
    if extra_schema is not None:
        input_schema["additionalProperties"] = extra_schema or True
    output_schema: dict[str, Any] | None = None
    if fn.returns is not None:
        reader.notes = []
        returned = reader.read(fn.returns)
        # A returned frame comes back as records (sandbox/results.py).
        output_schema = (
            {FORM_KEY: "dataframe", **_RECORDS_SCHEMA} if returned is _FRAME else TypeAdapter(returned).json_schema()
        )
        description = " ".join(filter(None, [returns_doc, *dict.fromkeys(reader.notes)]))
        if description:
            output_schema["description"] = description
    # A JSON round trip makes the schema plain data (no tuples) and fixes key
    # order; the parameters then go back in the order the maker declared them
    # (presentation only: the content hash is over canonical, sorted JSON).
    plain_input = json.loads(json.dumps(input_schema, sort_keys=True))
    props = plain_input.get("properties")
    if isinstance(props, dict):
        plain_input["properties"] = {n: props[n] for n in names if n in props}
    signature = Signature(
        input_schema=plain_input,
        output_schema=json.loads(json.dumps(output_schema, sort_keys=True)) if output_schema is not None else None,
        untyped=untyped,
        description=doc,
    )
    return _Compiled(signature, model, tuple(names), kwargs_adapter, entrypoint)


def _missing() -> None:
    return None


def _prelude_imports(prelude: str | None) -> tuple[tuple[str, str], ...]:
    """The names a prelude's top-level imports bind ({local: qualified}, as
    sorted pairs): a tool whose imports live in its prelude (CRAFT's
    tools: `import pandas as pd` there, `table (pd.DataFrame)` in the
    docstring) has its annotations and docstring types read through them.
    A prelude that does not parse binds nothing here (admission refuses it)."""
    if not prelude:
        return ()
    try:
        tree = ast.parse(prelude)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ()
    return tuple(sorted(imported_names(tree).items()))


def _compiled(
    source: str,
    entrypoint: str,
    legacy_docstrings: bool = False,
    forms: Mapping[str, str] | None = None,
    prelude: str | None = None,
) -> _Compiled:
    declared = tuple(sorted((forms or {}).items()))
    outside = _prelude_imports(prelude)
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    key = (digest, entrypoint, legacy_docstrings, declared, outside)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    compiled = _compile(source, entrypoint, legacy_docstrings, declared, outside)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def derive_signature(
    source: str,
    entrypoint: str,
    *,
    legacy_docstrings: bool = False,
    forms: Mapping[str, str] | None = None,
    prelude: str | None = None,
) -> Signature:
    """The entrypoint's input (and, if annotated, output) JSON Schema, its
    parameters in declaration order.

    Raises AdmissionError when the entrypoint is missing, not a plain def, or
    takes ``*args`` or positional-only parameters (tools are called with
    named JSON arguments). Same source and entrypoint give the same schema.
    ``legacy_docstrings``: the schema as toolcrib derived it before docstring
    types and the CRAFT/numpydoc/reST readings (what older bundles hold).
    ``forms``: {parameter: form} declared at add (`PARAM_FORMS`) for
    parameters without an annotation: each gets the form's schema, as if
    annotated ``pd.DataFrame``/``np.ndarray``, marked ``DECLARED_KEY``.
    AdmissionError when one names no parameter, an unknown form, or a
    parameter whose annotation says something else (one that already says
    the form is left as it is).
    ``prelude``: the text run before the source; the names its imports bind
    resolve the source's annotations and docstring types as the source's
    own imports do (`_prelude_imports`).
    """
    try:
        return _compiled(source, entrypoint, legacy_docstrings, forms, prelude).signature.model_copy(deep=True)
    except (RecursionError, MemoryError):
        raise AdmissionError("the entrypoint's annotations are nested too deeply") from None


# -- validating calls --------------------------------------------------------------


def _path(loc: tuple[Any, ...], value: Any) -> str:
    """Render an error location inside one argument, skipping pydantic's union tags."""
    parts: list[str] = []
    for step in loc:
        if isinstance(step, int) and isinstance(value, list) and 0 <= step < len(value):
            parts.append(f"[{step}]")
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            parts.append(f"[{json.dumps(step)}]")
            value = value[step]
    return "".join(parts)


def validate_arguments(
    source: str,
    entrypoint: str,
    args: Any,
    *,
    forms: Mapping[str, str] | None = None,
    prelude: str | None = None,
) -> dict[str, Any]:
    """Check JSON call arguments against the entrypoint; return them as plain JSON.

    Strict: a string is not a number, but an integer is accepted for a float.
    Unknown arguments are refused (unless the entrypoint takes ``**kwargs``)
    and missing required ones reported; ArgumentsError names each bad field.
    The caller's own values are returned (never coerced or defaulted), so the
    tool sees exactly what was sent. ``forms``, ``prelude``: as for
    `derive_signature`.
    """
    compiled = _compiled(source, entrypoint, forms=forms, prelude=prelude)
    prefix = f"bad arguments for {compiled.function}"
    text, plain = json_arguments(args, prefix)
    problems: dict[str, list[str]] = {}
    try:
        compiled.model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = error["loc"]
            field = str(loc[0]) if loc else "arguments"
            if error["type"] == "extra_forbidden":
                message = "unexpected argument"
            elif error["type"] == "missing":
                message = "missing required argument"
            else:
                where = _path(loc[1:], plain.get(field))
                message = f"{where}: {error['msg']}" if where else error["msg"]
            problems.setdefault(field, [])
            if message not in problems[field]:
                problems[field].append(message)
    if compiled.kwargs is not None:
        for key in sorted(set(plain) - set(compiled.names)):
            try:
                compiled.kwargs.validate_json(json.dumps(plain[key]), strict=True)
            except ValidationError as exc:
                problems.setdefault(key, []).append(exc.errors(include_url=False)[0]["msg"])
    if problems:
        ordered = [n for n in compiled.names if n in problems] + sorted(set(problems) - set(compiled.names))
        fields = {name: " or ".join(problems[name][:3]) for name in ordered}
        detail = "; ".join(f"{name}: {why}" for name, why in fields.items())
        raise ArgumentsError(f"{prefix}: {detail}", fields)
    return plain


# -- version bumps ---------------------------------------------------------------

_NAME_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})
_PROSE = frozenset({"title", "description", "examples"})


def _without_prose(schema: Any) -> Any:
    """The schema with titles, descriptions and examples removed (keeping property names)."""
    if isinstance(schema, list):
        return [_without_prose(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _PROSE:
            continue
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: _without_prose(sub) for name, sub in value.items()}
        elif key in ("default", "const", "enum"):
            out[key] = copy.deepcopy(value)  # values, not schemas
        else:
            out[key] = _without_prose(value)
    return out


def bump_kind(old: Signature, new: Signature) -> Literal["major", "minor", "patch"]:
    """The semver bump a change from `old` to `new` needs, judged on the schemas.

    patch: the schemas are the same once titles and descriptions are removed.
    minor: only new optional parameters were added.
    major: anything else (a parameter removed, newly required, retyped, a
    default changed, the output changed) — conservative by design.
    """
    old_in, new_in = _without_prose(old.input_schema), _without_prose(new.input_schema)
    old_out = _without_prose(old.output_schema) if old.output_schema is not None else None
    new_out = _without_prose(new.output_schema) if new.output_schema is not None else None
    if old_out != new_out:
        return "major"
    if old_in == new_in:
        return "patch"
    old_props: dict[str, Any] = old_in.get("properties", {})
    new_props: dict[str, Any] = new_in.get("properties", {})
    old_required, new_required = set(old_in.get("required", [])), set(new_in.get("required", []))
    added = set(new_props) - set(old_props)
    rest_old = {k: v for k, v in old_in.items() if k not in ("properties", "required")}
    rest_new = {k: v for k, v in new_in.items() if k not in ("properties", "required")}
    if (
        set(old_props) - set(new_props)
        or any(old_props[name] != new_props[name] for name in old_props)
        or new_required != old_required
        or rest_old != rest_new
        or not added
    ):
        return "major"
    return "minor"
