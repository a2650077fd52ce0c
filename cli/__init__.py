"""toolcrib.cli: the click command line, a thin layer over `toolcrib.Registry`.

Exit codes (the contract scripts rely on; see README "Exit codes"):
0 success · 1 the tool raised or a test failed · 2 usage or bad input ·
3 not found · 4 refused by policy · 5 a resource limit was hit ·
6 the sandbox is unavailable · 7 an optional extra is not installed ·
8 the registry path is unusable (read-only, not a regular file) ·
70 internal error (a bug: please report it). The table is
`cli/exit_codes.py`'s.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

import click

from ..registry.errors import InvalidInput, ToolcribError
from .exit_codes import INTERNAL_ERROR

__all__ = ["COMMANDS", "LazyGroup", "cli", "main", "report_internal_error"]

# Every command: its name -> ("module:attribute" under toolcrib.cli, its short
# help). A command's module is imported only when that command runs (or its
# own --help is asked for): `toolcrib --help` lists them all from this table,
# without pydantic, sqlite-utils, docker, mcp or llm (bench/bench_startup.py).
# A new command is one line here; tests/cli/test_startup.py checks that every
# module's COMMANDS are listed and that each short help is the command's own.
COMMANDS: dict[str, tuple[str, str]] = {
    "add": ("tools:add", "Register a tool version from a .py file, stdin, or a Markdown reply."),
    "approve": ("review:approve", "Approve a version waiting for review, signed with your key."),
    "attest": ("review:attest", "Check the signed review decisions of a version."),
    "audit": ("audit:audit", "List the audit log: every add, verify, call and lifecycle change."),
    "browse": ("browse:browse", "Open the registry read-only in Datasette, with canned queries."),
    "call": ("run:call", "Call a tool in a sandbox and print its result."),
    "case": ("checks:case_group", "Turn what a check found into test cases."),
    "checks": ("checks:checks", "Show or set the checks 'toolcrib verify' runs by default (audited)."),
    "deprecate": ("tools:deprecate", "Mark a version deprecated (it still runs; callers are told)."),
    "diff": ("tools:diff", "Show how two versions differ: source, signature, and the semver bump."),
    "dispatch": ("latm:dispatch", "Pick the tool that fits a question, or say none does (the LATM dispatcher)."),
    "doctor": (
        "image:doctor_command",
        "Check the sandboxes: engine, image, limits really applied inside a container, and the restricted "
        "backend with each layer of its jail (in force or not) and whether weak isolation is allowed "
        "($TOOLCRIB_ALLOW_WEAK_JAIL).",
    ),
    "export": ("tools:export", "Export tools as a portable JSON bundle (every version of each NAME)."),
    "export-schema": (
        "exports:export_schema",
        "Print ready-to-paste tool definitions of verified versions (always JSON).",
    ),
    "history": ("tools:history", "Every version of one tool, oldest first."),
    "image": ("image:image_group", "Build and inspect the Docker sandbox image."),
    "import": ("tools:import_", "Import a bundle made by 'toolcrib export'."),
    "init": ("tools:init", "Create the registry database (or migrate an existing one)."),
    "key": ("keys:key", "Make reviewer keys and choose which ones the registry trusts."),
    "list": ("viewing:list_", "List the newest version of every tool."),
    "limits": ("limits:limits", "Show or set the registry's maximum limits (the operator's choice)."),
    "make": ("latm:make", "Make a verified tool from a task's examples (the LATM tool maker)."),
    "model": ("latm:model", "Show or set the registry's default model for make, use and dispatch."),
    "prelude": ("prelude:prelude_group", "Store and read named preludes: code run before each tool of a library."),
    "provenance": ("tools:provenance", "Print a version's provenance as an in-toto Statement (always JSON)."),
    "reject": ("review:reject", "Reject a version waiting for review, with the reason."),
    "review": ("review:review", "List the versions waiting for a reviewer, or show one in full."),
    "search": ("tools:search", "Find the tools that fit a request: any word may match, best fit first."),
    "serve": ("serve:serve", "Serve verified tools to MCP clients (stdio by default)."),
    "show": ("viewing:show", "Show one version: signature, tests, provenance, verification, usage."),
    "use": ("latm:use", "Answer questions with a tool (the LATM tool user)."),
    "verify": ("run:verify", "Run a version's test cases, each in a fresh sandbox, and record the verdict."),
    "wasm": ("wasm:wasm_group", "Install and inspect the WebAssembly backend's guest."),
    "yank": ("tools:yank", "Yank a version: never chosen by NAME, refused when pinned unless --allow-yanked."),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use (click's
    documented lazy-loading pattern), with their short help known up front."""

    def __init__(self, *args: Any, lazy_commands: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(self._load(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def _load(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self.lazy_commands[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(f"{__name__}.{module_name}"), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a command not loaded yet is listed from the table."""
        names = [
            name for name in self.list_commands(ctx) if name in self.lazy_commands or not self.commands[name].hidden
        ]
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is not None:
                rows.append((name, loaded.get_short_help_str(limit)))
            else:
                # A stand-in with the same help: shortened exactly as click does.
                rows.append((name, click.Command(name, help=self.lazy_commands[name][1]).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class ToolcribGroup(LazyGroup):
    """Maps toolcrib's own exceptions to one-line errors and exit codes (with
    the refusal JSON on stdout first, for a ``--json`` command), and takes
    the global options after the subcommand too (cli/argv.py)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from .argv import hoist_global_options

        args = hoist_global_options(list(args))
        ctx.meta["toolcrib.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from .argv import json_failure

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # click would answer with exit 1, the code of a tool that raised;
            # `main` gives an interrupt its documented 130.
            raise _Interrupted() from None
        except ToolcribError as err:
            from .common import CLIError

            json_failure(self, ctx, ctx.meta.get("toolcrib.argv", []), err)
            raise CLIError.from_error(err) from None
        except click.UsageError as err:
            json_failure(self, ctx, ctx.meta.get("toolcrib.argv", []), InvalidInput(err.format_message()))
            raise
        except Exception as err:
            # pydantic is imported only by the commands that need it: if it
            # is not loaded, this cannot be one of its errors.
            pydantic = sys.modules.get("pydantic")
            if pydantic is None or not isinstance(err, pydantic.ValidationError):
                raise
            from .common import CLIError

            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "input"
            message = f"{where}: {first.get('msg', 'invalid')}"
            json_failure(self, ctx, ctx.meta.get("toolcrib.argv", []), InvalidInput(message))
            raise CLIError(message) from None


@click.group(cls=ToolcribGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="toolcrib")
@click.option(
    "--registry",
    "registry_path",
    # Not click.Path(dir_okay=False): every unusable path (a directory too)
    # gets the registry's own one-line error and exit code 8.
    metavar="FILE",
    envvar="TOOLCRIB_REGISTRY",
    help="Registry database file. Default: $TOOLCRIB_REGISTRY, else ~/.local/share/toolcrib/registry.db.",
)
@click.option(
    "--actor",
    envvar="TOOLCRIB_ACTOR",
    help="Who is acting, for provenance and the audit log. Default: $TOOLCRIB_ACTOR, else your user name.",
)
@click.pass_context
def cli(ctx: click.Context, registry_path: str | None, actor: str | None) -> None:
    """toolcrib: a registry and sandbox for LLM-written tools.

    Register a tool with its tests and provenance, verify it in a sandbox,
    then call it; every step lands in a tamper-evident audit log.

    --registry and --actor may also follow the command. A --json command
    that fails prints the refusal JSON (status, error, tool, ...) on stdout
    before its one-line error.

    \b
    Examples:
        toolcrib init
        toolcrib add sort_words.py --tests sort_words.tests.json --generator gpt-4
        toolcrib verify sort_words
        toolcrib call sort_words --args '{"words": ["b", "a"]}'
        toolcrib audit verify
    """
    from .common import State  # here, not at the top: it imports the registry

    state = State(registry_path, actor)
    ctx.obj = state
    ctx.call_on_close(state.close)


class _Terminated(BaseException):
    """SIGTERM arrived (a supervisor, `timeout`, `kill`)."""


class _Interrupted(BaseException):
    """Ctrl-C (a KeyboardInterrupt) ended a command: not one click catches."""


def _on_sigterm(signum: int, frame: object) -> None:
    # Python's default for SIGTERM ends the process without running `finally`
    # blocks or exit handlers, which is where sandboxes and containers are
    # cleaned up; turn it into an exception so they run.
    raise _Terminated()


def main() -> None:
    """Console-script entry point: never a traceback for the user."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(prog_name="toolcrib", standalone_mode=True)
    except SystemExit:
        raise
    except (KeyboardInterrupt, _Interrupted):
        click.echo("\nAborted!", err=True)  # the blank line closes the terminal's ^C echo
        sys.exit(130)
    except _Terminated:
        click.echo("Terminated.", err=True)
        # Clean up what the exit handlers would (sandboxes, containers), then
        # end by the signal itself, so whoever sent it sees it.
        from ..sandbox import close_backends

        close_backends()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    except Exception as err:  # the last line of defence
        if os.environ.get("TOOLCRIB_DEBUG"):
            raise
        sys.exit(report_internal_error(err))


def report_internal_error(err: Exception) -> int:
    """The one line a bug gets on stderr (`main`'s, and a call the warm
    service runs: cli/served_call.py); its exit code, 70."""
    from .common import echo_text

    echo_text(f"Error: internal error: {type(err).__name__}: {err} (set TOOLCRIB_DEBUG=1 for a traceback)", err=True)
    return INTERNAL_ERROR
