"""How much the tests pin a tool down: mutation testing (issue 19,
docs/verification.md), `toolcrib verify REF --mutants`.

Small changes to the tool's code (`Mutator`: a comparison or arithmetic
operator, a constant or a boundary, a removed statement, a swapped return,
``and``/``or``, a dropped ``not``), each a copy of the source made from its
syntax tree, run against the version's stored tests in the sandbox, each
case in its own jailed child as in `verify`. A mutant is *killed* when some
case fails on it, *survives* when every case passes; the score is killed
over the mutants that ran. Surviving mutants are listed as diffs: changes
the tests cannot tell from the tool.

Why not mutmut or cosmic-ray: both mutate files on disk and run a pytest
suite against them; here the "suite" is the version's stored cases and the
code must run in the sandbox, so a small `ast.NodeTransformer` makes the
mutants in memory and the registry runs them like any version.
"""

from __future__ import annotations

import ast
import difflib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..sandbox.contract import Backend, Limits, PolicyName
from .calls import sandbox_job
from .checks import CheckRun, Finding, StartedRun, check_budget
from .errors import InvalidInput, SandboxUnavailable
from .models import ToolVersion
from .parallel import workers_for
from .verifying import evidence

__all__ = ["DEFAULT_BUDGET", "MAX_MUTANTS", "Mutant", "make_mutants", "mutation_check"]

DEFAULT_BUDGET = 60.0
# At most this many mutants per run (spread evenly over the sites when more).
MAX_MUTANTS = 200
# Surviving mutants listed as findings (the count is kept in the summary).
MAX_LISTED = 50

_COMPARE = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_ARITH = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
_SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.And: "and",
    ast.Or: "or",
}
_REMOVABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Raise, ast.Delete)


@dataclass(frozen=True)
class Mutant:
    """One changed copy of the tool: what changed, where, and the diff."""

    number: int
    operator: str
    description: str
    line: int
    source: str
    diff: str


def _is_docstring(node: ast.AST, parent_body: list[ast.stmt] | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and bool(parent_body)
        and parent_body is not None
        and parent_body[0] is node
    )


class Mutator(ast.NodeTransformer):
    """Counts the mutation sites of a tree (``target`` None) or applies the
    one numbered ``target`` (its description in ``done``)."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.count = 0
        self.done: tuple[str, str, int] | None = None
        self._docstrings: set[int] = set()

    def _site(self, node: ast.AST, operator: str, description: str) -> bool:
        """Is `node`'s next site the one to apply?"""
        here = self.count
        self.count += 1
        if here == self.target:
            self.done = (operator, description, getattr(node, "lineno", 0))
            return True
        return False

    def visit_Module(self, node: ast.Module) -> Any:
        self._mark_docstring(node.body)
        return self.generic_visit(node)

    def _mark_docstring(self, body: list[ast.stmt]) -> None:
        if body and _is_docstring(body[0], body):
            self._docstrings.add(id(body[0]))
            self._docstrings.add(id(getattr(body[0], "value", None)))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        self._mark_docstring(node.body)
        self._remove_statements(node)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self._mark_docstring(node.body)
        return self.generic_visit(node)

    def _remove_statements(self, node: ast.AST) -> None:
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list):
                continue
            for i, stmt in enumerate(body):
                if not isinstance(stmt, _REMOVABLE) or id(stmt) in self._docstrings:
                    continue
                text = ast.unparse(stmt).splitlines()[0][:60]
                if self._site(stmt, "remove_statement", f"removed `{text}`"):
                    body[i] = ast.copy_location(ast.Pass(), stmt)
            for stmt in body:
                if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
                    self._remove_statements(stmt)

    def visit_Compare(self, node: ast.Compare) -> Any:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            swap = _COMPARE.get(type(op))
            if swap is not None and self._site(node, "compare", f"`{_SYMBOL[type(op)]}` -> `{_SYMBOL[swap]}`"):
                node.ops[i] = swap()
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        self.generic_visit(node)
        swap = _ARITH.get(type(node.op))
        if swap is not None and self._site(node, "arithmetic", f"`{_SYMBOL[type(node.op)]}` -> `{_SYMBOL[swap]}`"):
            node.op = swap()
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        self.generic_visit(node)
        swap = _ARITH.get(type(node.op))
        if swap is not None and self._site(node, "arithmetic", f"`{_SYMBOL[type(node.op)]}=` -> `{_SYMBOL[swap]}=`"):
            node.op = swap()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        self.generic_visit(node)
        swap = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._site(node, "boolean", f"`{_SYMBOL[type(node.op)]}` -> `{_SYMBOL[swap]}`"):
            node.op = swap()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "boolean", "dropped `not`"):
            return node.operand
        if isinstance(node.op, ast.USub) and self._site(node, "arithmetic", "dropped unary `-`"):
            return node.operand
        return node

    def visit_Constant(self, node: ast.Constant) -> Any:
        if id(node) in self._docstrings:
            return node
        value = node.value
        if isinstance(value, bool):
            if self._site(node, "constant", f"`{value}` -> `{not value}`"):
                return ast.copy_location(ast.Constant(not value), node)
        elif isinstance(value, int):
            if self._site(node, "constant", f"`{value}` -> `{value + 1}`"):
                return ast.copy_location(ast.Constant(value + 1), node)
        elif isinstance(value, float):
            if self._site(node, "constant", f"`{value!r}` -> `{value + 1.0!r}`"):
                return ast.copy_location(ast.Constant(value + 1.0), node)
        elif isinstance(value, str) and value:
            if self._site(node, "constant", f"`{value[:20]!r}` -> `''`"):
                return ast.copy_location(ast.Constant(""), node)
        return node

    def visit_Return(self, node: ast.Return) -> Any:
        self.generic_visit(node)
        if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
            return node
        if self._site(node, "return", f"`return {ast.unparse(node.value)[:40]}` -> `return None`"):
            node.value = ast.copy_location(ast.Constant(None), node.value)
        return node


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise InvalidInput(f"the tool cannot be parsed for mutation: {type(exc).__name__}: {exc}") from None


def make_mutants(source: str, *, limit: int = MAX_MUTANTS) -> tuple[list[Mutant], int]:
    """The mutants of `source` (at most `limit`, spread evenly over its
    sites) and how many sites it has. InvalidInput if it cannot be parsed."""
    counter = Mutator()
    counter.visit(_parse(source))
    sites = counter.count
    original = ast.unparse(_parse(source))
    chosen: Iterator[int] = iter(range(sites))
    if sites > limit:
        chosen = iter(sorted({round(i * (sites - 1) / max(limit - 1, 1)) for i in range(limit)}))
    mutants: list[Mutant] = []
    for target in chosen:
        mutator = Mutator(target)
        tree = mutator.visit(_parse(source))
        if mutator.done is None:
            continue
        ast.fix_missing_locations(tree)
        try:
            text = ast.unparse(tree)
            compile(text, "<mutant>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError):
            continue  # a change that is not Python: not a mutant that could run
        if text == original:
            continue
        diff = "".join(
            difflib.unified_diff(
                original.splitlines(keepends=True), text.splitlines(keepends=True), "tool", "mutant", n=0
            )
        )
        operator, description, line = mutator.done
        mutants.append(Mutant(len(mutants) + 1, operator, description, line, text + "\n", diff))
    return mutants, sites


def mutation_check(
    tool: ToolVersion,
    runner: Backend,
    *,
    backend: str,
    limits: Limits,
    policy: PolicyName,
    budget: float = DEFAULT_BUDGET,
    limit: int = MAX_MUTANTS,
) -> CheckRun:
    """Run `tool`'s stored tests against each of its mutants (see the
    module's doc); the run, its score and its surviving mutants, not yet
    stored. A tool that cannot be parsed is a run with an error, not an exception."""
    if not tool.tests:
        raise InvalidInput(f"{tool.ref} has no test cases: mutation testing measures how well they pin it down")
    seconds = check_budget(budget)
    run = StartedRun(
        tool,
        "mutants",
        budget=seconds,
        settings={"budget": seconds, "max_mutants": limit},
        backend=backend,
        policy=policy,
    )
    deadline = run.deadline
    summary: dict[str, Any] = {"error": None}

    try:
        # Mutants of the tool's own code only (a prelude is shared, not the tool's).
        mutants, sites = make_mutants(tool.source, limit=limit)
    except InvalidInput as exc:
        summary.update({"mutants": 0, "killed": 0, "survived": 0, "not_run": 0, "score": None, "error": str(exc)})
        return run.finish(summary, [])

    def passes(source: str, index: int) -> bool:
        case = tool.tests[index]
        changed = tool.model_copy(update={"source": source})
        job = sandbox_job(changed, tool.signature.input_schema, limits, policy, args=case.args, snippet=case.snippet)
        result = runner.run(job)
        if result.status == "unavailable":
            why = result.error.message if result.error else "no reason given"
            raise SandboxUnavailable(f"the {backend} backend is unavailable: {why}")
        return evidence(index, case, result).passed

    # Only a case the tool itself passes can tell a mutant from it: one it
    # fails would "kill" every mutant, and score 1.0 a tool its tests reject.
    passing = [index for index in range(len(tool.tests)) if passes(tool.source, index)]
    failing = len(tool.tests) - len(passing)
    if not passing:
        summary.update(
            {
                "mutants": 0,
                "killed": 0,
                "survived": 0,
                "not_run": 0,
                "score": None,
                "cases_failing_on_tool": failing,
                "error": "the tool fails every one of its tests: a mutation score would mean nothing",
            }
        )
        return run.finish(summary, [])

    def run_one(mutant: Mutant) -> str:
        """'killed', 'survived' or 'not_run' (the budget ran out first)."""
        for index in passing:
            if time.monotonic() >= deadline:
                return "not_run"
            if not passes(mutant.source, index):
                return "killed"
        return "survived"

    workers = workers_for(runner)
    if workers > 1 and len(mutants) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="toolcrib-mutant") as pool:
            outcomes = list(pool.map(run_one, mutants))
    else:
        outcomes = [run_one(m) for m in mutants]
    killed = outcomes.count("killed")
    survived = outcomes.count("survived")
    ran = killed + survived
    summary.update(
        {
            "sites": sites,
            "mutants": len(mutants),
            "killed": killed,
            "survived": survived,
            "not_run": outcomes.count("not_run"),
            "score": round(killed / ran, 4) if ran else None,
            "cases_failing_on_tool": failing,
            "budget_exhausted": outcomes.count("not_run") > 0,
            "tests": len(tool.tests),
        }
    )
    findings = [
        Finding(
            check="mutants",
            kind="surviving_mutant",
            summary=f"line {m.line}: {m.description} passes every test",
            detail={"operator": m.operator, "line": m.line, "diff": m.diff, "mutant": m.number},
        )
        for m, outcome in zip(mutants, outcomes, strict=True)
        if outcome == "survived"
    ][:MAX_LISTED]
    return run.finish(summary, findings)
