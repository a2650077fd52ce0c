"""What every command shares: opening the registry, parsing KEY=VALUE options,
printing JSON and tables, and turning toolcrib errors into exit codes."""

from __future__ import annotations

import functools
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..registry.errors import ToolcribError
from ..sandbox.contract import Cancel, Limits

if TYPE_CHECKING:
    import sqlite3

    from ..registry import Registry
    from ..registry.calls import Caller
    from ..registry.plain_reads import PlainReader

__all__ = [
    "CLIError",
    "TableChoice",
    "declared_limits",
    "echo_json",
    "echo_progress",
    "echo_result",
    "echo_table",
    "echo_text",
    "json_option",
    "limit_option",
    "open_caller",
    "open_reader",
    "open_registry",
    "parse_key_values",
    "parse_limits",
    "read_text_argument",
    "served_cancel",
    "terminal_text",
]


F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------ terminals
#
# Text a tool, a bundle, a model or a client chose (results, docstrings,
# names, actors, error messages, audit details) reaches the operator's
# terminal only through `terminal_text`, which shows every control character
# as an escape, as git and ls do: otherwise ``\x1b]52;c;...\x07`` writes the
# clipboard, ``\x1b[2J`` clears the screen and ``\r`` overwrites what a line
# said. Escaped: C0 (all but newline and tab where a layout has several
# lines), DEL, C1 (``\x9b`` is a one-byte CSI) and the bidirectional
# overrides and isolates (which reorder what is shown). Shown as ``\xNN``
# (``\uNNNN`` past U+00FF). ``--json`` output is left exact.
_BIDI = "\u202a-\u202e\u2066-\u2069"
_CONTROL_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_CONTROL_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_text(text: object, *, multiline: bool = False) -> str:
    """`text` safe to print on a terminal: control characters escaped (see
    above). ``multiline`` keeps newlines and tabs (a result, a source diff)."""
    value = text if isinstance(text, str) else str(text)
    return (_CONTROL_LINES if multiline else _CONTROL_ONE_LINE).sub(_escape, value)


def echo_text(text: object, *, multiline: bool = False, err: bool = False, nl: bool = True) -> None:
    """click.echo of text that may hold what a tool or a client chose."""
    click.echo(terminal_text(text, multiline=multiline), err=err, nl=nl)


def echo_progress(line: str) -> None:
    """A progress line (a build, a resolution, a stage) on stderr: stdout
    stays the command's result."""
    echo_text(line, err=True)


class CLIError(click.ClickException):
    """A one-line user-facing error with a documented exit code: 2 (usage or
    bad input) unless made by `with_exit_code`. click declares `exit_code` per
    class, so each other code gets its own subclass of this one. Its message
    is shown through `terminal_text` (it may quote a tool's words)."""

    exit_code = 2

    def format_message(self) -> str:
        return terminal_text(self.message)

    @staticmethod
    def with_exit_code(message: str, exit_code: int) -> CLIError:
        return _cli_error_class(exit_code)(message)

    @classmethod
    def from_error(cls, err: ToolcribError) -> CLIError:
        return cls.with_exit_code(err.message, err.exit_code)


@functools.cache
def _cli_error_class(exit_code: int) -> type[CLIError]:
    if exit_code == CLIError.exit_code:
        return CLIError

    class CodedCLIError(CLIError):
        pass

    CodedCLIError.exit_code = exit_code
    CodedCLIError.__name__ = CodedCLIError.__qualname__ = f"CLIError{exit_code}"
    return CodedCLIError


class State:
    """The global options, kept on the click context."""

    def __init__(self, registry_path: str | None, actor: str | None) -> None:
        self.registry_path = registry_path
        self.actor = actor
        self._registries: list[Registry] = []
        self._connections: list[sqlite3.Connection] = []

    def open(self, *, create: bool) -> Registry:
        from ..registry import Registry  # here: `toolcrib call` and `--help` do without it

        try:
            reg = Registry(self.registry_path, actor=self.actor, create=create)
        except ToolcribError as err:
            raise CLIError.from_error(err) from None
        self._registries.append(reg)
        return reg

    def _plain_connection(self) -> sqlite3.Connection | None:
        """A plain sqlite3 connection to the registry file, when the file
        exists and its schema is current (else None: `Registry` migrates it
        or says what is wrong)."""
        from ..registry.store import SCHEMA_MIGRATIONS, applied_migrations, connect, default_registry_path

        path = Path(self.registry_path).expanduser() if self.registry_path else default_registry_path()
        if not path.is_file():
            return None
        try:
            conn = connect(path, create=False)
        except ToolcribError as err:
            raise CLIError.from_error(err) from None
        if tuple(applied_migrations(conn)) != SCHEMA_MIGRATIONS:
            conn.close()
            return None
        self._connections.append(conn)
        return conn

    def caller(self) -> Caller:
        """The registry's call path (`toolcrib.registry.calls`) on a plain
        connection, when the file exists and its schema is current: no
        pydantic and no sqlite-utils on the way to the sandbox. Anything else
        (no file, an older schema to migrate, not a registry) goes through
        `Registry`, which migrates it or says what is wrong."""
        from ..registry.calls import Caller
        from ..registry.store import default_actor

        conn = self._plain_connection()
        if conn is not None:
            return Caller(conn, actor=self.actor or default_actor())
        reg = self.open(create=False)
        return reg.caller()

    def reader(self) -> PlainReader:
        """`list`'s and `show`'s reads (`toolcrib.registry.plain_reads`) on a
        plain connection, as `caller`; a file that is not current is opened
        through `Registry` first (migrated, or refused with its reason)."""
        from ..registry.plain_reads import PlainReader

        conn = self._plain_connection()
        if conn is None:
            self.open(create=False)
            conn = self._plain_connection()
            if conn is None:  # pragma: no cover - Registry migrates or refuses first
                raise CLIError.with_exit_code("the registry's schema is not this toolcrib's", 8)
        return PlainReader(conn)

    def close(self) -> None:
        for reg in self._registries:
            reg.close()
        self._registries.clear()
        for conn in self._connections:
            conn.close()
        self._connections.clear()


# A call the warm sandbox service runs for a `toolcrib` process
# (cli/served_call.py) is cancelled when that process goes away: its Cancel,
# for the thread that runs it. None everywhere else.
_served = threading.local()


def bind_served_cancel(cancel: Cancel | None) -> None:
    """Set (or clear, None) the Cancel of the call this thread runs for a client."""
    _served.cancel = cancel


def served_cancel() -> Cancel | None:
    """The Cancel of the call this thread runs for a client of the service, if any."""
    cancel: Cancel | None = getattr(_served, "cancel", None)
    return cancel


def open_registry(*, create: bool = False) -> Registry:
    """The registry named by the global options. Read commands pass
    create=False so a mistyped path is an error, not a new empty registry."""
    state = click.get_current_context().find_object(State)
    assert state is not None, "the toolcrib group sets the state"
    return state.open(create=create)


def open_reader() -> PlainReader:
    """The lean reads of the registry named by the global options (see `State.reader`)."""
    state = click.get_current_context().find_object(State)
    assert state is not None, "the toolcrib group sets the state"
    return state.reader()


def open_caller() -> Caller:
    """The call path of the registry named by the global options (see `State.caller`)."""
    state = click.get_current_context().find_object(State)
    assert state is not None, "the toolcrib group sets the state"
    return state.caller()


class TableChoice(click.Choice[str]):
    """A choice among the keys of a table (comparators, export formats),
    read when the option is parsed or its help shown: an entry added to the
    table is a choice, with no second list to keep."""

    def __init__(self, table: Mapping[str, object]) -> None:
        self._table = table
        super().__init__(tuple(table))

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._table)

    @choices.setter
    def choices(self, value: Iterable[str]) -> None:
        pass  # the table is the list (click's __init__ sets one)


def json_option(fn: F) -> F:
    return click.option("json_output", "--json", is_flag=True, help="Output JSON.")(fn)


# `--backend`'s help after what it is for: the default where none is named.
BACKEND_DEFAULT_HELP = "Default: restricted where the Linux jail exists, else wasm (see docs/sandbox-wasm.md)."


def default_backend_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """`--backend`'s callback: the backend named, else this machine's default
    (sandbox/default_backend.py: restricted where the Linux jail exists, else wasm)."""
    if value is not None:
        return value
    from ..sandbox.default_backend import default_backend

    return default_backend()


def limit_option(fn: F) -> F:
    return click.option(
        "limits",
        "--limit",
        multiple=True,
        metavar="NAME=VALUE",
        help="Override a resource limit within the registry's maxima ('toolcrib limits'): cpu (s), wall (s), "
        "memory (MiB), output (KiB), pids, disk (MiB). Repeatable.",
    )(fn)


def parse_key_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'}; a pair without '=' is a usage error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint=option)
        out[key.strip()] = value
    return out


def parse_limits(pairs: Sequence[str], option: str = "--limit") -> dict[str, float] | None:
    """``NAME=NUMBER`` pairs of ``option`` (``--limit``, ``--max``); None if there are none."""
    if not pairs:
        return None
    limits: dict[str, float] = {}
    for key, value in parse_key_values(pairs, option).items():
        try:
            limits[key] = float(value)
        except ValueError:
            raise click.BadParameter(f"{key}: {value!r} is not a number", param_hint=option) from None
    return limits


def declared_limits(pairs: Sequence[str]) -> Limits | None:
    """`--limit` pairs as the Limits a version declares (defaults for the rest),
    or None when none were given; a bad value is a usage error (exit 2)."""
    overrides = parse_limits(pairs)
    if not overrides:
        return None
    try:
        return Limits().override(**overrides)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--limit") from None


# The most characters any one file or stdin argument is read for (a source, a tests
# file, a bundle...): the JSON reader's own bound, so /dev/zero or a runaway
# pipe is one line, not all of memory.
MAX_TEXT_CHARS = 64 * 1024 * 1024


def read_text_argument(path: str, what: str) -> str:
    """The text of a file, or of stdin for '-', as a clean usage error when
    unreadable or larger than MAX_TEXT_CHARS."""
    if path == "-":
        if sys.stdin is None:
            raise CLIError(f"no {what} on standard input")
        text = sys.stdin.read(MAX_TEXT_CHARS + 1)
        if len(text) > MAX_TEXT_CHARS:
            raise CLIError(f"{what} on standard input is larger than {MAX_TEXT_CHARS} characters")
        return text
    try:
        # Text mode, as Path.read_text: newlines read the same as ever.
        with Path(path).open(encoding="utf-8") as handle:
            text = handle.read(MAX_TEXT_CHARS + 1)
        if len(text) > MAX_TEXT_CHARS:
            raise CLIError(f"{what} file is larger than {MAX_TEXT_CHARS} characters: {path}")
        return text
    except FileNotFoundError:
        raise CLIError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise CLIError(f"{what} path is a directory: {path}") from None
    except UnicodeDecodeError:
        raise CLIError(f"{what} file is not UTF-8 text: {path}") from None
    except OSError as err:
        raise CLIError(f"cannot read {what} file {path}: {err.strerror}") from None


def pretty_json(value: Any) -> str:
    """`value` as JSON indented for a person (a page, a file, a section of a
    report); `echo_json` writes the same to stdout without holding it whole."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def echo_json(value: Any) -> None:
    """`value` as indented JSON on stdout, written as it is encoded: a call's
    result at the output cap is never held again as one text (Python's
    indenting encoder makes one small string per token; joining them all
    first cost the host ~10 times the result's size)."""
    pending: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(value):
        if len(chunk) >= 1 << 16:  # one long string: written as it is, never joined (a copy)
            click.echo("".join(pending), nl=False)
            click.echo(chunk, nl=False)
            pending, size = [], 0
            continue
        pending.append(chunk)
        size += len(chunk)
        if size >= 1 << 16:
            click.echo("".join(pending), nl=False)
            pending, size = [], 0
    click.echo("".join(pending))


def echo_result(data: Any, json_output: bool, text: str) -> None:
    """A command's result: `data` as JSON with --json, else `text` (which may
    hold what an engine or a tool said: shown through `terminal_text`)."""
    if json_output:
        echo_json(data)
    else:
        echo_text(text, multiline=True)


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain aligned table; cells are made single-line and capped."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    click.echo(line.format(*headers).rstrip())
    for row in cells:
        click.echo(line.format(*row).rstrip())


def _cell(value: Any, cap: int = 60) -> str:
    text = "" if value is None else str(value)
    text = terminal_text(" ".join(text.split()))
    return text if len(text) <= cap else text[: cap - 1] + "…"
