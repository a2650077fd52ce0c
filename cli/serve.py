"""`toolcrib serve`: the registry's verified tools as a Model Context Protocol server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import click

from ..sandbox import BACKEND_NAMES
from .common import BACKEND_DEFAULT_HELP, CLIError, default_backend_name, open_registry

__all__ = ["COMMANDS", "serve"]


@click.command()
@click.option(
    "--http",
    "http_port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (0 picks a free port; "
    "the address is printed on stderr).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind with --http. Anything but 127.0.0.1, ::1 or localhost needs --token; "
    "anything but loopback also --allow-remote.",
)
@click.option("--allow-remote", is_flag=True, help="Allow --host to be a non-loopback address (requires --token).")
@click.option(
    "--token",
    envvar="TOOLCRIB_SERVE_TOKEN",
    metavar="SECRET",
    help="Bearer token every HTTP request must carry ($TOOLCRIB_SERVE_TOKEN keeps it out of ps).",
)
@click.option(
    "allow_hosts",
    "--allow-host",
    multiple=True,
    metavar="HOST:PORT",
    help="Also accept this Host header (exact; repeatable). Default: the bound address and port, "
    "and the loopback names on a loopback or wildcard bind.",
)
@click.option(
    "allow_origins",
    "--allow-origin",
    multiple=True,
    metavar="ORIGIN",
    help="Also accept this Origin header (exact, e.g. https://app.example; repeatable). "
    "Default: http:// + each default Host.",
)
@click.option(
    "tool_globs",
    "--tool",
    multiple=True,
    metavar="GLOB",
    help="Serve only tools whose name matches (e.g. 'sort_*'). Repeatable. Default: every verified tool.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKEND_NAMES),
    callback=default_backend_name,
    envvar="TOOLCRIB_BACKEND",
    help="Sandbox backend for every call ($TOOLCRIB_BACKEND). " + BACKEND_DEFAULT_HELP,
)
@click.option(
    "--allow-add",
    is_flag=True,
    help="Also offer add_tool and verify_tool, so a client can register and verify new versions.",
)
@click.option(
    "--poll",
    "poll_seconds",
    type=click.FloatRange(0.05, 3600),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to look for versions verified, yanked or deprecated meanwhile.",
)
def serve(
    http_port: int | None,
    host: str,
    allow_remote: bool,
    token: str | None,
    allow_hosts: tuple[str, ...],
    allow_origins: tuple[str, ...],
    tool_globs: tuple[str, ...],
    backend: str,
    allow_add: bool,
    poll_seconds: float,
) -> None:
    """Serve verified tools to MCP clients (stdio by default).

    Lists the newest verified, non-yanked, non-deprecated version of each
    tool with its stored input and output schemas; every call is validated
    against that schema, runs in the sandbox and is audited with the client's
    name and version as the actor. Tool errors, limits and bad arguments come
    back as isError results carrying the same JSON as `call --json`. Clients
    are notified (tools/list_changed) when a version is verified or yanked
    while the server runs. Tools are chosen by name (--tool); toolcrib has
    no tags. Over HTTP every request's Host and Origin must name this
    server (DNS rebinding); with --allow-add, what a client adds is served
    to that client only (docs/mcp.md).

    \b
    Examples:
        toolcrib --registry tools.db serve
        toolcrib serve --tool 'sort_*' --backend docker
        toolcrib serve --http 8765
        toolcrib serve --http 8765 --host 0.0.0.0 --allow-remote --token "$SECRET" --allow-host tools.lan:8765
    """
    from functools import partial

    import anyio

    from ..mcp_server import ServeOptions, ToolServer, check_bind, run_http, run_stdio

    if http_port is None and (allow_remote or host != "127.0.0.1" or token or allow_hosts or allow_origins):
        raise CLIError("--host, --allow-remote, --token, --allow-host and --allow-origin apply to --http only")
    if http_port is not None:
        check_bind(host, allow_remote=allow_remote, token=token)
    path = open_registry(create=False).path
    server = ToolServer(
        ServeOptions(registry=path, backend=backend, tools=tool_globs, allow_add=allow_add, poll_seconds=poll_seconds)
    )
    try:
        if http_port is None:
            _run_bare(partial(anyio.run, run_stdio, server))
        else:
            _run_bare(
                partial(
                    anyio.run,
                    partial(
                        run_http, server, host, http_port, token, allow_hosts=allow_hosts, allow_origins=allow_origins
                    ),
                )
            )
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _run_bare(run: Callable[[], object]) -> None:
    """Run; a signal's exception (Ctrl-C, the CLI's SIGTERM one) raised inside
    anyio's task groups comes out wrapped in exception groups: re-raise it
    bare, so serve ends the way every command does, without a traceback."""
    try:
        run()
    except BaseExceptionGroup as group:
        for leaf in _leaves(group):
            if not isinstance(leaf, Exception):
                raise leaf from None
        raise


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


COMMANDS = [serve]
