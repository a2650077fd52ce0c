"""What counts as evidence that a tool works: the host's reading of the code
a model wrote to verify its own tool (unit tests, use cases).

A use case is evidence only if its answer came from the tool. The sandbox
observes the part that cannot be read from the text (`make.py` asks):

- a snippet job reports how many calls of the entrypoint returned
  (`sandbox/execute.py`); a case with none never called the tool;
- run again with the entrypoint stubbed (`Job.stub_entrypoint`), a case that
  still gives the answer never used what the tool returned.

This module is the host's half (text and `ast` only; nothing a model wrote
runs here): the case must not spell the answer out itself
(`copies_answer`), nor rebind the tool's own names (`rebound_names`: a case
that redefines the entrypoint or a helper it uses would test its own code).
And the module that is stored is the module that was verified
(`tool_module`, compared in full with `module_key`). docs/latm.md,
"Verification: what counts as evidence".
"""

from __future__ import annotations

import ast
import symtable
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["copies_answer", "defined_names", "module_key", "rebound_names", "tool_module", "without_definitions"]

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_UNREADABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


# -- the module that is verified and stored -------------------------------------


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _without_nodes(source: str, nodes: Iterable[ast.stmt]) -> str:
    """`source` without the lines of the given top-level statements."""
    lines = source.split("\n")
    gone = {n for node in nodes for n in range(_first_line(node), (node.end_lineno or node.lineno) + 1)}
    return "\n".join(line for number, line in enumerate(lines, start=1) if number not in gone)


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}


# Top-level statements that only run code when the module loads (demo calls,
# loops, checks): admission strips them, so a test they call is still dead.
_LOAD_TIME = (ast.Expr, ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Assert, ast.Match)


def _is_test(node: ast.stmt) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")


def _dead_tests(tree: ast.Module) -> list[ast.stmt]:
    """Top-level ``test_*`` functions no definition of the module refers to:
    the tests a reply wrote beside the tool, not part of it. A ``test_*``
    helper the tool uses (directly or through other code) stays, and is
    compared like any other definition."""
    tests = [n for n in tree.body if _is_test(n)]
    used = set().union(*(_loaded_names(n) for n in tree.body if not _is_test(n) and not isinstance(n, _LOAD_TIME)))
    while True:
        reached = [t for t in tests if isinstance(t, (ast.FunctionDef, ast.AsyncFunctionDef)) and t.name in used]
        if not reached:
            return tests
        for test in reached:
            tests.remove(test)
            used |= _loaded_names(test)


def tool_module(source: str) -> str:
    """`source` without its dead tests (`_dead_tests`). `make` takes the
    tool module from what admission keeps of this; every check and run uses
    that text, and it is what is stored, byte for byte."""
    tree = ast.parse(source)
    dead = _dead_tests(tree)
    if not dead:
        return source
    return _without_nodes(source, dead).rstrip() + "\n"


def module_key(source: str) -> str:
    """Two tool modules are the same code if their ASTs are: every top-level
    statement (functions, ``test_*`` ones included, classes, assignments,
    imports), with comments, blank lines and quoting free to differ."""
    return ast.dump(ast.parse(tool_module(source)), annotate_fields=False, include_attributes=False)


def without_definitions(code: str, names: Iterable[str]) -> str:
    """`code` without its top-level functions and classes named in `names`:
    a unit-test reply that brought the tool along, run so that its tests call
    the module's functions (the ones the sandbox observes), not copies."""
    wanted = set(names)
    tree = ast.parse(code)
    return _without_nodes(code, [n for n in tree.body if isinstance(n, _DEFS) and n.name in wanted])


def defined_names(source: str) -> list[str]:
    """The top-level functions and classes of `source`."""
    return [n.name for n in ast.parse(source).body if isinstance(n, _DEFS)]


# -- a case must not rebind the tool --------------------------------------------------


def _module_bindings(table: symtable.SymbolTable) -> set[str]:
    """Names a snippet binds in the namespace it shares with the tool: at its
    top level, and through ``global`` in any function or class inside it."""
    names = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    return names | _global_bindings(table)


def _global_bindings(table: symtable.SymbolTable) -> set[str]:
    names: set[str] = set()
    for child in table.get_children():
        names |= {s.get_name() for s in child.get_symbols() if s.is_declared_global() and s.is_assigned()}
        names |= _global_bindings(child)
    return names


def _imports(tree: ast.AST) -> dict[str, set[tuple[str, str, int]]]:
    """Each name an import statement binds: what it imports."""
    found: dict[str, set[tuple[str, str, int]]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                found.setdefault(name, set()).add(("", alias.name if alias.asname else name, 0))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                found.setdefault(alias.asname or alias.name, set()).add((node.module or "", alias.name, node.level))
    return found


def _top_level_bindings(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, _DEFS):
            names.add(node.name)
        else:
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            names |= set(_imports(node))
    return names


def rebound_names(snippet: str, module: str) -> list[str] | None:
    """The tool's top-level names the snippet binds again (the snippet and the
    tool share one namespace, so a rebound helper changes what the tool
    does while the case runs). Importing a name exactly as the tool does is
    not a rebinding. None if the snippet cannot be read."""
    try:
        tree = ast.parse(snippet)
        bound = _module_bindings(symtable.symtable(snippet, "<snippet>", "exec"))
        module_tree = ast.parse(module)
    except _UNREADABLE:
        return None
    ours, theirs = _imports(tree), _imports(module_tree)
    tool_names = _top_level_bindings(module_tree)
    clashes = bound & tool_names
    same_import = {n for n in clashes if n in ours and ours[n] == theirs.get(n) and not _assigned_otherwise(tree, n)}
    return sorted((clashes - same_import) | _changed_in_place(tree, tool_names))


# Methods that change a list, dict or set in place.
_MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "remove",
        "pop",
        "clear",
        "sort",
        "reverse",
        "update",
        "setdefault",
        "popitem",
        "add",
        "discard",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
    }
)


def _base_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _changed_in_place(tree: ast.AST, tool_names: set[str]) -> set[str]:
    """The tool's names whose objects the snippet changes in place, as far as
    the text shows: an item or attribute assigned or deleted (``TABLE[k] =
    v``), or a mutating method called on it (``WORDS.append(w)``). An alias
    made first (``t = TABLE``) is not followed: a case written to evade
    this is left to the stubbed run and to the stored tests, which run
    against the stored tool only."""
    changed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            name = _base_name(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            name = _base_name(node.func.value)
        else:
            continue
        if name in tool_names:
            changed.add(name)
    return changed


def _assigned_otherwise(tree: ast.AST, name: str) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, (ast.Store, ast.Del)))
        or (isinstance(n, _DEFS) and n.name == name)
        for n in ast.walk(tree)
    )


# -- a case must not bring the answer -------------------------------------------------


def _stored_names(target: ast.expr) -> set[str]:
    """Names an assignment to `target` binds or changes (``d[k] = v`` changes d)."""
    names: set[str] = set()
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            names.add(node.id)
    return names


def _unconditional(root: ast.AST) -> Iterator[ast.AST]:
    """The nodes under `root` that run whenever it runs: not the branches of
    an ``if``, a conditional expression, ``and``/``or`` past the first
    operand, a loop's body, an ``except`` or ``else`` of a ``try``, a
    ``match`` case, a comprehension's element or a lambda's body. A literal
    there is one possible answer among others, chosen by what the tool
    returned; the stubbed run (make.py) judges those."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.If, ast.While, ast.IfExp)):
            stack.append(node.test)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            stack += [node.target, node.iter]
        elif isinstance(node, ast.BoolOp):
            stack.append(node.values[0])
        elif isinstance(node, (ast.Try, ast.TryStar)):
            stack += [*node.body, *node.finalbody]
        elif isinstance(node, ast.Match):
            stack.append(node.subject)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            stack += [g.iter for g in node.generators]
        elif isinstance(node, ast.Lambda):
            continue
        else:
            stack += list(ast.iter_child_nodes(node))


_Binding = tuple[set[str], list[ast.AST], bool]


def _bindings(tree: ast.AST) -> list[_Binding]:
    """Every binding in the snippet: (names it binds, expressions it reads
    them from, whether it runs unconditionally)."""
    always = {id(n) for n in _unconditional(tree)}
    found: list[_Binding] = []
    for node in ast.walk(tree):
        sure = id(node) in always
        if isinstance(node, ast.Assign):
            found.append((set().union(*(_stored_names(t) for t in node.targets)), [node.value], sure))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            found.append((_stored_names(node.target), [node.value], sure))
        elif isinstance(node, ast.NamedExpr):
            found.append(({node.target.id}, [node.value], sure))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            found.append((_stored_names(node.target), [node.iter], False))  # an element, if any
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    found.append((_stored_names(item.optional_vars), [item.context_expr], sure))
        elif isinstance(node, _DEFS):
            found.append(({node.name}, [node], sure))
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and isinstance(node.value.func.value, ast.Name)
        ):
            # ``parts.append("...")``: a method call may fill a container that becomes the answer.
            found.append(({node.value.func.value.id}, [node.value], sure))
    return found


def _flowing_into(tree: ast.AST, names: set[str]) -> list[ast.AST]:
    """The expressions whose values surely reach `names`, followed back
    through every binding of every name they read (flow-insensitive)."""
    bindings = _bindings(tree)
    reached, sources = set(names), []
    done: set[int] = set()
    changed = True
    while changed:
        changed = False
        for index, (bound, exprs, sure) in enumerate(bindings):
            if index in done or not bound & reached:
                continue
            done.add(index)
            if sure:
                sources.extend(exprs)
            new = set().union(*(_loaded_names(e) for e in exprs)) - reached
            if new:
                reached |= new
                changed = True
    return sources


def _folded(node: ast.AST) -> list[Any]:
    """Values the expression surely spells out as literals: its constants,
    and string concatenations and f-strings made of constants only."""
    values: list[Any] = []
    for sub in _unconditional(node):
        if isinstance(sub, ast.Constant) and not _in_table(sub, node):
            values.append(sub.value)
        elif isinstance(sub, (ast.BinOp, ast.JoinedStr)):
            text = _constant_text(sub)
            if text is not None:
                values.append(text)
    return values


def _constant_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _constant_text(node.left), _constant_text(node.right)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = [
            _constant_text(v) if not isinstance(v, ast.FormattedValue) else _constant_text(v.value) for v in node.values
        ]
        return "".join(p for p in parts if p is not None) if all(p is not None for p in parts) else None
    return None


def _in_table(constant: ast.Constant, root: ast.AST) -> bool:
    """Is the constant one entry of a literal list, tuple, set or dict of
    several (the options a case indexes into, not the answer itself)?"""
    for node in ast.walk(root):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and len(node.elts) > 1 and constant in node.elts:
            return True
        if isinstance(node, ast.Dict) and len(node.values) > 1 and (constant in node.values or constant in node.keys):
            return True
    return False


def copies_answer(snippet: str, answer_names: Sequence[str], reads_as_target: Callable[[Any], bool]) -> bool | None:
    """Does the snippet spell the answer out itself: a literal that reads as
    the target (`reads_as_target`, the way the answer is read and compared)
    in anything that flows into the answer variable(s)? None if the snippet
    cannot be read."""
    try:
        tree = ast.parse(snippet)
        sources = _flowing_into(tree, set(answer_names))
        return any(reads_as_target(value) for source in sources for value in _folded(source))
    except _UNREADABLE:
        return None
