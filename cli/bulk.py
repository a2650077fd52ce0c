"""Bulk registration for `toolcrib add`: the tools in several files, a
directory, or a JSONL/CSV table, each added on its own (a refused tool does
not stop the others), with a progress bar on stderr and a per-tool report.

Table columns (JSONL keys): ``source`` (required), and optionally ``name``,
``entrypoint``, ``tests`` (a list of cases, or its JSON text), ``requires``
(a list, its JSON text, or names separated by whitespace), ``params`` (the
forms of unannotated parameters: an object ``{"table": "dataframe"}``, its
JSON text, or ``NAME=FORM`` pairs separated by whitespace) and ``metadata``
(an object, or its JSON text). Format: docs/packages.md.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..registry import AddResult, ProvenanceInput, Registry, Verification
from ..registry.cases import load_tests
from ..registry.errors import InvalidInput, SandboxUnavailable, ToolcribError
from ..sandbox.inside.wire import MAX_FILE_DEPTH, ProtocolError, read_json
from .common import CLIError, echo_json, echo_text

__all__ = [
    "Checked",
    "Entry",
    "Outcome",
    "checked_line",
    "exit_code_for",
    "is_table",
    "provenance_for",
    "read_entries",
    "report",
    "run_entries",
    "verify_admitted",
]

TABLE_SUFFIXES = (".jsonl", ".csv")
_COLUMNS = frozenset({"source", "name", "entrypoint", "tests", "requires", "params", "metadata"})
# A CSV cell holds a whole tool's source.
_CSV_FIELD_LIMIT = 4 * 1024 * 1024


@dataclass
class Entry:
    """One tool to add, and where it came from (for the report). ``problem``:
    it could not even be read (a bad row); it is reported as refused."""

    label: str
    source: str = ""
    name: str | None = None
    entrypoint: str | None = None
    tests: list[Any] | None = None
    requires: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    markdown: bool | None = None
    problem: str | None = None


@dataclass
class Checked:
    """What `add --verify` found for an admitted version: its verdict, or
    why it was not verified (``skipped``: it has no test cases; otherwise
    ``error`` with its exit code, e.g. 6 for a sandbox that cannot run)."""

    verification: Verification | None = None
    skipped: str | None = None
    error: str | None = None
    exit_code: int = 0

    @property
    def status(self) -> str:
        if self.verification is not None:
            return self.verification.status
        return "skipped" if self.skipped is not None else "unverified"

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status}
        if self.verification is not None:
            data.update(
                passed=self.verification.passed,
                failed=self.verification.failed,
                backend=self.verification.backend,
                layers=self.verification.layers,
            )
        elif self.skipped is not None:
            data.update(reason=self.skipped)
        else:
            data.update(error=self.error, exit_code=self.exit_code)
        return data


@dataclass
class Outcome:
    entry: Entry
    result: AddResult | None = None
    error: str | None = None
    exit_code: int = 0
    checked: Checked | None = None  # with --verify, for an admitted version

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.entry.label, "admitted": self.result is not None}
        if self.result is None:
            data.update(error=self.error, exit_code=self.exit_code)
            return data
        tool = self.result.tool
        data.update(
            ref=tool.ref,
            name=tool.name,
            version=tool.version,
            sha256=tool.sha256,
            created=self.result.created,
            bump=self.result.bump,
            entrypoint=tool.entrypoint,
            policy=tool.policy,
            requires=tool.requires,
            lock=tool.lock.digest() if tool.lock else None,
            prelude=tool.prelude is not None,
            tests=len(tool.tests),
            notes=self.result.notes,
        )
        if self.checked is not None:
            data["verification"] = self.checked.json()
        return data


def is_table(path: str) -> bool:
    return path.lower().endswith(TABLE_SUFFIXES)


def _file_entry(path: Path) -> Entry:
    entry = Entry(label=str(path), markdown=True if path.suffix.lower() in (".md", ".markdown") else None)
    try:
        entry.source = path.read_text(encoding="utf-8")
        # The examples' convention: sort_words.py beside sort_words.tests.json.
        tests = path.with_name(path.stem + ".tests.json")
        if tests.is_file():
            entry.tests = [case.model_dump() for case in load_tests(tests.read_text(encoding="utf-8"))]
    except UnicodeDecodeError:
        entry.problem = "not UTF-8 text"
    except OSError as err:
        entry.problem = f"cannot read it: {err.strerror}"
    except ToolcribError as err:
        entry.problem = f"{tests.name}: {err}"
    return entry


def _json_cell(value: Any, column: str, kind: type) -> Any:
    """A table cell that holds structured data: the value itself (JSONL) or its JSON text."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = read_json(value, f"column {column!r}", max_depth=MAX_FILE_DEPTH)
        except ProtocolError as err:
            raise InvalidInput(str(err)) from None
    if value is not None and not isinstance(value, kind):
        raise InvalidInput(f"column {column!r} must be a {'list' if kind is list else 'object'}")
    return value


def _params_cell(value: Any) -> dict[str, str]:
    """The 'params' cell: {parameter: form}, from an object, its JSON text or NAME=FORM pairs."""
    if isinstance(value, str) and not value.lstrip().startswith("{"):
        pairs = [pair.partition("=") for pair in value.split()]
        if any(not sep or not name for name, sep, _ in pairs):
            raise InvalidInput("column 'params' holds NAME=FORM pairs (or a JSON object)")
        return {name: form for name, _, form in pairs}
    params = _json_cell(value, "params", dict) or {}
    if not all(isinstance(form, str) for form in params.values()):
        raise InvalidInput("column 'params' must map parameter names to form names (text)")
    return dict(params)


def _row_entry(row: dict[str, Any], label: str) -> Entry:
    entry = Entry(label=label, markdown=None)
    try:
        unknown = sorted(set(row) - _COLUMNS)
        if unknown:
            raise InvalidInput(
                f"unknown column(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(_COLUMNS))})"
            )
        source = row.get("source")
        if not isinstance(source, str) or not source.strip():
            raise InvalidInput("no source (the 'source' column is required)")
        entry.source = source
        for column in ("name", "entrypoint"):
            value = row.get(column)
            if value not in (None, ""):
                if not isinstance(value, str):
                    raise InvalidInput(f"column {column!r} must be text")
                setattr(entry, column, value)
        entry.tests = _json_cell(row.get("tests"), "tests", list)
        requires = row.get("requires")
        if isinstance(requires, str) and not requires.lstrip().startswith("["):
            entry.requires = requires.split()
        else:
            listed = _json_cell(requires, "requires", list) or []
            if not all(isinstance(r, str) for r in listed):
                raise InvalidInput("column 'requires' must list strings")
            entry.requires = listed
        entry.params = _params_cell(row.get("params"))
        metadata = _json_cell(row.get("metadata"), "metadata", dict) or {}
        entry.metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    except InvalidInput as err:
        entry.problem = err.message
    return entry


def _table_entries(path: Path) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not UTF-8 text") from None
    except OSError as err:
        raise CLIError(f"cannot read {path}: {err.strerror}") from None
    text = text.removeprefix("\ufeff")  # spreadsheets save CSV with a byte-order mark
    entries: list[Entry] = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            label = f"{path}:{number}"
            try:
                row = read_json(line, "the line", max_depth=MAX_FILE_DEPTH)
            except ProtocolError as err:
                entries.append(Entry(label=label, problem=str(err)))
                continue
            if not isinstance(row, dict):
                entries.append(Entry(label=label, problem="a line must be a JSON object"))
                continue
            entries.append(_row_entry(row, label))
        return entries
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or "source" not in reader.fieldnames:
            raise CLIError(f"{path}: a CSV of tools needs a header row with a 'source' column")
        for number, row in enumerate(reader, 2):
            if None in row:
                entries.append(Entry(label=f"{path}:{number}", problem="the row has more cells than the header"))
                continue
            entries.append(_row_entry({k: v for k, v in row.items() if v is not None}, f"{path}:{number}"))
    except csv.Error as err:
        raise CLIError(f"{path}: not a readable CSV: {err}") from None
    return entries


def read_entries(paths: list[str]) -> list[Entry]:
    """Every tool named by the paths: files as they are, a directory's
    ``*.py`` files (sorted; names starting with '_' or '.' left out), and
    each row of a .jsonl or .csv table."""
    entries: list[Entry] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if p.is_file() and not p.name.startswith(("_", ".")))
            if not files:
                raise CLIError(f"no .py files in directory {raw}")
            entries += [_file_entry(p) for p in files]
        elif not path.exists():
            raise CLIError(f"source file not found: {raw}")
        elif is_table(raw):
            entries += _table_entries(path)
        else:
            entries.append(_file_entry(path))
    return entries


def run_entries(
    reg: Registry,
    entries: list[Entry],
    add: Callable[[Entry], AddResult],
) -> list[Outcome]:
    """Add each entry on its own (its own transaction: all of a tool or none
    of it), with a progress bar on stderr; a refusal is recorded, not raised."""
    outcomes: list[Outcome] = []
    with click.progressbar(
        entries, label="adding", file=sys.stderr, show_pos=True, item_show_func=lambda e: e.label if e else None
    ) as bar:
        for entry in bar:
            if entry.problem is not None:
                outcomes.append(Outcome(entry, error=entry.problem, exit_code=InvalidInput.exit_code))
                continue
            try:
                outcomes.append(Outcome(entry, result=add(entry)))
            except ToolcribError as err:
                outcomes.append(Outcome(entry, error=err.message, exit_code=err.exit_code))
    return outcomes


def provenance_for(entry: Entry, base: ProvenanceInput) -> ProvenanceInput:
    """The shared provenance with the row's own metadata on top."""
    if not entry.metadata:
        return base
    return base.model_copy(update={"metadata": {**base.metadata, **entry.metadata}})


def verify_admitted(
    reg: Registry,
    outcomes: list[Outcome],
    *,
    backend: str,
    policy: str | None = None,
    no_build: bool = False,
) -> None:
    """`add --verify`: verify every admitted version on `backend`, as many
    at once as it has room for (`Registry.parallelism`: the restricted
    backend's spare children within the cores, every actor of a Ray
    cluster), never more in flight (the pool's workers are the
    backpressure); each outcome gets its `Checked`, a progress bar on
    stderr counts them as they finish. A version without test cases is
    skipped; a sandbox that cannot run is recorded per version (exit 6)."""
    admitted = [o for o in outcomes if o.result is not None]
    if not admitted:
        return

    def one(outcome: Outcome) -> Checked:
        assert outcome.result is not None
        ref = outcome.result.tool.ref
        try:
            return Checked(verification=reg.verify(ref, backend=backend, policy=policy, no_build=no_build))
        except SandboxUnavailable as err:
            return Checked(error=err.message, exit_code=err.exit_code)
        except InvalidInput as err:  # e.g. a version with no test cases
            if not outcome.result.tool.tests:
                return Checked(skipped=err.message)
            return Checked(error=err.message, exit_code=err.exit_code)
        except ToolcribError as err:
            return Checked(error=err.message, exit_code=err.exit_code)

    workers = max(1, reg.parallelism(backend)) if len(admitted) > 1 else 1
    with click.progressbar(length=len(admitted), label="verifying", file=sys.stderr, show_pos=True) as bar:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="toolcrib-add-verify") as pool:
            futures = {pool.submit(one, outcome): outcome for outcome in admitted}
            try:
                for future in as_completed(futures):
                    futures[future].checked = future.result()
                    bar.update(1)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def exit_code_for(outcomes: list[Outcome]) -> int:
    """0: every tool admitted (and, with --verify, verified or without test
    cases); 2: any refused; else 6: the sandbox could not verify one; else
    1: a version failed its verification (or another error stopped it)."""
    if any(o.result is None for o in outcomes):
        return 2
    checked = [o.checked for o in outcomes if o.checked is not None]
    if any(c.exit_code == SandboxUnavailable.exit_code for c in checked):
        return SandboxUnavailable.exit_code
    if any(c.status == "failed" or c.error is not None for c in checked):
        return 1
    return 0


def report(outcomes: list[Outcome], json_output: bool) -> int:
    """Print the per-tool report; the exit code (`exit_code_for`)."""
    refused = [o for o in outcomes if o.result is None]
    checked = [o.checked for o in outcomes if o.checked is not None]
    counts = {"admitted": len(outcomes) - len(refused), "refused": len(refused)}
    if checked:
        for status in ("verified", "failed", "skipped", "unverified"):
            counts[status] = sum(1 for c in checked if c.status == status)
    if json_output:
        echo_json({**counts, "tools": [o.json() for o in outcomes]})
    else:
        for outcome in outcomes:
            if outcome.result is None:
                echo_text(f"refused  {outcome.entry.label}: {outcome.error}")
                continue
            tool = outcome.result.tool
            verb = "added   " if outcome.result.created else "existing"
            echo_text(f"{verb} {outcome.entry.label}: {tool.ref} (sha256:{tool.sha256[:12]})")
            for note in outcome.result.notes:
                if note.startswith("missing: "):
                    echo_text(f"         warning: {note.removeprefix('missing: ')}")
            if outcome.checked is not None:
                echo_text(f"         {checked_line(outcome.checked)}")
        click.echo(", ".join(f"{count} {label}" for label, count in counts.items()), err=True)
    return exit_code_for(outcomes)


def checked_line(checked: Checked) -> str:
    verdict = checked.verification
    if verdict is not None:
        total = verdict.passed + verdict.failed
        return f"{verdict.status} ({verdict.passed}/{total} passed, {verdict.backend} backend)"
    if checked.skipped is not None:
        return f"not verified: {checked.skipped}"
    return f"not verified: {checked.error}"
