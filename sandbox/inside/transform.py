"""Compile-time policy: RestrictedPython's transformer with the additions
generated tools need (see `ToolTransformer`).

Imports only the standard library, RestrictedPython and its sibling `policy`.
"""

from __future__ import annotations

import ast
from typing import Any

from RestrictedPython.transformer import RestrictingNodeTransformer

from .policy import EXTRA_MAGIC_METHODS, READABLE_DUNDERS, is_helper_name

__all__ = ["ToolTransformer"]


class ToolTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer with the additions generated tools
    need: single-underscore helper names (`policy.is_helper_name`), more magic methods in tool classes (EXTRA_MAGIC_METHODS), reads of
    READABLE_DUNDERS and of the global ``__name__``, annotated assignments,
    guarded ``a.b += c`` / ``a[i] += c``, and a bare ``except:`` caught as
    ``except Exception:``. ``match`` is refused. Every
    other rule is RestrictedPython's own."""

    def check_name(self, node: Any, name: str | None, allow_magic_methods: bool = False) -> None:
        if allow_magic_methods and name in EXTRA_MAGIC_METHODS and getattr(node, "col_offset", 0) != 0:
            return
        if name is not None and is_helper_name(name):
            return
        super().check_name(node, name, allow_magic_methods)

    def check_import_names(self, node: ast.ImportFrom | ast.Import) -> ast.AST:
        # RestrictedPython checks only the names an import *binds*, so
        # `from _strptime import locale` compiles, and the import hook serves
        # `_strptime` to library C code (see facades). Any private component
        # in the module path or the imported names is refused here.
        module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
        dotted_names = [alias.name for alias in node.names]
        if module != "__future__":
            dotted_names.insert(0, module)
        for dotted in dotted_names:
            if any(part.startswith("_") for part in dotted.split(".")):
                self.error(node, f'import of "{dotted}" is not allowed (names starting with "_" are private)')
        return super().check_import_names(node)

    def visit_Name(self, node: ast.Name) -> Any:
        # Reading __name__ ("tool") lets `if __name__ == "__main__":` blocks,
        # common in generated tools, compile; binding it stays refused.
        if node.id == "__name__" and isinstance(node.ctx, ast.Load):
            return node
        return super().visit_Name(node)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        # type(self).__name__ and func.__name__ are everywhere in generated
        # __repr__s and messages; they are plain strings (the guard checks).
        if node.attr in READABLE_DUNDERS and isinstance(node.ctx, ast.Load):
            call = _call("_getattr_", self.visit(node.value), ast.Constant(node.attr))
            ast.copy_location(call, node)
            ast.fix_missing_locations(call)
            return call
        return super().visit_Attribute(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        """A bare ``except:`` becomes ``except Exception:``, so no handler a
        tool writes can catch the sandbox's control exceptions (which derive
        from BaseException only; the name BaseException is bound to
        Exception in the sandbox, see `policy.EXCEPTION_ALIASES`)."""
        if node.type is None:
            node.type = ast.copy_location(ast.Name("Exception", ast.Load()), node)
        return super().visit_ExceptHandler(node)

    def visit_Match(self, node: ast.AST) -> Any:
        # Class patterns look attributes up in C, past _getattr_.
        self.not_allowed(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        """``x: T = v`` becomes ``x = v``: the annotation is dropped unevaluated."""
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        assign = ast.Assign(targets=[node.target], value=node.value)
        ast.copy_location(assign, node)
        ast.fix_missing_locations(assign)
        return self.visit(assign)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """``a.b += c`` and ``a[i] += c``, which RestrictedPython refuses but
        tools write constantly, as guarded single-evaluation steps::

            t = _write_(a);  t.b = _inplacevar_("+=", _getattr_(t, "b"), c)
            t = _write_(a); k = i;  t[k] = _inplacevar_("+=", _getitem_(t, k), c)
        """
        target = node.target
        if isinstance(target, ast.Name) or (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Slice)):
            return super().visit_AugAssign(node)
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            return super().visit_AugAssign(node)
        op = _AUG_OPS.get(type(node.op))
        if op is None:
            return super().visit_AugAssign(node)
        # The write guard runs first: the target must be writable before
        # anything is read or computed, as for a plain `a.b = c`.
        obj_name = self.gen_tmp_name()
        statements: list[ast.stmt] = [
            ast.Assign(targets=[ast.Name(obj_name, ast.Store())], value=_call("_write_", self.visit(target.value)))
        ]
        value = self.visit(node.value)
        if isinstance(target, ast.Attribute):
            # Run the ordinary attribute-name checks (private names, frames).
            probe = ast.Attribute(value=ast.Constant(None), attr=target.attr, ctx=ast.Load())
            ast.copy_location(probe, target)
            ast.fix_missing_locations(probe)
            read = self.visit(probe)  # _getattr_(None, "b"); point it at the temporary
            if not isinstance(read, ast.Call):
                return node
            read.args[0] = ast.Name(obj_name, ast.Load())
            store: ast.expr = ast.Attribute(value=ast.Name(obj_name, ast.Load()), attr=target.attr, ctx=ast.Store())
        else:
            key_name = self.gen_tmp_name()
            statements.append(ast.Assign(targets=[ast.Name(key_name, ast.Store())], value=self.visit(target.slice)))
            read = _call("_getitem_", ast.Name(obj_name, ast.Load()), ast.Name(key_name, ast.Load()))
            store = ast.Subscript(
                value=ast.Name(obj_name, ast.Load()), slice=ast.Name(key_name, ast.Load()), ctx=ast.Store()
            )
        statements.append(ast.Assign(targets=[store], value=_call("_inplacevar_", ast.Constant(op), read, value)))
        for statement in statements:
            ast.copy_location(statement, node)
            ast.fix_missing_locations(statement)
        return statements


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


_AUG_OPS: dict[type, str] = {
    ast.Add: "+=",
    ast.Sub: "-=",
    ast.Mult: "*=",
    ast.Div: "/=",
    ast.Mod: "%=",
    ast.Pow: "**=",
    ast.LShift: "<<=",
    ast.RShift: ">>=",
    ast.BitOr: "|=",
    ast.BitXor: "^=",
    ast.BitAnd: "&=",
    ast.FloorDiv: "//=",
    ast.MatMult: "@=",
}
