"""Commands that register tools and read the registry: init, add,
search, history, diff, deprecate, yank, provenance, export, import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..registry import AddResult, ProvenanceInput
from ..registry.admission import check_name
from ..registry.cases import load_tests
from ..registry.schema_check import declared_forms
from ..registry.search import FIT_THRESHOLD, query_words
from ..sandbox import BACKEND_NAMES
from .bulk import (
    Entry,
    Outcome,
    checked_line,
    exit_code_for,
    is_table,
    provenance_for,
    read_entries,
    report,
    run_entries,
    verify_admitted,
)
from .checks import compare_after_add, flag_line
from .common import (
    CLIError,
    declared_limits,
    echo_json,
    echo_progress,
    echo_table,
    echo_text,
    json_option,
    limit_option,
    open_registry,
    parse_key_values,
    read_text_argument,
)
from .exports import export_schema
from .streaming import write_json_object
from .viewing import flags_text, summary_text, tool_json

if TYPE_CHECKING:
    from ..sandbox.contract import Limits

__all__ = ["COMMANDS"]


@click.command()
@click.option(
    "--review",
    type=click.Choice(["none", "models", "all"]),
    help="Which versions need a reviewer's approval before they are called or served: none, those made by a "
    "model (make, MCP, a model as generator), or all. A new registry: models; one made before review: none. "
    "Given for an existing registry, changes it (audited).",
)
@json_option
def init(review: str | None, json_output: bool) -> None:
    """Create the registry database (or migrate an existing one).

    \b
    Examples:
        toolcrib init
        toolcrib init --review all
        toolcrib --registry ./tools.db init --json
    """
    reg = open_registry(create=True)
    if review is not None:
        reg.set_review(review)
    if json_output:
        echo_json({"registry": str(reg.path), "review": reg.review_mode()})
    else:
        click.echo(f"Registry ready at {reg.path} (review: {reg.review_mode()})")


@click.command()
@click.argument("sources", nargs=-1, metavar="[FILE|DIR|TABLE|-]...")
@click.option("--name", help="Tool name ([a-zA-Z0-9_-], 1-64). Default: the entrypoint's name.")
@click.option("--entrypoint", help="The function to call, when the source has several public functions.")
@click.option("--tests", "tests_path", metavar="FILE", help="JSON file of test cases (see docs/tests-format.md).")
@click.option("--version", "version", help="Explicit semver for this version instead of the automatic bump.")
@click.option("--generator", help="What wrote the tool: a model id, a pipeline, 'human'.")
@click.option("--prompt", "prompt_path", metavar="FILE", help="The prompt that produced the tool (stored, hashed).")
@click.option(
    "--transcript", "transcript_path", metavar="FILE", help="The full tool-maker transcript (stored, hashed)."
)
@click.option("--parent", help="Reference of the version this one derives from.")
@click.option("metas", "--meta", multiple=True, metavar="KEY=VALUE", help="Free provenance metadata. Repeatable.")
@limit_option
@click.option(
    "--policy",
    type=click.Choice(["restricted", "plain"]),
    default=None,
    help="The policy the tool needs: 'restricted' (RestrictedPython) or 'plain' (ordinary Python: classes, "
    "dunders, any module, inside the restricted backend's OS jail or a Docker container). "
    "Calls and verification use it unless given --policy. Default: plain with --requires, else restricted.",
)
@click.option(
    "requires",
    "--requires",
    multiple=True,
    metavar="REQUIREMENT",
    help="A package the tool needs, e.g. 'sympy>=1.12' (PEP 508, no URLs). Resolved once, now, to exact "
    "wheels and hashes (the lock, stored with the version). Repeatable.",
)
@click.option(
    "--prelude",
    "prelude",
    metavar="FILE|NAME",
    help="Code run before the tool in its namespace (a library's shared import block): a file, or a "
    "prelude stored with 'toolcrib prelude add'. Stored with the version and hashed.",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Register a tool whose imports or names nothing provides, with a warning, instead of refusing it.",
)
@click.option(
    "--as-new-version",
    is_flag=True,
    help="Let an unrelated tool (other signature and body) become a new major version of an existing name.",
)
@click.option(
    "--namespace",
    metavar="PREFIX",
    help="Register each tool as PREFIX_name, so a library's names do not collide with others'.",
)
@click.option(
    "params",
    "--param",
    multiple=True,
    metavar="NAME=FORM",
    help="Declare the form of a parameter without an annotation: 'dataframe' or 'ndarray'. Its JSON argument is "
    "then converted as for one annotated pd.DataFrame or np.ndarray (docs/formats.md). Part of the stored "
    "signature and the hash. Repeatable.",
)
@click.option(
    "--strip-top-level",
    is_flag=True,
    help="Remove stray top-level statements (e.g. 'example usage') instead of refusing them.",
)
@click.option(
    "--markdown/--no-markdown",
    default=None,
    help="Treat the input as an LLM's Markdown reply (default: detect, and .md files).",
)
@click.option(
    "verify_after",
    "--verify",
    is_flag=True,
    help="Then verify each admitted version on --backend, several at once where the backend has room "
    "(a Ray cluster: every actor), with a progress bar on stderr and each verdict in the report.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKEND_NAMES),
    default="restricted",
    show_default=True,
    envvar="TOOLCRIB_BACKEND",
    help="Sandbox backend for --verify ($TOOLCRIB_BACKEND).",
)
@json_option
def add(
    sources: tuple[str, ...],
    name: str | None,
    entrypoint: str | None,
    tests_path: str | None,
    version: str | None,
    generator: str | None,
    prompt_path: str | None,
    transcript_path: str | None,
    parent: str | None,
    metas: tuple[str, ...],
    limits: tuple[str, ...],
    policy: str | None,
    requires: tuple[str, ...],
    prelude: str | None,
    allow_missing: bool,
    as_new_version: bool,
    namespace: str | None,
    params: tuple[str, ...],
    strip_top_level: bool,
    markdown: bool | None,
    verify_after: bool,
    backend: str,
    json_output: bool,
) -> None:
    """Register a tool version from a .py file, stdin, or a Markdown reply.

    The source is checked before anything is stored: it must parse, hold only
    imports, definitions, constants and docstrings at the top level, and name
    one entrypoint. Identical content returns the existing version. A module
    outside the standard library that --requires does not provide, or a name
    nothing defines (tool, prelude, builtins), is refused unless
    --allow-missing.

    Several files, a directory (its *.py files, each with NAME.tests.json
    beside it if present) or a JSONL/CSV table of tools (columns: source, and
    optionally name, entrypoint, tests, requires, params, metadata) register each
    tool on its own: a per-tool report (admitted, refused and why), a
    progress bar on stderr, exit code 0 if every tool was admitted, 2 if any
    was refused. One run holds one tool per name: a second, different tool
    of a name the run already admitted is refused (it would become a new
    version of the first and replace it) unless --as-new-version.

    --verify then verifies every admitted version (a version without test
    cases is skipped), fanned out over the backend's room; the report gives
    each verdict. Exit code: 2 if any tool was refused, else 6 if the sandbox
    could not run, else 1 if a version failed its tests, else 0.

    \b
    Examples:
        toolcrib add sort_words.py --tests sort_words.tests.json --generator gpt-4
        toolcrib add reply.md --strip-top-level --transcript chat.json
        cat tool.py | toolcrib add - --name my_tool --meta task=dyck
        toolcrib add tool.py --limit cpu=10 --parent my_tool@1.0.0
        toolcrib add crt_search.py --policy plain
        toolcrib add count_rows.py --requires pandas --param table=dataframe
        toolcrib add solve.py --requires "sympy>=1.12" --tests solve.tests.json
        toolcrib add tools/ --prelude mathlib --namespace mathlib --json
        toolcrib add corpus.jsonl --prelude header.py --allow-missing
        toolcrib add tools/ --verify --backend ray
    """
    paths = list(sources) or ["-"]
    bulk = len(paths) > 1 or any(p != "-" and (Path(p).is_dir() or is_table(p)) for p in paths)
    if bulk:
        given = [
            flag
            for flag, value in (
                ("--name", name),
                ("--entrypoint", entrypoint),
                ("--tests", tests_path),
                ("--version", version),
                ("--parent", parent),
                ("--param", params),
            )
            if value
        ]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} name(s) one tool: give a single FILE (a table has columns for them)"
            )
        if "-" in paths:
            raise click.UsageError("'-' (stdin) is one tool: give it alone")
    elif paths[0] == "-" and sys.stdin is not None and sys.stdin.isatty():
        raise click.UsageError("give a FILE, or pipe the source into 'toolcrib add -'")
    if prompt_path and transcript_path:
        raise click.UsageError("give --prompt or --transcript, not both")
    prompt = None
    prompt_file = prompt_path or transcript_path
    if prompt_file:
        prompt = read_text_argument(prompt_file, "prompt" if prompt_path else "transcript")
    provenance = ProvenanceInput(
        generator=generator, prompt=prompt, parent=parent, metadata=parse_key_values(metas, "--meta")
    )
    declared = declared_limits(limits)
    param_forms = parse_key_values(params, "--param")
    if namespace is not None:
        check_name(namespace)  # once, not once per tool
    prelude_text, prelude_name = _prelude_option(prelude)
    reg = open_registry(create=True)
    shared: dict[str, Any] = dict(
        limits=declared,
        policy=policy,
        strip_top_level=strip_top_level,
        prelude=prelude_text,
        prelude_name=prelude_name,
        allow_missing=allow_missing,
        as_new_version=as_new_version,
        namespace=namespace,
        progress=echo_progress,
    )
    if bulk:
        entries = read_entries(paths)
        # One tool per name in one run (`Registry.add`'s batch): name -> its source.
        batch: dict[str, str] = {}

        def add_one(entry: Entry) -> AddResult:
            result = reg.add(
                entry.source,
                name=entry.name,
                entrypoint=entry.entrypoint,
                tests=entry.tests,
                provenance=provenance_for(entry, provenance),
                requires=[*requires, *entry.requires],
                markdown=markdown if markdown is not None else entry.markdown,
                param_forms=entry.params,
                batch=batch,
                **shared,
            )
            batch.setdefault(result.tool.name, entry.label)
            return result

        outcomes = run_entries(reg, entries, add_one)
        if verify_after:
            verify_admitted(reg, outcomes, backend=backend)
        code = report(outcomes, json_output)
        if code:
            click.get_current_context().exit(code)
        return
    source = paths[0]
    text = read_text_argument(source, "source")
    if markdown is None and source.lower().endswith((".md", ".markdown")):
        markdown = True
    tests = load_tests(read_text_argument(tests_path, "tests")) if tests_path else None
    outcome = reg.add(
        text,
        name=name,
        entrypoint=entrypoint,
        tests=tests,
        version=version,
        provenance=provenance,
        requires=list(requires),
        markdown=markdown,
        param_forms=param_forms,
        **shared,
    )
    tool = outcome.tool
    compared, why_not = compare_after_add(reg, tool.ref, outcome.bump) if outcome.created else (None, None)
    checked: Outcome | None = None
    if verify_after:
        checked = Outcome(Entry(label=source), result=outcome)
        verify_admitted(reg, [checked], backend=backend)
    verdict = {"verification": checked.checked.json()} if checked is not None and checked.checked else {}
    if json_output:
        echo_json(
            {
                "predecessor_check": compared.summary if compared is not None else why_not,
                "name": tool.name,
                "version": tool.version,
                "ref": tool.ref,
                "sha256": tool.sha256,
                "status": tool.status,
                "created": outcome.created,
                "bump": outcome.bump,
                "entrypoint": tool.entrypoint,
                "policy": tool.policy,
                "requires": tool.requires,
                "lock": tool.lock.digest() if tool.lock else None,
                "prelude": tool.prelude is not None,
                "tests": len(tool.tests),
                "untyped": tool.signature.untyped,
                "param_forms": declared_forms(tool.signature.input_schema),
                "notes": outcome.notes,
                **verdict,
            }
        )
        _exit_for(checked)
        return
    for note in outcome.notes:
        label = "warning" if note.startswith("missing: ") else "note"
        echo_text(f"{label}: {note.removeprefix('missing: ')}", err=True)
    _note_clamped(tool.limits, reg.max_limits)
    verb = "Added" if outcome.created else "Already registered:"
    policy_note = f", policy {tool.policy}" if tool.policy != "restricted" else ""
    packages = f", {len(tool.lock.packages)} locked package(s)" if tool.lock else ""
    echo_text(
        f"{verb} {tool.ref} (sha256:{tool.sha256[:12]}) {tool.status}, {len(tool.tests)} test(s){policy_note}{packages}"
    )
    line = flag_line(compared) if compared is not None else why_not
    if line:
        echo_text(f"warning: {line}", err=True)
    if checked is not None and checked.checked is not None:
        echo_text(checked_line(checked.checked))
    _exit_for(checked)


def _exit_for(checked: Outcome | None) -> None:
    """add --verify of one tool: exit as the bulk report would (1 failed, 6 unavailable)."""
    code = exit_code_for([checked]) if checked is not None else 0
    if code:
        click.get_current_context().exit(code)


def _prelude_option(value: str | None) -> tuple[str | None, str | None]:
    """--prelude: (text, None) for a file, (None, name) for a stored prelude."""
    if value is None:
        return None, None
    path = Path(value)
    if path.is_file():
        return read_text_argument(value, "prelude"), None
    if path.suffix or "/" in value:
        raise CLIError(f"prelude file not found: {value}")
    return None, value


@click.command()
@click.argument("query")
@click.option(
    "--limit", "limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="At most this many results."
)
@click.option("--verified-only", is_flag=True, help="Only versions that passed their tests (what an agent may call).")
@click.option(
    "--min-score",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help=f"Fit threshold, 0..1 (default {FIT_THRESHOLD}, calibrated in docs/search.md); 0 lists every match.",
)
@json_option
def search(query: str, limit: int, verified_only: bool, min_score: float | None, json_output: bool) -> None:
    """Find the tools that fit a request: any word may match, best fit first.

    Ranks the newest version of each tool (FTS5, porter stemming, identifiers
    split into words) over its name, docstring, parameters and the questions
    and snippets in its tests. SCORE is the share of the query's words (rarer
    words weigh more) the tool covers. When no tool reaches the threshold the
    answer is "no tool fits" and the exit code is 3 (with --json, [] is still
    printed), so a pipeline can decide to make a tool.

    \b
    Examples:
        toolcrib search "sort words alphabetically"
        toolcrib search "how many days between two dates?" --verified-only --json
        toolcrib search dyck --min-score 0 --limit 5
    """
    if not query_words(query):
        raise CLIError("the query has no words to search for (stopwords, bare numbers and quoted text are left out)")
    hits = open_registry().search(query, limit=limit, verified_only=verified_only, min_score=min_score)
    if json_output:
        echo_json([tool_json(h, full=False) for h in hits])
    elif hits:
        echo_table(
            ["NAME", "VERSION", "SCORE", "STATUS", "FLAGS", "DESCRIPTION"],
            [(h.name, h.version, f"{h.score:.2f}", h.status, flags_text(h), summary_text(h)) for h in hits],
        )
    if not hits:
        threshold = FIT_THRESHOLD if min_score is None else min_score
        raise CLIError.with_exit_code(
            f"no tool fits {query!r} (no {'verified ' if verified_only else ''}tool scores {threshold} or more)", 3
        )


def _note_clamped(declared: Limits | None, maxima: Limits) -> None:
    """At add: the declared limits this registry will lower at call time."""
    from ..registry.limits import granted

    gets, lowered = granted(declared, maxima)
    for name, asked in lowered.items():
        echo_text(
            f"note: {name}={asked} is over this registry's maximum: calls get {name}={getattr(gets, name)} "
            "(the operator's choice, 'toolcrib limits')",
            err=True,
        )


@click.command()
@click.argument("name")
@json_option
def history(name: str, json_output: bool) -> None:
    """Every version of one tool, oldest first.

    \b
    Examples:
        toolcrib history sort_words
        toolcrib history sort_words --json
    """
    versions = open_registry().history(name)
    if json_output:
        echo_json([tool_json(t, full=False) for t in versions])
        return
    echo_table(
        ["VERSION", "SHA256", "STATUS", "FLAGS", "CREATED", "GENERATOR", "PARENT"],
        [
            (
                t.version,
                t.sha256[:12],
                t.status,
                flags_text(t),
                t.created_at,
                t.provenance.generator,
                t.provenance.parent,
            )
            for t in versions
        ],
    )


@click.command()
@click.argument("old_ref")
@click.argument("new_ref")
@json_option
def diff(old_ref: str, new_ref: str, json_output: bool) -> None:
    """Show how two versions differ: source, signature, and the semver bump.

    \b
    Examples:
        toolcrib diff sort_words@1.0.0 sort_words@1.1.0
        toolcrib diff sort_words@1.0.0 sort_words --json
    """
    reg = open_registry()
    result = reg.diff(old_ref, new_ref)
    # What the predecessor check found, when it compared exactly these two versions.
    compared = next(
        (r for r in reg.checks(result.new) if r.kind == "predecessor" and r.summary.get("predecessor") == result.old),
        None,
    )
    if json_output:
        data = result.model_dump(mode="json")
        data["predecessor_check"] = compared.model_dump(mode="json") if compared is not None else None
        echo_json(data)
        return
    echo_text(f"{result.old} -> {result.new}: {result.bump}")
    if compared is not None:
        echo_text(f"answers: {flag_line(compared) or 'the same on every compared input'}")
    if result.schema_diff:
        click.echo("\n# signature")
        echo_text(result.schema_diff.rstrip("\n"), multiline=True)
    if result.source_diff:
        click.echo("\n# source")
        echo_text(result.source_diff.rstrip("\n"), multiline=True)
    if not result.schema_diff and not result.source_diff:
        click.echo("(identical source and signature)")


@click.command()
@click.argument("ref")
@click.option("--message", "-m", required=True, help="Why, and what to use instead.")
@json_option
def deprecate(ref: str, message: str, json_output: bool) -> None:
    """Mark a version deprecated (it still runs; callers are told).

    \b
    Example:
        toolcrib deprecate sort_words@1.0.0 --message "use sort_words@2"
    """
    tool = open_registry(create=False).deprecate(ref, message)
    if json_output:
        echo_json(tool_json(tool, full=False))
    else:
        echo_text(f"Deprecated {tool.ref}: {message}")


@click.command()
@click.argument("ref")
@click.option("--reason", "-r", required=True, help="Why it must not be used.")
@json_option
def yank(ref: str, reason: str, json_output: bool) -> None:
    """Yank a version: never chosen by NAME, refused when pinned unless --allow-yanked.

    \b
    Example:
        toolcrib yank sort_words@1.0.1 --reason "wrong on empty input"
    """
    tool = open_registry(create=False).yank(ref, reason)
    if json_output:
        echo_json(tool_json(tool, full=False))
    else:
        echo_text(f"Yanked {tool.ref}: {reason}")


@click.command()
@click.argument("ref")
@json_option
def provenance(ref: str, json_output: bool) -> None:
    """Print a version's provenance as an in-toto Statement (always JSON).

    The subject is NAME@VERSION with its content sha256; the predicate is
    SLSA-style: generator, prompt digest, parent, who registered it and when.

    \b
    Example:
        toolcrib provenance sort_words@1.0.0
    """
    echo_json(open_registry().provenance(ref))


@click.command()
@click.argument("refs", nargs=-1)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write the bundle to FILE instead of stdout."
)
def export(refs: tuple[str, ...], output: str | None) -> None:
    """Export tools as a portable JSON bundle (every version of each NAME).

    With no REFS, everything is exported. See docs/formats.md for the format.

    \b
    Examples:
        toolcrib export > all-tools.json
        toolcrib export sort_words complete_dyck -o two-tools.json
    """
    # Written as it is read (one version at a time), never built whole.
    head, entries = open_registry().iter_export(list(refs) or None)
    if output:
        tmp = Path(output).with_name(Path(output).name + ".partial")
        try:
            with tmp.open("w", encoding="utf-8") as out:
                count = write_json_object(out.write, head, "tools", entries)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(output)  # never leave a half-written bundle behind
        click.echo(f"Exported {count} version(s) to {output}", err=True)
    else:
        write_json_object(lambda text: click.echo(text, nl=False), head, "tools", entries)


@click.command(name="import")
@click.argument("path", metavar="FILE|-")
@json_option
def import_(path: str, json_output: bool) -> None:
    """Import a bundle made by 'toolcrib export'. All or nothing.

    Every version's sha256 is recomputed; any mismatch refuses the whole
    bundle. Imported versions start unverified.

    \b
    Examples:
        toolcrib import two-tools.json
        cat bundle.json | toolcrib import - --json
    """
    from ..sandbox.inside.wire import MAX_FILE_DEPTH, ProtocolError, read_json

    text = read_text_argument(path, "bundle")
    try:
        # Bounded (size, depth, integer digits, finite numbers): a bundle is
        # someone else's bytes.
        bundle = read_json(text, "bundle", max_depth=MAX_FILE_DEPTH)
    except ProtocolError as err:
        raise CLIError(str(err)) from None
    results = open_registry(create=True).import_bundle(bundle)
    if json_output:
        echo_json(
            [
                {"ref": r.tool.ref, "sha256": r.tool.sha256, "created": r.created, "status": r.tool.status}
                for r in results
            ]
        )
        return
    created = sum(1 for r in results if r.created)
    click.echo(f"Imported {created} new version(s), {len(results) - created} already present")


# export-schema lives in its own module (toolcrib/exports.py does the work) but is listed here, after export.
COMMANDS = [init, add, search, history, diff, deprecate, yank, provenance, export, export_schema, import_]
