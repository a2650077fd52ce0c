"""The checks beyond a version's own tests (docs/verification.md): how
`verify --fuzz` prints them, the `case` commands that turn a finding into
a test case, and `checks` (the registry's default checks)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .check_options import MAX_FUZZ_OPTION, seed_option
from .common import (
    CLIError,
    echo_json,
    echo_progress,
    echo_text,
    json_option,
    open_registry,
    pretty_json,
    read_text_argument,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..registry import Registry, Verification
    from ..registry.checks import CheckRun

__all__ = [
    "COMMANDS",
    "case_group",
    "checks",
    "compare_after_add",
    "echo_check_line",
    "flag_line",
    "fuzz_count",
    "print_check",
    "seed_option",
    "verify_one",
]


def fuzz_count(reg: Registry, given: int | None) -> int | None:
    """N for `verify`: --fuzz when given (0: none), else the registry's
    setting (`toolcrib checks --fuzz N`), else None."""
    if given is not None:
        return given or None
    from ..registry.checking import FUZZ_SETTING, default_fuzz

    return default_fuzz(reg.setting(FUZZ_SETTING))


def print_check(run: CheckRun) -> None:
    """A check run for a person: its summary line, then each finding with its input."""
    summary = run.summary
    if run.kind == "fuzz":
        head = (
            f"fuzz: {summary.get('ran', 0)} of {summary.get('generated', 0)} generated inputs ran "
            f"(seed {run.settings.get('seed')}, {summary.get('duration_ms', 0) / 1000:.1f} s)"
        )
    elif run.kind == "predecessor":
        head = (
            f"predecessor: {summary.get('compared', 0)} input(s) through {summary.get('predecessor')} and "
            f"{run.tool} ({summary.get('tests_compared', 0)} of its test case(s), {summary.get('generated', 0)} "
            f"generated), {summary.get('differing', 0)} answered differently"
        )
    elif run.kind == "mutants":
        score = summary.get("score")
        head = (
            f"mutants: score {score if score is not None else '-'} ({summary.get('killed', 0)} killed, "
            f"{summary.get('survived', 0)} survived of {summary.get('mutants', 0)} mutant(s), "
            f"{summary.get('tests', 0)} test case(s), {summary.get('duration_ms', 0) / 1000:.1f} s)"
        )
    else:
        head = f"{run.kind}:"
    echo_text(head)
    flag = flag_line(run) if run.kind == "predecessor" else None
    if flag and summary.get("flagged"):
        echo_text(f"  {flag}")
    if summary.get("error"):
        echo_text(f"  could not fuzz: {summary['error']}")
    if summary.get("note"):
        echo_text(f"  note: {summary['note']}")
    if summary.get("budget_exhausted"):
        echo_text(f"  the time budget ({run.settings.get('budget')} s) ran out before every input ran")
    if summary.get("documented"):
        echo_text(f"  documented exceptions (not findings): {', '.join(summary['documented'])}")
    if not run.findings:
        if not summary.get("error"):
            echo_text("  no findings")
        return
    for finding in run.findings:
        echo_text(f"  finding {finding.id}: {finding.kind}: {finding.summary}")
        if finding.detail.get("diff"):
            echo_text("    " + str(finding.detail["diff"]).rstrip("\n").replace("\n", "\n    "), multiline=True)
        if finding.input is not None:
            shrunk = " (shrunk)" if finding.detail.get("shrunk") else ""
            echo_text(f"    input{shrunk}: {json.dumps(finding.input, ensure_ascii=False)[:500]}")
    if any(f.input is not None for f in run.findings):
        echo_text("  make a finding a test case: toolcrib case add-from-finding ID --tests FILE")


# -- case add-from-finding -----------------------------------------------------------------------


def _append_case(path: Path, case: dict[str, Any]) -> None:
    """Append `case` to the tests file at `path` (a list, or {"cases": [...]}),
    creating it; replaced atomically, never half-written."""
    data: Any = []
    if path.exists():
        from ..sandbox.inside.wire import MAX_FILE_DEPTH, NotJSON, OverBound, read_json

        text = read_text_argument(str(path), "tests")
        if text.strip():
            try:
                data = read_json(text, "the tests file", max_depth=MAX_FILE_DEPTH)
            except (NotJSON, OverBound) as exc:
                raise CLIError(str(exc)) from None
    cases = data.get("cases") if isinstance(data, dict) and set(data) == {"cases"} else data
    if not isinstance(cases, list):
        raise CLIError(f"{path}: a tests file is a list of cases or an object with only a 'cases' list")
    if any(isinstance(c, dict) and c.get("name") == case["name"] for c in cases):
        raise CLIError(f"{path} already has a case named {case['name']!r}")
    cases.append(case)
    body = pretty_json(data if isinstance(data, dict) else cases) + "\n"
    directory = path.resolve().parent
    try:
        import tempfile  # here: `show` prints check lines and writes no file

        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".toolcrib-tests-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        os.replace(tmp, path)
    except OSError as err:
        raise CLIError(f"cannot write the tests file {path}: {err.strerror}") from None


@click.group(name="case")
def case_group() -> None:
    """Turn what a check found into test cases.

    \b
    Examples:
        toolcrib case add-from-finding 3 --tests mean.tests.json
        toolcrib case add-from-finding 3 --expected 0.0 --tests mean.tests.json
    """


@case_group.command(name="add-from-finding")
@click.argument("finding_id", type=click.IntRange(min=1))
@click.option(
    "--tests",
    "tests_path",
    metavar="FILE",
    help="Append the case to this tests file (created if missing); without it the case is printed.",
)
@click.option(
    "--expected",
    "expected_json",
    metavar="JSON",
    help="The expected value, as JSON, if you know it now. Without it the case has no 'expected', and "
    "'toolcrib add --tests' refuses it until you write one: toolcrib never invents it.",
)
@json_option
def add_from_finding(finding_id: int, tests_path: str | None, expected_json: str | None, json_output: bool) -> None:
    """Make a stored finding a test case: its (shrunk) input as 'args'.

    The expected value is yours to write: the case is drafted without one
    (or with --expected), in FILE or on standard output, and the finding is
    marked drafted (audited). Add the tool again with the tests file to
    store the case with a new version.

    \b
    Examples:
        toolcrib case add-from-finding 3 --tests mean.tests.json
        toolcrib case add-from-finding 3 --expected '"empty"'
    """
    expected: Any = None
    if expected_json is not None:
        from ..sandbox.inside.wire import NotJSON, OverBound, read_json

        try:
            expected = read_json(expected_json, "--expected")
        except (NotJSON, OverBound) as exc:
            raise CLIError(str(exc)) from None
    reg = open_registry()
    found, ref = reg.finding(finding_id)
    from ..registry.checks import draft_case

    case = draft_case(found, expected=expected, has_expected=expected_json is not None)
    if tests_path is not None:
        _append_case(Path(tests_path), case)
    case, ref = reg.draft_case(finding_id, expected=expected, has_expected=expected_json is not None)
    if json_output:
        echo_json({"finding": finding_id, "tool": ref, "case": case, "tests": tests_path})
        return
    if tests_path is None:
        echo_json(case)
    else:
        echo_text(f"case {case['name']!r} for {ref} appended to {tests_path}")
    if expected_json is None:
        echo_text("write its 'expected' value before adding the tool with these tests", err=True)


# -- checks: the registry's defaults ------------------------------------------------------------


@click.command()
@click.option(
    "--fuzz",
    "fuzz_n",
    type=click.IntRange(min=0, max=MAX_FUZZ_OPTION),
    default=None,
    metavar="N",
    help="Every 'toolcrib verify' also fuzzes with N generated inputs (0: no longer).",
)
@click.option(
    "--min-mutation-score",
    "min_score",
    metavar="X|off",
    default=None,
    help="A version counts as verified only with a mutation score of at least X (0 to 1; verify then "
    "always mutation-tests); 'off' removes the requirement.",
)
@click.option(
    "--require-no-findings/--allow-findings",
    "no_findings",
    default=None,
    help="A version counts as verified only if fuzzing ran and found nothing (verify then always fuzzes, "
    "50 inputs unless --fuzz sets N).",
)
@json_option
def checks(fuzz_n: int | None, min_score: str | None, no_findings: bool | None, json_output: bool) -> None:
    """Show or set the checks 'toolcrib verify' runs by default (audited).

    \b
    Examples:
        toolcrib checks
        toolcrib checks --fuzz 50
        toolcrib checks --min-mutation-score 0.8 --require-no-findings
    """
    from ..registry.checking import (
        FUZZ_SETTING,
        MIN_SCORE_SETTING,
        NO_FINDINGS_SETTING,
        default_fuzz,
        requirements,
    )

    score_text: str | None = None
    if min_score is not None and min_score != "off":
        try:
            score = float(min_score)
        except ValueError:
            score = -1.0
        if not 0 <= score <= 1:
            raise click.BadParameter("a number from 0 to 1, or 'off'", param_hint="--min-mutation-score")
        score_text = str(score)
    changing = fuzz_n is not None or min_score is not None or no_findings is not None
    reg = open_registry(create=changing)
    if fuzz_n is not None:
        reg.set_setting(FUZZ_SETTING, str(fuzz_n) if fuzz_n > 0 else None)
    if min_score is not None:
        reg.set_setting(MIN_SCORE_SETTING, score_text)
    if no_findings is not None:
        reg.set_setting(NO_FINDINGS_SETTING, "true" if no_findings else None)
    current = {"fuzz": default_fuzz(reg.setting(FUZZ_SETTING)), **requirements(reg.setting)}
    if json_output:
        echo_json(current)
    else:
        echo_text(f"fuzz:               {current['fuzz'] or 'off'}")
        echo_text(
            f"min mutation score: {current['min_mutation_score'] if current['min_mutation_score'] is not None else 'off'}"
        )
        echo_text(f"require no findings: {'yes' if current['require_no_findings'] else 'no'}")


def echo_check_line(run: CheckRun) -> None:
    """A check run in `show`: one line, then each finding on its own."""
    summary = run.summary
    if summary.get("error"):
        state = f"could not run: {summary['error']}"
    else:
        state = f"{len(run.findings)} finding(s)"
    if run.kind == "fuzz":
        what = f"{summary.get('ran', 0)} inputs, seed {run.settings.get('seed')}"
    elif run.kind == "mutants":
        what = f"score {summary.get('score')}, {summary.get('killed', 0)} of {summary.get('mutants', 0)} killed"
    elif run.kind == "predecessor":
        what = f"against {summary.get('predecessor')}, {summary.get('compared', 0)} inputs"
        if summary.get("flagged"):
            state += ", FLAGGED: a patch that changes answers on its predecessor's tests"
    else:
        what = ", ".join(f"{k} {v}" for k, v in summary.items() if isinstance(v, (int, float, str)) and k != "error")
    echo_text(f"  {run.kind + ':':11} {state} ({what}) at {run.ran_at}")
    for finding in run.findings:
        drafted = " [drafted]" if finding.drafted_at else ""
        echo_text(f"    finding {finding.id}: {finding.kind}: {finding.summary}{drafted}")
        if finding.input is not None:
            echo_text(f"      input: {json.dumps(finding.input, ensure_ascii=False)[:300]}")


COMMANDS = [case_group, checks]


def compare_after_add(reg: Registry, ref: str, bump: str) -> tuple[CheckRun | None, str | None]:
    """After `add` created a patch (or an explicitly numbered) version: its
    predecessor's tests through both (`Registry.compare`), so add's report
    can flag a patch that changes answers. (None, why) when it could not run;
    (None, None) when there is nothing to compare."""
    if bump not in ("patch", "explicit"):
        return None, None
    from ..registry.errors import ToolcribError

    try:
        return reg.compare(ref), None
    except ToolcribError as err:
        return None, f"could not compare with the previous version: {err}"


def flag_line(run: CheckRun) -> str | None:
    """The warning a predecessor check gives, if any."""
    s = run.summary
    if s.get("flagged"):
        return (
            f"FLAGGED: this patch release changes answers on {s.get('tests_changed')} of "
            f"{s.get('tests_compared')} test case(s) of {s.get('predecessor')}"
        )
    if s.get("differing"):
        return f"{s.get('differing')} input(s) answered differently than {s.get('predecessor')}"
    return None


def verify_one(
    reg: Registry,
    ref: str,
    *,
    backend: str,
    policy: str | None,
    no_build: bool,
    overrides: dict[str, float] | None,
    fuzz_n: int | None,
    seed: int,
    budget: float | None,
    mutants: bool,
    json_output: bool,
    print_verification: Callable[[Verification], None],
) -> int:
    """`toolcrib verify REF` with its checks: the tests, then fuzzing,
    mutants and the predecessor comparison as asked or as the registry
    requires (`toolcrib checks`); prints the report and returns the exit code."""
    from ..registry.checking import REQUIRED_FUZZ, requirements
    from ..registry.errors import ToolcribError

    reqs = requirements(reg.setting)
    tool = reg.get(ref)
    n = fuzz_count(reg, fuzz_n)
    if n is None and reqs["require_no_findings"] and fuzz_n is None:
        n = REQUIRED_FUZZ
    progress = echo_progress
    result = None
    if tool.tests or not n:
        # The registry's requirements are held here, with the checks asked for (each run once).
        result = reg.verify(
            tool.ref,
            backend=backend,
            limits=overrides,
            policy=policy,
            no_build=no_build,
            progress=progress,
            requirements=False,
        )
    fuzzed = mutated = compared = None
    common: dict[str, Any] = dict(budget=budget, backend=backend, limits=overrides, policy=policy)
    try:
        if n:
            fuzzed = reg.fuzz(tool.ref, n, seed=seed, no_build=no_build, progress=progress, **common)
        if result is not None and (mutants or reqs["min_mutation_score"] is not None):
            mutated = reg.mutants(tool.ref, no_build=no_build, progress=progress, **common)
    except ToolcribError:
        # Fail closed: a check the registry requires that cannot run (no
        # fuzz extra, no sandbox) leaves the version unverified.
        required = reqs["require_no_findings"] or reqs["min_mutation_score"] is not None
        if result is not None and result.status == "verified" and required:
            reg.enforce_requirements(tool.ref, fuzzed=fuzzed, mutated=mutated)
        raise
    if result is not None:
        compared = reg.compare(tool.ref, n=n or 0, seed=seed, **common)
    reasons: list[str] = []
    if result is not None and result.status == "verified":
        reasons = reg.enforce_requirements(tool.ref, fuzzed=fuzzed, mutated=mutated)
    runs = [r for r in (fuzzed, mutated, compared) if r is not None]
    if json_output:
        data: dict[str, Any] = result.model_dump(mode="json") if result is not None else {"tool": tool.ref}
        if result is None:
            data["status"] = None
        for run in runs:
            data[run.kind] = run.model_dump(mode="json")
        if reasons:
            data["status"] = "failed"
            data["requirements"] = reasons
        echo_json(data)
    else:
        if result is not None:
            print_verification(result)
        else:
            echo_text(f"{tool.ref}: no test cases, fuzzed only")
        for run in runs:
            print_check(run)
        for reason in reasons:
            echo_text(f"not verified: {reason}")
    if result is None:
        return 1 if fuzzed is not None and fuzzed.findings else 0
    return 0 if result.status == "verified" and not reasons else 1
