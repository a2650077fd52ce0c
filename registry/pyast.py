"""Small readings of a tool's module AST shared by admission and signatures.
Nothing here runs tool code."""

from __future__ import annotations

import ast

__all__ = ["imported_names", "module_statements"]


def module_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Top-level statements, including those nested in top-level try/if blocks."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.Try):
            out += module_statements(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
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
