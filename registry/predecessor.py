"""Each version against the one it replaces (issue 19, docs/verification.md).

The predecessor is the highest version of the same name below this one
that is not yanked. Its own test cases, and (when fuzzing) argument sets
generated from the new version's input schema that the old one accepts
too, run through both versions in the sandbox, each with its own limits
and policy; every input where the two answer differently is a
``changed_answer`` finding with both answers. A *patch* release that
changes an answer on its predecessor's own tests is flagged: a patch
promises the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..sandbox.contract import Backend, Limits, PolicyName, Result
from .audit import cap_value
from .calls import sandbox_job
from .checks import CheckRun, Finding, StartedRun
from .comparators import TABLE
from .errors import SandboxUnavailable
from .fuzzing import DEFAULT_BUDGET, DEFAULT_SEED, NoInputs, generate_inputs, hypothesis_modules
from .models import TestCase, ToolVersion
from .parallel import run_jobs
from .store_versions import VersionRow
from .versions import canonical_json

__all__ = ["compare_versions", "predecessor_row", "release_kind"]

_VALUE_CAP = 2048
# At most this many differing inputs become findings (the count is kept).
MAX_FINDINGS = 20


def predecessor_row(rows: list[VersionRow], row: VersionRow) -> VersionRow | None:
    """The version `row` replaces among `rows` (one name's versions, oldest
    first): the highest below it that is not yanked; None for a first version."""
    below = [r for r in rows if r.semver.key() < row.semver.key() and r.yanked is None and r.id != row.id]
    return below[-1] if below else None


def release_kind(old: str, new: str) -> str:
    """'major', 'minor' or 'patch': which part of the version number changed."""
    from .versions import parse_version

    a, b = parse_version(old), parse_version(new)
    if a.major != b.major:
        return "major"
    if a.minor != b.minor:
        return "minor"
    return "patch"


def _answer(result: Result) -> Any:
    if result.status == "ok":
        return {"result": result.result}
    return {"status": result.status, "error": result.error.type if result.error else None, "limit": result.limit}


def _same(case: TestCase | None, old: Result, new: Result) -> bool:
    """Do the two runs answer alike? Results by the case's comparator (its
    tolerance too) against the old answer, else exactly; failures by kind."""
    if old.status == "ok" and new.status == "ok":
        if case is None:
            return canonical_json(old.result) == canonical_json(new.result)
        try:
            same, _ = TABLE[case.comparator].compare(old.result, new.result, case.tolerance)
        except RecursionError:
            return False
        return bool(same)
    return canonical_json(_answer(old)) == canonical_json(_answer(new))


def compare_versions(
    new: ToolVersion,
    old: ToolVersion,
    runner: Backend,
    *,
    backend: str,
    limits: tuple[Limits, Limits],
    policy: tuple[PolicyName, PolicyName],
    n: int = 0,
    seed: int = DEFAULT_SEED,
    budget: float = DEFAULT_BUDGET,
    valid: tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], bool]],
) -> CheckRun:
    """`old`'s test cases (and `n` generated inputs, when n > 0) through
    both versions; the run and its findings, not yet stored. ``limits``,
    ``policy`` and ``valid`` are (new's, old's)."""
    run = StartedRun(
        new,
        "predecessor",
        budget=budget,
        settings={"n": n, "seed": seed, "budget": float(budget), "predecessor": old.ref},
        backend=backend,
        policy=policy[0],
    )
    deadline = run.deadline
    kind = release_kind(old.version, new.version)
    summary: dict[str, Any] = {"predecessor": old.ref, "release": kind, "error": None}

    inputs: list[tuple[str, TestCase | None, dict[str, Any] | None, str | None]] = []
    for index, case in enumerate(old.tests, start=1):
        label = f"case {index}" + (f" ({case.name})" if case.name else "")
        if case.args is not None and not valid[0](case.args):
            continue  # the new signature refuses these arguments: a signature change, shown by diff
        inputs.append((label, case, case.args, case.snippet))
    tests_compared = len(inputs)
    if n > 0:
        try:
            hypothesis_modules()
            generated = generate_inputs(
                new.signature.input_schema, n, seed, valid=lambda a: valid[0](a) and valid[1](a), deadline=deadline
            )
        except NoInputs as exc:
            summary["error"] = str(exc)
            generated = []
        known = {canonical_json(args) for _, _, args, _ in inputs if args is not None}
        for drawn in generated:
            if canonical_json(drawn) not in known:
                inputs.append(("generated", None, drawn, None))

    def job(tool: ToolVersion, which: int, args: dict[str, Any] | None, snippet: str | None) -> Any:
        return sandbox_job(tool, tool.signature.input_schema, limits[which], policy[which], args=args, snippet=snippet)

    jobs = []
    for _, _, given, code in inputs:
        jobs.append(job(new, 0, given, code))
        jobs.append(job(old, 1, given, code))
    results = run_jobs(runner, jobs, deadline=deadline)

    findings: list[Finding] = []
    differing = tests_changed = compared = 0
    for i, (label, which_case, args, snippet) in enumerate(inputs):
        new_result, old_result = results[2 * i], results[2 * i + 1]
        if new_result is None or old_result is None:
            continue
        for r in (new_result, old_result):
            if r.status == "unavailable":
                why = r.error.message if r.error else "no reason given"
                raise SandboxUnavailable(f"the {backend} backend is unavailable: {why}")
        compared += 1
        if _same(which_case, old_result, new_result):
            continue
        differing += 1
        if which_case is not None:
            tests_changed += 1
        if len(findings) < MAX_FINDINGS:
            old_answer, new_answer = _answer(old_result), _answer(new_result)
            findings.append(
                Finding(
                    check="predecessor",
                    kind="changed_answer",
                    summary=f"{label}: {old.ref} answered {_show(old_answer)}, {new.ref} answers {_show(new_answer)}",
                    input=args,
                    detail={
                        "source": "test" if which_case is not None else "generated",
                        "case": label if which_case is not None else None,
                        "snippet": snippet,
                        "old": cap_value(old_answer, _VALUE_CAP),
                        "new": cap_value(new_answer, _VALUE_CAP),
                    },
                )
            )
    summary.update(
        {
            "tests_compared": tests_compared,
            "tests_changed": tests_changed,
            "generated": len(inputs) - tests_compared,
            "compared": compared,
            "differing": differing,
            "flagged": kind == "patch" and tests_changed > 0,
            "budget_exhausted": compared < len(inputs),
        }
    )
    return run.finish(summary, findings)


def _show(value: Any) -> str:
    text = canonical_json(cap_value(value, 400))
    return text if len(text) <= 200 else text[:199] + "…"
