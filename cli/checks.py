"""The checks beyond a version's own tests (docs/verification.md): how
`verify --fuzz` prints them, the `case` commands that turn a finding into
a test case, and `checks` (the registry's default checks)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import CLIError, echo_json, echo_text, json_option, open_registry, read_text_argument

if TYPE_CHECKING:
    from ..registry import Registry
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
]

MAX_FUZZ_OPTION = 10_000


def seed_option(fn: Any) -> Any:
    fn = click.option(
        "--budget",
        type=click.FloatRange(min=0.1, max=24 * 3600),
        default=None,
        metavar="SECONDS",
        help="Time budget of the checks (generating, running, shrinking). Default: 60.",
    )(fn)
    fn = click.option(
        "--seed",
        type=click.IntRange(min=0, max=2**32 - 1),
        default=0,
        show_default=True,
        help="Seed of the generated inputs: the same seed, the same inputs.",
    )(fn)
    return click.option(
        "--fuzz",
        "fuzz_n",
        type=click.IntRange(min=0, max=MAX_FUZZ_OPTION),
        default=None,
        metavar="N",
        help="Also run N argument sets generated from the input schema (needs toolcrib[fuzz]); "
        "default: the registry's setting (toolcrib checks --fuzz N), else none.",
    )(fn)


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
        if finding.input is not None:
            shrunk = " (shrunk)" if finding.detail.get("shrunk") else ""
            echo_text(f"    input{shrunk}: {json.dumps(finding.input, ensure_ascii=False)[:500]}")
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
    body = json.dumps(data if isinstance(data, dict) else cases, indent=2, ensure_ascii=False) + "\n"
    directory = path.resolve().parent
    try:
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
        click.echo(json.dumps(case, indent=2, ensure_ascii=False))
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
@json_option
def checks(fuzz_n: int | None, json_output: bool) -> None:
    """Show or set the checks 'toolcrib verify' runs by default (audited).

    \b
    Examples:
        toolcrib checks
        toolcrib checks --fuzz 50
    """
    from ..registry.checking import FUZZ_SETTING, default_fuzz

    reg = open_registry(create=fuzz_n is not None)
    if fuzz_n is not None:
        reg.set_setting(FUZZ_SETTING, str(fuzz_n) if fuzz_n > 0 else None)
    current = {"fuzz": default_fuzz(reg.setting(FUZZ_SETTING))}
    if json_output:
        echo_json(current)
    else:
        echo_text(f"fuzz: {current['fuzz'] or 'off'}")


def echo_check_line(run: CheckRun) -> None:
    """A check run in `show`: one line, then each finding on its own."""
    summary = run.summary
    if summary.get("error"):
        state = f"could not run: {summary['error']}"
    else:
        state = f"{len(run.findings)} finding(s)"
    if run.kind == "fuzz":
        what = f"{summary.get('ran', 0)} inputs, seed {run.settings.get('seed')}"
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
