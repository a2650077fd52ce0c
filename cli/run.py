"""Commands that run tool code in a sandbox: verify and call."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ..registry.errors import ArgumentsError, InvalidInput
from ..sandbox import BACKEND_NAMES
from .check_options import seed_option
from .common import (
    BACKEND_DEFAULT_HELP,
    F,
    default_backend_name,
    echo_json,
    echo_progress,
    echo_table,
    echo_text,
    json_option,
    limit_option,
    open_caller,
    open_registry,
    parse_key_values,
    parse_limits,
    read_text_argument,
    served_cancel,
)
from .exit_codes import exit_code_for_status

if TYPE_CHECKING:
    from ..registry import CallOutcome, Verification

__all__ = ["COMMANDS"]


def backend_options(fn: F) -> F:
    fn = click.option(
        "--policy",
        type=click.Choice(["restricted", "plain"]),
        help="Override the policy the tool declared: 'restricted' applies RestrictedPython (inside the "
        "container too, on Docker); 'plain' runs ordinary Python in the jail or container (on the restricted "
        "backend only when every jail layer is in force, else exit 6). Default: the declared policy on the "
        "restricted backend; plain on Docker.",
    )(fn)
    return click.option(
        "--backend",
        type=click.Choice(BACKEND_NAMES),
        callback=default_backend_name,
        envvar="TOOLCRIB_BACKEND",
        help="Sandbox backend ($TOOLCRIB_BACKEND). " + BACKEND_DEFAULT_HELP,
    )(fn)


def no_build_option(fn: F) -> F:
    return click.option(
        "--no-build",
        is_flag=True,
        help="For a version that needs packages on Docker: if its runtime image is missing, exit 6 naming the "
        "command that builds it, instead of building it first (progress on stderr).",
    )(fn)


def _print_verification(result: Verification) -> None:
    rows = []
    for case in result.cases:
        detail = ""
        if case.error is not None:
            detail = f"{case.error.type}: {case.error.message}"
        elif case.limit:
            detail = f"limit: {case.limit}"
        elif not case.passed:
            detail = f"expected {json.dumps(case.expected)}, got {json.dumps(case.actual)}"
        rows.append(
            (case.index + 1, case.name or "", "pass" if case.passed else "FAIL", f"{case.duration_ms:.1f}", detail)
        )
    echo_table(["#", "NAME", "RESULT", "MS", "DETAIL"], rows)
    total = result.passed + result.failed
    policy = f", {result.policy} policy" if result.policy else ""
    echo_text(f"{result.tool}: {result.status} ({result.passed}/{total} passed, {result.backend} backend{policy})")
    if result.layers:
        echo_text(f"isolation: {', '.join(result.layers)}")


@click.command()
@click.argument("ref", required=False)
@click.option(
    "verify_all", "--all", is_flag=True, help="Verify every unverified version, with a progress bar on stderr."
)
@backend_options
@no_build_option
@seed_option
@limit_option
@json_option
def verify(
    ref: str | None,
    verify_all: bool,
    backend: str,
    policy: str | None,
    no_build: bool,
    limits: tuple[str, ...],
    fuzz_n: int | None,
    seed: int,
    budget: float | None,
    mutants: bool,
    json_output: bool,
) -> None:
    """Run a version's test cases, each in a fresh sandbox, and record the verdict.

    Exit code 0 when every case passed (the version becomes 'verified'),
    1 when any failed ('failed'). Evidence for each case is stored, with the
    policy and the isolation layers in force for every case.

    --fuzz N also runs N argument sets generated from the input schema
    (seeded, bounded by --budget) and stores what they show: undocumented
    exceptions, limits hit on small inputs, results the return type forbids,
    two answers to one input (docs/verification.md). A version with no test
    cases is then only fuzzed (exit 1 if anything was found). A version that
    replaces another runs the predecessor's tests (and the generated inputs)
    through both and reports every input they answer differently. --mutants
    runs the tests against small changes to the code and reports the
    mutation score with the surviving changes. The registry can require a
    minimum score or no fuzz findings (toolcrib checks): a version that
    misses it is 'failed' (exit 1).

    \b
    Examples:
        toolcrib verify sort_words
        toolcrib verify sort_words@1.0.0 --backend docker --json
        toolcrib verify factor_poly --backend docker --no-build
        toolcrib verify --all
        toolcrib verify mean --fuzz 100 --seed 7
    """
    if bool(ref) == verify_all:
        raise click.UsageError("give a REF or --all (not both)")
    overrides = parse_limits(limits)
    reg = open_registry()
    if ref:
        from .checks import verify_one

        sys.exit(
            verify_one(
                reg,
                ref,
                backend=backend,
                policy=policy,
                no_build=no_build,
                overrides=overrides,
                fuzz_n=fuzz_n,
                seed=seed,
                budget=budget,
                mutants=mutants,
                json_output=json_output,
                print_verification=_print_verification,
            )
        )

    from concurrent.futures import ThreadPoolExecutor, as_completed

    pending = [version.ref for version in reg.pending()]
    results: list[Verification] = []
    skipped: list[str] = []

    def one(pending_ref: str) -> Verification | str:
        try:
            return reg.verify(
                pending_ref, backend=backend, limits=overrides, policy=policy, no_build=no_build, progress=echo_progress
            )
        except InvalidInput as err:  # e.g. a version with no test cases
            return f"{pending_ref}: {err}"

    # Several versions at once where the backend has room (a Ray cluster's
    # actors, the restricted backend's spare children): the report keeps the
    # order of the pending list, the bar counts each as it finishes.
    workers = reg.parallelism(backend) if len(pending) > 1 else 1
    with click.progressbar(length=len(pending), label="verifying", file=sys.stderr, show_pos=True) as bar:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="toolcrib-verify") as pool:
            futures = [pool.submit(one, pending_ref) for pending_ref in pending]
            try:
                for future in as_completed(futures):
                    future.result()  # a sandbox that cannot run stops the whole run, as before
                    bar.update(1)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            for future in futures:
                outcome = future.result()
                if isinstance(outcome, str):
                    skipped.append(outcome)
                else:
                    results.append(outcome)
    for line in skipped:
        echo_text(f"skipped {line}", err=True)
    if json_output:
        echo_json({"results": [r.model_dump(mode="json") for r in results], "skipped": skipped})
    else:
        echo_table(
            ["TOOL", "STATUS", "PASSED", "FAILED"],
            [(r.tool, r.status, r.passed, r.failed) for r in results],
        )
        if not results:
            click.echo("nothing to verify")
    sys.exit(1 if any(r.status != "verified" for r in results) else 0)


def _parse_call_args(
    args_json: str | None, arg_pairs: tuple[str, ...], as_strings: dict[str, str] | None = None
) -> dict[str, Any]:
    """The call's arguments; `as_strings` gets each --arg value that was not
    JSON and so was taken as a string (NAME -> the text)."""
    # The sandbox's bounded reader (size, depth, integer digits, finite
    # numbers): arguments over a bound are exit 2 here, before any registry
    # or sandbox is touched.
    from ..sandbox.inside.wire import NotJSON, OverBound, read_json

    args: dict[str, Any] = {}
    if args_json is not None:
        try:
            parsed = read_json(args_json, "--args")
        except (NotJSON, OverBound) as err:
            raise InvalidInput(str(err)) from None
        if not isinstance(parsed, dict):
            # InvalidInput, not a click usage error: bad arguments, whatever
            # their flaw, are a refusal `call --json` reports as JSON.
            raise InvalidInput("--args must be a JSON object of argument names to values")
        args.update(parsed)
    for key, raw in parse_key_values(arg_pairs, "--arg").items():
        # A value that parses as JSON is taken as JSON (numbers, lists, true);
        # anything else is a plain string, so --arg word=hello just works.
        # JSON over a bound (a 5,000-digit integer, 1e400) is refused, not
        # silently passed on as a string.
        try:
            args[key] = read_json(raw, f"--arg {key}")
        except NotJSON:
            args[key] = raw
            if as_strings is not None:
                as_strings[key] = raw
        except OverBound as err:
            raise InvalidInput(str(err)) from None
    return args


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _said_as_string(err: ArgumentsError, as_strings: dict[str, str]) -> ArgumentsError:
    """`err`, saying which of its bad fields came from an --arg value that
    was not JSON and so was taken as a string (where that is the mistake:
    ``--arg n=1O`` or ``--arg words=[a, b]``)."""
    taken = [name for name in err.fields if name in as_strings]
    if not taken:
        return err
    said = "; ".join(
        f"--arg {name}={_clip(as_strings[name])} is not JSON, so it was taken as a string" for name in taken
    )
    return ArgumentsError(f"{err.message} ({said})", dict(err.fields))


def _print_outcome(outcome: CallOutcome) -> None:
    # Everything here is the tool's (its result, its printed output, its
    # exception): through terminal_text, never raw (`--json` is exact).
    if outcome.stdout and outcome.status != "ok":
        echo_text(outcome.stdout, multiline=True, err=True, nl=not outcome.stdout.endswith("\n"))
    if outcome.status == "ok":
        value = outcome.result
        echo_text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False), multiline=True)
        return
    if outcome.status == "limit":
        echo_text(f"Error: {outcome.tool} hit the {outcome.limit} limit", err=True)
    elif outcome.error is not None:
        line = outcome.error.line
        where = f" (line {line})" if line and f"line {line}" not in outcome.error.message else ""
        echo_text(f"Error: {outcome.status}: {outcome.error.type}: {outcome.error.message}{where}", err=True)
    else:
        echo_text(f"Error: {outcome.status}", err=True)


@click.command()
@click.argument("ref")
@click.option("args_json", "--args", metavar="JSON", help="Arguments as a JSON object.")
@click.option(
    "arg_pairs",
    "--arg",
    multiple=True,
    metavar="NAME=VALUE",
    help="One argument; VALUE is JSON if it parses, else a string. Repeatable.",
)
@click.option(
    "snippet_path",
    "--snippet",
    metavar="FILE|-",
    help="Python that calls the tool and sets 'ans' (printed output if 'ans' is unset).",
)
@backend_options
@no_build_option
@limit_option
@click.option("--allow-unverified", is_flag=True, help="Run a version that is not verified.")
@click.option("--allow-yanked", is_flag=True, help="Run a yanked version named explicitly.")
@json_option
def call(
    ref: str,
    args_json: str | None,
    arg_pairs: tuple[str, ...],
    snippet_path: str | None,
    backend: str,
    policy: str | None,
    no_build: bool,
    limits: tuple[str, ...],
    allow_unverified: bool,
    allow_yanked: bool,
    json_output: bool,
) -> None:
    """Call a tool in a sandbox and print its result.

    Arguments are checked against the tool's input schema before any sandbox
    starts. The exit code follows the outcome: 0 ok, 1 the tool raised,
    4 blocked by the policy, 5 a limit was hit, 6 sandbox unavailable.
    The audit entry (and --json) lists the isolation layers in force. A call
    refused before it runs (2 bad arguments, 3 not found, 4 unverified or
    yanked) prints the same --json keys, its status invalid, not_found or
    refused, with the one-line error on stderr.

    \b
    Examples:
        toolcrib call sort_words --args '{"words": ["pear", "apple"]}'
        toolcrib call complete_dyck --arg sequence='[ { ('
        toolcrib call find_number --snippet question.py --json
        toolcrib call my_tool@1.2.0 --backend docker --limit wall=20
        toolcrib call factor_poly --arg expr='x**2-1' --backend docker --no-build
    """
    if snippet_path and (args_json is not None or arg_pairs):
        raise click.UsageError("give arguments (--args/--arg) or --snippet, not both")
    snippet = read_text_argument(snippet_path, "snippet") if snippet_path else None
    # A refusal (unverified, yanked, bad arguments, not found) raises: the
    # group prints the one refusal JSON for a --json command (cli/argv.py),
    # then the one-line error and its exit code.
    as_strings: dict[str, str] = {}
    args = None if snippet is not None else _parse_call_args(args_json, arg_pairs, as_strings)
    try:
        outcome = open_caller().call(
            ref,
            args,
            snippet=snippet,
            backend=backend,
            limits=parse_limits(limits),
            policy=policy,
            allow_unverified=allow_unverified,
            allow_yanked=allow_yanked,
            no_build=no_build,
            progress=echo_progress,
            cancel=served_cancel(),  # None, unless the warm service runs this call for a client
        )
    except ArgumentsError as err:
        raise _said_as_string(err, as_strings) from None
    if json_output:
        echo_json(outcome.to_json())
    else:
        _print_outcome(outcome)
    code = exit_code_for_status(outcome.status)
    if code:
        sys.exit(code)


COMMANDS = [verify, call]
