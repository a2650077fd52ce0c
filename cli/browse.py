"""`toolcrib browse`: the registry, read-only, in Datasette, with canned queries
for review (docs/browse.md). Datasette is the optional extra toolcrib[browse]."""

from __future__ import annotations

import importlib.util
import socket
import sqlite3
import webbrowser
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from ..registry.errors import ExtraMissing, InvalidInput, NotFound
from ..registry.store_review import REVIEW_QUERIES, make_query_only, table_names

__all__ = [
    "COMMANDS",
    "DATABASE",
    "QUERIES",
    "browse",
    "datasette_for",
    "metadata",
    "own_names",
    "refuse_foreign_hosts",
]

# The database's name in Datasette, and so in every URL: /registry/<query>.
DATABASE = "registry"
_PLUGIN = "toolcrib-read-only"

# Canned queries (Datasette "metadata"): name -> title, description, SQL.
# Their SQL lives in the store with the rest (registry/store_review.py).
QUERIES: dict[str, dict[str, str]] = REVIEW_QUERIES


def metadata(path: Path) -> dict[str, Any]:
    """Datasette's metadata for the registry at `path`: titles and the canned queries."""
    return {
        "title": "toolcrib registry",
        "description": f"{path} (read-only)",
        "databases": {
            DATABASE: {
                "description": "Tool versions, verification evidence and the hash-chained audit log.",
                "queries": QUERIES,
                # The migrations' bookkeeping is no reading matter (and, hidden,
                # it no longer prefills the SQL box: hidden tables sort last).
                "tables": {"_sqlite_migrations": {"hidden": True}},
            }
        },
    }


# Columns shown as code (monospace, lines kept, wide enough to read), as
# text (lines kept, wrapped: a transcript) and as JSON (indented, wrapped):
# the versions' source, the audit's details.
_CODE_COLUMNS = frozenset({"source", "prelude", "snippet", "previous_source", "evidence"})
_TEXT_COLUMNS = frozenset({"transcript", "prompt"})
_JSON_COLUMNS = frozenset(
    {"details", "signature", "tests", "lock", "limits", "cases", "metadata", "expected", "actual"}
)
_CODE_STYLE = "font-family: monospace; white-space: pre; min-width: 60ch; margin: 0; overflow-x: auto"
_JSON_STYLE = "font-family: monospace; white-space: pre-wrap; overflow-wrap: anywhere; min-width: 40ch; margin: 0"


def _render_cell(value: Any, column: str, database: str) -> Any:
    """Datasette's render_cell hook: code and JSON columns of the registry
    shown readable (escaped: a tool's source is the tool author's text)."""
    if database != DATABASE or not isinstance(value, str):
        return None
    from markupsafe import Markup, escape

    if column in _CODE_COLUMNS:
        return Markup(f'<pre class="toolcrib-code" style="{_CODE_STYLE}">{escape(value)}</pre>')
    if column in _TEXT_COLUMNS:
        return Markup(f'<pre class="toolcrib-text" style="{_JSON_STYLE}">{escape(value)}</pre>')
    if column in _JSON_COLUMNS and value[:1] in "{[":
        import json

        from .common import pretty_json

        try:
            shown = pretty_json(json.loads(value))
        except ValueError:
            return None
        return Markup(f'<pre class="toolcrib-json" style="{_JSON_STYLE}">{escape(shown)}</pre>')
    return None


def _query_only(conn: sqlite3.Connection, database: str, datasette: Any) -> None:
    """Datasette's prepare_connection hook: every connection to the registry
    is query_only, on top of Datasette's own mode=ro for reads, so no query,
    canned or typed, and no other plugin can write to it."""
    if database == DATABASE:
        make_query_only(conn)


DIFF_PATH = "/-/toolcrib/diff"
_DIFF_STYLE = {"+": "background: #e6ffec", "-": "background: #ffebe9", "@": "color: #6a737d"}


def _diff_page(ref: str, found: Any) -> tuple[int, str]:
    """(status, HTML) of the diff between a version and its predecessor, escaped."""
    import difflib

    from markupsafe import escape

    current, before = found
    if current is None:
        return 404, f"<p>No version {escape(ref)} (give NAME@VERSION).</p>"
    if before is None:
        body = f"<p>{escape(current[0])} is the first version of its tool: nothing to compare.</p>"
        return 200, body
    lines = difflib.unified_diff(
        before[1].splitlines(keepends=True), current[1].splitlines(keepends=True), before[0], current[0]
    )
    shown = "".join(f'<span style="{_DIFF_STYLE.get(line[:1], "")}">{escape(line)}</span>' for line in lines) or escape(
        "(the same source)"
    )
    title = f"{escape(before[0])} → {escape(current[0])}"
    return 200, f'<h1>{title}</h1><pre class="toolcrib-diff" style="{_CODE_STYLE}">{shown}</pre>'


async def _diff_view(request: Any, datasette: Any) -> Any:
    """Datasette route: /-/toolcrib/diff?ref=NAME@VERSION."""
    from datasette.utils.asgi import Response

    from ..registry.store_review import version_and_predecessor

    ref = request.args.get("ref") or ""
    database = datasette.get_database(DATABASE)
    found = await database.execute_fn(lambda conn: version_and_predecessor(conn, ref))
    status, body = _diff_page(ref, found)
    page = f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>diff</title></head><body>{body}</body></html>'
    return Response.html(page, status=status)


def _routes() -> list[tuple[str, Any]]:
    return [(rf"^{DIFF_PATH}$", _diff_view)]


def datasette_for(path: Path) -> Any:
    """A Datasette instance serving the registry at `path` read-only, as
    DATABASE, with the canned queries (not started)."""
    from datasette import hookimpl
    from datasette.app import Datasette
    from datasette.database import Database
    from datasette.plugins import pm

    if pm.get_plugin(_PLUGIN) is None:
        # Datasette's plugins are modules (it lists them by __name__).
        plugin = ModuleType(_PLUGIN, _query_only.__doc__)
        plugin.prepare_connection = hookimpl(_query_only)  # type: ignore[attr-defined]
        plugin.render_cell = hookimpl(_render_cell)  # type: ignore[attr-defined]
        plugin.register_routes = hookimpl(_routes)  # type: ignore[attr-defined]
        pm.register(plugin, name=_PLUGIN)
    ds = Datasette(metadata=metadata(path))
    # Datasette adds an empty in-memory database when started without files:
    # the index shows the registry alone.
    if "_memory" in ds.databases:
        ds.remove_database("_memory")
    ds.add_database(Database(ds, path=str(path), is_mutable=True), name=DATABASE)
    return ds


def own_names(port: int) -> frozenset[str]:
    """The Host values that mean this server: 127.0.0.1, localhost and [::1] on its port."""
    return frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))


def refuse_foreign_hosts(app: Any, port: int) -> Any:
    """An ASGI middleware: a request whose Host is not one of `own_names`
    (421), or whose Origin is not http:// + one of them (403), never reaches
    Datasette.

    Binding loopback is not enough: a page on another origin can have its own
    name resolve to 127.0.0.1 (DNS rebinding) and then read the registry,
    audit log included, as same-origin. Its requests carry that name as Host."""
    hosts = own_names(port)
    origins = frozenset(f"http://{name}" for name in hosts)

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = _values(scope, b"host")
            if len(host) != 1 or host[0] not in hosts:  # none, or two that might be read differently
                await _refuse(scope, send, 421, "this server answers only to 127.0.0.1, localhost or [::1] on its port")
                return
            if any(origin not in origins for origin in _values(scope, b"origin")):
                await _refuse(scope, send, 403, "cross-origin requests are refused")
                return
        await app(scope, receive, send)

    return guarded


def _values(scope: dict[str, Any], name: bytes) -> list[str]:
    """Every value of one request header (ASGI gives names in lower case)."""
    return [value.decode("latin-1") for key, value in scope.get("headers") or [] if key.lower() == name]


async def _refuse(scope: dict[str, Any], send: Any, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain; charset=utf-8")]}
    )
    await send({"type": "http.response.body", "body": message.encode() + b"\n"})


def _registry_file() -> Path:
    from ..registry import default_registry_path
    from .common import State

    state = click.get_current_context().find_object(State)
    path = Path(state.registry_path).expanduser() if state and state.registry_path else default_registry_path()
    if not path.is_file():
        raise NotFound(f"no registry at {path} (run 'toolcrib init')")
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
            tables = table_names(conn)
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path} is not a toolcrib registry: {exc}") from None
    if not {"versions", "audit"} <= tables:
        raise InvalidInput(f"{path} is not a toolcrib registry (no versions or audit table)")
    return path


@click.command("browse")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port; the URL is printed).",
)
@click.option("open_browser", "--open", is_flag=True, help="Open the registry in your web browser.")
def browse(port: int, open_browser: bool) -> None:
    """Open the registry read-only in Datasette, with canned queries.

    Serves on 127.0.0.1 only, until interrupted (Ctrl-C), and answers only
    requests addressed to 127.0.0.1, localhost or [::1] on its port (a
    foreign Host or Origin header is refused: DNS rebinding). Canned queries:
    unverified versions, recent failures, calls per tool, the audit log of
    one tool (/registry/tool_audit_log?tool=NAME), and the review view: the
    review queue and one version for review (?ref=NAME@VERSION: source,
    previous source, evidence, maker, transcript, decisions; decisions
    themselves stay on the CLI and API). Needs the optional
    extra: pip install 'toolcrib[browse]' (exit 7 without it).

    \b
    Example:
        toolcrib browse --open
        toolcrib browse --port 0    # any free port; the URL goes to stderr
    """
    if importlib.util.find_spec("datasette") is None:
        raise ExtraMissing("toolcrib browse needs Datasette: pip install 'toolcrib[browse]'")
    path = _registry_file()
    ds = datasette_for(path)

    import uvicorn

    # Bound here, not by uvicorn: the port is known (and printed) before serving,
    # and connections made from now on wait in the backlog.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    app = refuse_foreign_hosts(ds.app(), bound)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    url = f"http://127.0.0.1:{bound}/{DATABASE}"
    try:
        click.echo(f"Browsing {path} read-only at {url} (Ctrl-C to stop)", err=True)
        if open_browser:
            webbrowser.open(url)
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # Ctrl-C is how this command ends, whenever it comes once the URL is
        # out: uvicorn shuts down gracefully and re-raises the signal, or it
        # came before uvicorn took it over. (SIGTERM ends the process.)
        pass
    finally:
        sock.close()


COMMANDS = [browse]
