"""Human review (issue 18): review, approve, reject, attest verify."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import CLIError, echo_json, echo_table, echo_text, json_option, open_registry, pretty_json, terminal_text

if TYPE_CHECKING:
    from ..registry import Registry, ToolVersion

__all__ = ["COMMANDS", "default_key_path"]


def default_key_path() -> Path:
    """$TOOLCRIB_KEY, else $XDG_CONFIG_HOME/toolcrib/reviewer_ed25519 (~/.config/...)."""
    explicit = os.environ.get("TOOLCRIB_KEY")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "toolcrib" / "reviewer_ed25519"


def _key_option(fn: Any) -> Any:
    return click.option(
        "--key",
        "key_path",
        metavar="FILE",
        help="Your Ed25519 private key (OpenSSH or PEM; 'toolcrib key generate' makes one). "
        "Default: $TOOLCRIB_KEY, else ~/.config/toolcrib/reviewer_ed25519.",
    )(fn)


def _replaced(reg: Registry, tool: ToolVersion) -> ToolVersion | None:
    """The version `tool` would replace: the one served under its name now,
    else the highest older version."""
    for name, version, _sha in reg.servable():
        if name == tool.name and version != tool.version:
            return reg.get(f"{name}@{version}")
    older = [t for t in reg.history(tool.name) if t.version != tool.version]
    before = [t for t in older if t.created_at <= tool.created_at]
    return before[-1] if before else None


def _document(reg: Registry, ref: str) -> dict[str, Any]:
    """Everything a reviewer reads about one version, as JSON."""
    from ..exports import mcp_tool

    tool = reg.get(ref)
    old = _replaced(reg, tool)
    diff = reg.diff(old.ref, tool.ref) if old is not None else None
    verification = reg.verification(tool.ref)
    waiting = {item.ref: item.why for item in reg.review_queue()}
    prov = tool.provenance
    return {
        "ref": tool.ref,
        "sha256": tool.sha256,
        "status": tool.status,
        "review": reg.review_mode(),
        "waiting": tool.ref in waiting,
        "why": waiting.get(tool.ref),
        "source": tool.source,
        "replaces": old.ref if old is not None else None,
        "diff": None
        if diff is None
        else {"source": diff.source_diff, "signature": diff.schema_diff, "bump": diff.bump},
        "signature": mcp_tool(tool, backend="restricted"),
        "tests": [t.model_dump(mode="json") for t in tool.tests],
        "evidence": None if verification is None else verification.model_dump(mode="json"),
        "imports": sorted(_imports(tool.source)),
        "requires": tool.requires,
        "lock": None if tool.lock is None else [f"{p.name}=={p.version}" for p in tool.lock.packages],
        "prelude": tool.prelude,
        "policy": tool.policy,
        "limits": None if tool.limits is None else tool.limits.to_json(),
        "maker": {
            "generator": prov.generator,
            "registered_by": prov.registered_by,
            "registered_at": prov.registered_at,
            "parent": prov.parent,
            "metadata": {k: v for k, v in prov.metadata.items() if k not in ("latm.stages", "latm.use_cases")},
        },
        "transcript": prov.prompt,
        "reports": reg.review_reports(tool.ref),
        "decisions": [d.as_json() for d in reg.decisions(tool.ref)],
    }


def _imports(source: str) -> set[str]:
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _numbered(text: str) -> str:
    lines = text.splitlines()
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, 1))


def _highlighted(source: str) -> str | None:
    """`source` (already made terminal-safe) with ANSI colours, when Pygments
    is installed (it is optional); None otherwise."""
    try:
        from pygments import highlight  # type: ignore[import-untyped,import-not-found,unused-ignore]  # optional
        from pygments.formatters import TerminalFormatter  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from pygments.lexers import PythonLexer  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    return str(highlight(source, PythonLexer(), TerminalFormatter())).rstrip("\n")


def _text(doc: dict[str, Any], *, colour: bool = False) -> str:
    """The review page as text. Everything a tool, model or client wrote is
    made terminal-safe here, piece by piece (`terminal_text`), so that only
    the highlighting's own colour codes reach the terminal."""
    out: list[str] = []

    def section(title: str, body: str | None, *, safe: bool = False) -> None:
        out.append(terminal_text(f"== {title}"))
        out.append((body if safe else terminal_text(body, multiline=True)) if body else "(none)")
        out.append("")

    state = f"waiting for review: {doc['why']}" if doc["waiting"] else "not in the review queue"
    section(doc["ref"], f"sha256 {doc['sha256']}\nstatus {doc['status']} · review {doc['review']} · {state}")
    source = terminal_text(doc["source"], multiline=True)
    coloured = _highlighted(source) if colour else None
    if coloured is not None and len(coloured.splitlines()) == len(source.splitlines()):
        section("source", _numbered(coloured), safe=True)
    else:
        section("source", _numbered(doc["source"]))
    if doc["diff"] is not None:
        section(
            f"diff against {doc['replaces']} (bump {doc['diff']['bump']})", doc["diff"]["source"] or "(same source)"
        )
        if doc["diff"]["signature"]:
            section("signature diff", doc["diff"]["signature"])
    else:
        section("diff", "(no earlier version: nothing is replaced)")
    section("signature as a client sees it", pretty_json(doc["signature"]))
    evidence = doc["evidence"]
    cases = {c["index"]: c for c in evidence["cases"]} if evidence else {}
    lines = []
    for i, test in enumerate(doc["tests"]):
        case = cases.get(i)
        verdict = "not run" if case is None else ("passed" if case["passed"] else f"FAILED ({case['status']})")
        given = test.get("args") if test.get("snippet") is None else test.get("snippet")
        lines.append(
            f"[{i}] {test.get('name') or ''} {json.dumps(given, ensure_ascii=False)} -> "
            f"{json.dumps(test.get('expected'), ensure_ascii=False)} ({test.get('comparator')}): {verdict}"
        )
        if case is not None and not case["passed"]:
            lines.append(f"     actual: {json.dumps(case.get('actual'), ensure_ascii=False)} {case.get('error') or ''}")
    if evidence:
        lines.append(
            f"verified on {evidence['backend']} ({evidence['policy']}; layers "
            f"{', '.join(evidence['layers']) or 'none'}) at {evidence['verified_at']}"
        )
    section("tests and evidence", "\n".join(lines))
    section("imports", ", ".join(doc["imports"]))
    section("requirements and lock", "\n".join([*(doc["requires"] or []), *(doc["lock"] or [])]))
    section("prelude", doc["prelude"] and _numbered(doc["prelude"]))
    section("policy and limits", f"policy {doc['policy']}; limits {json.dumps(doc['limits'])}")
    maker = doc["maker"]
    section("maker", "\n".join(f"{k}: {v}" for k, v in maker.items() if v not in (None, {}, "")))
    for table, rows in doc["reports"].items():
        section(f"report: {table}", "\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in rows))
    section(
        "decisions",
        "\n".join(
            f"{d['decided_at']} {d['decision']} by {d['reviewer']}"
            f"{' (signed ' + d['keyid'][:16] + ')' if d['keyid'] else ' (unsigned)'}"
            f"{' [imported]' if d['origin'] == 'import' else ''}: {d['note'] or ''}"
            for d in doc["decisions"]
        ),
    )
    section("transcript", doc["transcript"])
    if doc["waiting"]:
        out.append(terminal_text(f"approve: toolcrib approve {doc['ref']} --note TEXT"))
        out.append(terminal_text(f"reject:  toolcrib reject {doc['ref']} --reason TEXT"))
    return "\n".join(out)


@click.command()
@click.argument("ref", required=False)
@json_option
def review(ref: str | None, json_output: bool) -> None:
    """List the versions waiting for a reviewer, or show one in full.

    Without REF: the queue, oldest first, with why each needs review (the
    registry's review setting: none, models or all; 'toolcrib init --review').
    With REF: its source with line numbers, the diff against the version it
    would replace, its signature as a client sees it, each test with its
    evidence, imports, requirements, lock, prelude, policy and limits, who or
    what made it, decisions so far, and the maker's transcript (paged on a
    terminal).

    \b
    Examples:
        toolcrib review
        toolcrib review sort_words@1.1.0
        toolcrib review --json
    """
    reg = open_registry()
    if ref is None:
        items = reg.review_queue()
        if json_output:
            echo_json({"review": reg.review_mode(), "queue": [i.as_json() for i in items]})
            return
        echo_table(["REF", "STATUS", "ADDED", "WHY"], [(i.ref, i.status, i.created_at, i.why) for i in items])
        return
    doc = _document(reg, ref)
    if json_output:
        echo_json(doc)
        return
    if sys.stdout.isatty():  # highlighted and paged on a terminal
        click.echo_via_pager(_text(doc, colour=True))
    else:
        click.echo(_text(doc))


def _decided(decision: Any, json_output: bool) -> None:
    if json_output:
        echo_json(decision.as_json())
        return
    signed = f"signed by key {decision.keyid[:16]}" if decision.keyid else "unsigned"
    echo_text(f"{decision.ref} {decision.decision} by {decision.reviewer} ({signed})")


@click.command()
@click.argument("ref")
@click.option("--note", help="Why you approve it (kept in the audit log and the signed statement).")
@_key_option
@json_option
def approve(ref: str, note: str | None, key_path: str | None, json_output: bool) -> None:
    """Approve a version waiting for review, signed with your key.

    The approval is an in-toto Statement about the version's sha256 in a DSSE
    envelope signed by your Ed25519 key; it counts only while the registry
    trusts that key ('toolcrib key trust'). A version that is not verified,
    is yanked, or is not in the queue is refused (exit 4).

    \b
    Examples:
        toolcrib approve sort_words@1.1.0 --note "read it; tests cover ties"
        toolcrib approve sort_words@1.1.0 --key ~/.ssh/id_ed25519
    """
    path = Path(key_path).expanduser() if key_path else default_key_path()
    if not path.exists():
        raise CLIError(f"no reviewer key at {path}: make one with 'toolcrib key generate' or pass --key FILE")
    _decided(open_registry().approve(ref, key=path, note=note), json_output)


@click.command()
@click.argument("ref")
@click.option("--reason", required=True, help="Why: given to the model in the next 'toolcrib make' for its task.")
@_key_option
@json_option
def reject(ref: str, reason: str, key_path: str | None, json_output: bool) -> None:
    """Reject a version waiting for review, with the reason.

    It is refused from then on; 'toolcrib make' for the same task gives the
    model your reason in its repair prompt. Signed with your key when you
    have one.

    \b
    Example:
        toolcrib reject sort_words@1.1.0 --reason "drops duplicates"
    """
    path = Path(key_path).expanduser() if key_path else default_key_path()
    if key_path and not path.exists():
        raise CLIError(f"no key at {path}")
    _decided(open_registry().reject(ref, reason, key=path if path.exists() else None), json_output)


@click.group()
def attest() -> None:
    """Check the signed review decisions of a version."""


@attest.command(name="evidence")
@click.argument("ref")
@_key_option
def attest_evidence(ref: str, key_path: str | None) -> None:
    """Print a version's verification evidence as a signed in-toto Test Result statement.

    A DSSE envelope (JSON) of an in-toto Statement about the version's
    sha256 with the Test Result predicate (v0.1): PASSED or FAILED, each
    test case by name, and how it ran. Check it with 'toolcrib attest verify
    REF --envelope FILE' here or wherever the key is trusted.

    \b
    Example:
        toolcrib attest evidence sort_words@1.1.0 > sort_words.evidence.json
    """
    path = Path(key_path).expanduser() if key_path else default_key_path()
    if not path.exists():
        raise CLIError(f"no key at {path}: make one with 'toolcrib key generate' or pass --key FILE")
    echo_json(open_registry().attest_evidence(ref, key=path))


@attest.command(name="verify")
@click.argument("ref")
@click.option(
    "--envelope",
    "envelope_path",
    metavar="FILE",
    help="Check this DSSE envelope (a decision or 'attest evidence') instead of the stored ones.",
)
@json_option
def attest_verify(ref: str, envelope_path: str | None, json_output: bool) -> None:
    """Check every decision's DSSE envelope on a version against the trusted keys.

    Offline: the statement must be about the version's sha256 and signed by a
    key this registry trusts. Exit 1 naming the first one that does not verify;
    exit 2 for an envelope that is not one.

    \b
    Examples:
        toolcrib attest verify sort_words@1.1.0
        toolcrib attest verify sort_words@1.1.0 --envelope sort_words.evidence.json
    """
    if envelope_path is not None:
        from ..registry.attest import MAX_ENVELOPE_BYTES
        from .common import read_text_argument

        text = read_text_argument(envelope_path, "envelope")
        if len(text) > MAX_ENVELOPE_BYTES:
            raise CLIError(f"envelope {envelope_path} is larger than {MAX_ENVELOPE_BYTES} bytes")
        verified = open_registry().verify_envelope(ref, text)
        predicate = verified.statement.get("predicateType")
        if json_output:
            echo_json(
                {"verified": True, "keyid": verified.keyid, "predicateType": predicate, "result": verified.decision}
            )
        else:
            echo_text(f"{ref}: {verified.decision} ({predicate}), signed by key {verified.keyid[:16]}: verified")
        return
    checked = open_registry().verify_attestations(ref)
    if json_output:
        echo_json([{**d.as_json(), "verified": problem is None, "problem": problem} for d, problem in checked])
    else:
        for d, problem in checked:
            verdict = "verified" if problem is None else f"NOT VERIFIED: {problem}"
            echo_text(f"{d.ref} {d.decision} by {d.reviewer} at {d.decided_at}: {verdict}")
        if not checked:
            echo_text(f"{ref}: no review decisions")
    bad = next((p for _d, p in checked if p is not None), None)
    if bad is not None:
        if not json_output:
            echo_text(f"Error: {bad}", err=True)
        sys.exit(1)


COMMANDS = [review, approve, reject, attest]
