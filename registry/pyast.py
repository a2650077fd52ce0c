"""Small readings of a tool's module AST shared by admission and signatures.
Nothing here runs tool code."""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass, field
from typing import Any

from .errors import AdmissionError

__all__ = [
    "ImportUse",
    "ModuleNeeds",
    "declared_order",
    "find_function",
    "function_body",
    "imported_names",
    "module_needs",
    "module_statements",
    "stored_in_declared_order",
]


def module_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Top-level statements, including those nested in top-level try/if blocks."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.Try):
            out += module_statements(
                node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
            )
        elif isinstance(node, ast.If):
            out += module_statements(node.body + node.orelse)
    return out


def imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> qualified name, for the module's top-level imports."""
    bound: dict[str, str] = {}
    for node in module_statements(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                bound[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


# -- what a module needs from outside -------------------------------------------

# Names every module has without binding them.
_MODULE_NAMES = frozenset(
    {
        "__name__",
        "__file__",
        "__doc__",
        "__builtins__",
        "__spec__",
        "__loader__",
        "__package__",
        "__annotations__",
        "__dict__",
        "__path__",
        "__cached__",
    }
)
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(frozen=True)
class ImportUse:
    """One import statement's module: its top-level name and line."""

    module: str
    line: int
    guarded: bool = False  # inside `try: ... except ImportError` or `if TYPE_CHECKING:` (may never run)


@dataclass(frozen=True)
class ModuleNeeds:
    """What a module binds at its top level and what it takes from elsewhere."""

    bound: frozenset[str]
    star_imports: tuple[str, ...]
    imports: tuple[ImportUse, ...]
    # Global names read somewhere (any scope) that the module never binds:
    # builtins and names a prelude or a star import must supply.
    free: dict[str, int | None] = field(default_factory=dict)


def _catches_import_errors(node: ast.Try) -> bool:
    for handler in node.handlers:
        kinds = handler.type
        if kinds is None:
            return True
        names = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
        if any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names):
            return True
    return False


def _imports(node: ast.AST, guarded: bool, out: list[ImportUse], stars: list[str]) -> None:
    if isinstance(node, ast.Import):
        out += [ImportUse(alias.name.split(".")[0], node.lineno, guarded) for alias in node.names]
        return
    if isinstance(node, ast.ImportFrom):
        module = "." * node.level + (node.module or "")
        out.append(ImportUse(module.split(".")[0] if not node.level else module, node.lineno, guarded))
        if any(alias.name == "*" for alias in node.names):
            stars.append(module)
        return
    if isinstance(node, ast.Try) and _catches_import_errors(node):
        for child in node.body:
            _imports(child, True, out, stars)
        rest: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
        for other in rest:
            _imports(other, guarded, out, stars)
        return
    if isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    ):
        for child in node.body:
            _imports(child, True, out, stars)
        for child in node.orelse:
            _imports(child, guarded, out, stars)
        return
    for inner in ast.iter_child_nodes(node):
        _imports(inner, guarded, out, stars)


def module_needs(source: str) -> ModuleNeeds:
    """Read (never run) a module: the names its top level binds (including
    ``global`` names assigned in functions), its imports, its star imports,
    and every global name it reads but never binds, with the first line that
    reads it. Scopes are Python's own (`symtable`): parameters, locals,
    closures, comprehension variables and class bodies are not global reads;
    annotations count only where they are evaluated. Raises SyntaxError."""
    tree = ast.parse(source)
    table = symtable.symtable(source, "<tool>", "exec")
    bound: set[str] = set()
    read: set[str] = set()
    for sym in table.get_symbols():
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace():
            bound.add(sym.get_name())
        if sym.is_referenced():
            read.add(sym.get_name())
    pending = list(table.get_children())
    while pending:
        scope = pending.pop()
        pending += scope.get_children()
        for sym in scope.get_symbols():
            if sym.is_declared_global() and sym.is_assigned():
                bound.add(sym.get_name())
            if sym.is_referenced() and sym.is_global():
                read.add(sym.get_name())
    imports: list[ImportUse] = []
    stars: list[str] = []
    for node in tree.body:
        _imports(node, False, imports, stars)
    missing = read - bound - _MODULE_NAMES - set(dir(builtins))
    lines: dict[str, int | None] = dict.fromkeys(sorted(missing))
    if missing:
        for found in ast.walk(tree):
            if isinstance(found, ast.Name) and found.id in missing and isinstance(found.ctx, ast.Load):
                current = lines[found.id]
                lines[found.id] = found.lineno if current is None else min(current, found.lineno)
    return ModuleNeeds(frozenset(bound), tuple(stars), tuple(imports), lines)


def function_body(source: str, name: str) -> str:
    """The normalized text of top-level function `name`'s body, docstring
    left out ('' when there is no such function)."""
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body = body[1:]
            return "\n".join(ast.unparse(stmt) for stmt in body)
    return ""


def find_function(tree: ast.Module, name: str) -> ast.FunctionDef:
    found: ast.stmt | None = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = node
    if found is None:
        raise AdmissionError(f"no top-level function named {name!r}")
    if not isinstance(found, ast.FunctionDef):
        kind = "an async function" if isinstance(found, ast.AsyncFunctionDef) else "a class"
        raise AdmissionError(f"{name!r} is {kind}; an entrypoint must be a plain def", found.lineno)
    return found


def declared_order(input_schema: dict[str, Any], source: str, entrypoint: str) -> dict[str, Any]:
    """`input_schema` (a stored one, perhaps written with sorted keys) with
    its properties in the entrypoint's declaration order, read from the
    source's AST (no types are read). Unchanged if the source cannot be read."""
    props = input_schema.get("properties")
    if not isinstance(props, dict):
        return input_schema
    try:
        fn = find_function(ast.parse(source), entrypoint)
    except (AdmissionError, SyntaxError, ValueError, RecursionError, MemoryError):
        return input_schema
    names = [a.arg for a in [*fn.args.args, *fn.args.kwonlyargs]]
    ordered = {n: props[n] for n in names if n in props}
    ordered.update({n: v for n, v in props.items() if n not in ordered})
    return {**input_schema, "properties": ordered}


def stored_in_declared_order(input_schema: dict[str, Any], source: str, entrypoint: str) -> dict[str, Any]:
    """A stored input schema with its parameters in declaration order.
    Versions stored before the order was kept have theirs sorted by name:
    then (and only then: a new version's order is kept as stored) the order
    is read again from the source's AST. The same dict when nothing moves."""
    props = input_schema.get("properties")
    if not isinstance(props, dict) or len(props) < 2 or list(props) != sorted(props):
        return input_schema
    return declared_order(input_schema, source, entrypoint)
