"""`toolcrib serve`: the registry's verified tools over the Model Context Protocol.

Built on the official `mcp` SDK's low-level `Server`, because the tool list is
data (the registry's versions, with their stored JSON Schemas), not Python
functions. What a client sees:

- ``tools/list``: the newest verified, non-yanked, non-deprecated version of
  each tool (optionally only names matching ``--tool`` globs), with
  ``inputSchema`` = the stored input schema and ``outputSchema`` = the stored
  output schema wrapped as ``{"result": ...}`` (MCP wants an object there),
  the docstring as description, and annotations saying it runs sandboxed.
- ``tools/call``: `Registry.call` on that exact version, in a worker thread
  (calls run concurrently; the Registry keeps one SQLite connection per
  thread), audited with the client's ``clientInfo`` as the actor. Every
  outcome that is the tool's (raised, blocked, limit, bad arguments, refused)
  is an ``isError`` result whose text is a headline plus the JSON ``toolcrib
  call --json`` prints, the same JSON under ``_meta["toolcrib/outcome"]``,
  and no ``structuredContent`` (clients such as the TypeScript SDK validate
  any structured content against the outputSchema, which describes only a
  success); only an unknown tool name is a protocol error. A client's
  cancellation kills the sandboxed process (`Cancel`).
- Pinned calls: ``NAME@VERSION`` (or ``NAME@sha256:PREFIX``) as the tool name,
  or the listing's ``_meta["toolcrib/sha256"]`` sent back in the call's
  ``_meta``, calls exactly that version of a served name (a deprecated one
  too); a yanked, unverified or unknown version is an ``isError`` refusal
  (`pinned_ref`).
- ``notifications/tools/list_changed``: a watcher polls the versions table and
  tells every connected client when the served set changes (a version verified,
  yanked or deprecated while the server runs); 2026-era clients get the same
  event on their ``subscriptions/listen`` stream.
- ``--allow-add``: two more tools, ``add_tool`` (registers an unverified
  version, the client as generator in its provenance) and ``verify_tool``.
  What a client adds lives in its own namespace, served to it alone
  (`ToolServer._owner`); a version of an existing tool is refused.

Transports: stdio, or streamable HTTP (``--http PORT``): any bind but
127.0.0.1, ::1 or localhost needs a bearer token, a non-loopback one also
``allow_remote`` (`check_bind`); every request's Host and Origin are checked
against an allow-list (`header_allow_list`, DNS rebinding).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

from toolcrib.exports import mcp_tool
from toolcrib.registry import Registry, ToolcribError
from toolcrib.registry.admission import admit
from toolcrib.registry.errors import InvalidInput, NotFound, PolicyRefused
from toolcrib.registry.models import CallOutcome, ProvenanceInput, ToolVersion
from toolcrib.registry.outcome import refusal
from toolcrib.sandbox.backends import Injected
from toolcrib.sandbox.contract import Cancel
from toolcrib.sandbox.default_backend import default_backend

__all__ = [
    "ADD_TOOL",
    "OUTCOME_META",
    "SHA256_META",
    "VERIFY_TOOL",
    "ServeOptions",
    "ToolServer",
    "check_bind",
    "header_allow_list",
    "is_local_name",
    "namespace_prefix",
    "pinned_ref",
    "run_http",
    "run_stdio",
]

ADD_TOOL = "add_tool"
VERIFY_TOOL = "verify_tool"
# _meta keys (MCP: an optional "label/" prefix, then a name). A failed call's
# `call --json` object; the listing's content hash, which a call may send back
# to pin that exact version.
OUTCOME_META = "toolcrib/outcome"
SHA256_META = "toolcrib/sha256"

_ADD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "source": {
            "type": "string",
            "description": "Python source defining the tool (a Markdown reply with a ```python block is accepted).",
        },
        "name": {"type": "string", "description": "Tool name (default: the entrypoint's name)."},
        "entrypoint": {"type": "string", "description": "The function to call (default: chosen from the source)."},
        "tests": {
            "type": "array",
            "items": {"type": "object"},
            "description": 'Test cases, e.g. {"args": {...}, "expected": ...} (docs/tests-format.md).',
        },
        "prompt": {"type": "string", "description": "The prompt the tool was made from, kept in its provenance."},
        "params": {
            "type": "object",
            "additionalProperties": {"enum": ["dataframe", "ndarray"]},
            "description": 'Forms of parameters without an annotation, e.g. {"table": "dataframe"}: their JSON '
            "is converted as for an annotated pd.DataFrame or np.ndarray (docs/formats.md).",
        },
    },
    "required": ["source"],
    "additionalProperties": False,
}
_VERIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ref": {"type": "string", "description": "NAME, NAME@VERSION or NAME@sha256:PREFIX."}},
    "required": ["ref"],
    "additionalProperties": False,
}


# What add_tool adds lives under NAMESPACE_name, NAMESPACE = "mcp-" + 12 hex
# digits naming the adding client (`ToolServer._owner`); names of that shape
# are served only to that client.
_OWNER_HEX = 12
_ADDED_NAME = re.compile(rf"mcp-[0-9a-f]{{{_OWNER_HEX}}}_")
_NO_SESSION = (
    "add_tool and verify_tool need a client session (stdio, or streamable HTTP with an Mcp-Session-Id), "
    "so that what this client adds is served to it alone"
)


def namespace_prefix(owner: str) -> str:
    """The start of every name a client adds: ``mcp-<owner>_``."""
    return f"mcp-{owner}_"


@dataclass(frozen=True)
class ServeOptions:
    """What `toolcrib serve` was asked for."""

    registry: Path
    backend: str = field(default_factory=default_backend)  # restricted where the Linux jail exists, else wasm
    tools: tuple[str, ...] = ()  # name globs; empty means every tool
    allow_add: bool = False
    poll_seconds: float = 1.0


def check_bind(host: str, *, allow_remote: bool, token: str | None) -> None:
    """Refuse a non-loopback bind unless explicitly allowed, and any bind but
    the local names (`is_local_name`) without a token.

    Raises InvalidInput (exit 2)."""
    if is_local_name(host):
        return
    if not _is_loopback(host) and not allow_remote:
        raise InvalidInput(
            f"refusing to listen on {host}, which is not a loopback address: pass --allow-remote (and --token) to serve other machines"
        )
    if not token:
        raise InvalidInput(
            f"listening on {host} needs a bearer token (only 127.0.0.1, ::1 and localhost are served "
            f"without one): pass --token (or set TOOLCRIB_SERVE_TOKEN)"
        )


def is_local_name(host: str) -> bool:
    """127.0.0.1, ::1 or localhost: the addresses served without a token.

    Not the whole of 127.0.0.0/8: other loopback addresses are what a
    rebinding name, a container's port mapping or a shared network namespace
    tends to reach, so they are treated like any other address."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _netloc(host: str, port: int) -> str:
    """HOST:PORT as a Host header spells it (an IPv6 address in brackets)."""
    bare = host.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def header_allow_list(
    host: str, port: int, *, extra_hosts: tuple[str, ...] = (), extra_origins: tuple[str, ...] = ()
) -> TransportSecuritySettings:
    """The Host and Origin values a server bound to HOST:PORT accepts.

    DNS rebinding (the MCP specification's transport security guidance): a
    page on another origin gets its own name resolved to this address, and
    the browser then sends that name as Host and the page's origin as Origin.
    So only names that mean this server are accepted: the bound address on
    the bound port, the loopback names when the bind covers loopback (a
    local name or a wildcard address), and what the operator adds
    (`--allow-host`, `--allow-origin`, exact values). Ports are exact: no
    ``:*`` wildcard, another port is another origin. A request without an
    Origin (not a browser's) is checked on Host alone."""
    bare = host.strip("[]")
    names = [_netloc(bare, port)]
    wildcard = bare in ("0.0.0.0", "::")
    if wildcard or is_local_name(bare):
        names += [_netloc(local, port) for local in ("127.0.0.1", "localhost", "::1")]
    if wildcard:
        names.remove(_netloc(bare, port))  # nobody connects to the wildcard address itself
    hosts = list(dict.fromkeys([*names, *extra_hosts]))
    origins = list(dict.fromkeys([*(f"http://{name}" for name in names), *extra_origins]))
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def _actor(ctx: ServerRequestContext[Any, Any]) -> str:
    params = ctx.session.client_params
    if params is None:
        return "mcp:unknown-client"
    info = params.client_info
    # The client names itself: keep it one short line in the audit log.
    name, version = (" ".join(str(part).split())[:80] for part in (info.name, info.version or ""))
    return f"mcp:{name}/{version}" if version else f"mcp:{name or 'unnamed-client'}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _error_result(data: dict[str, Any]) -> types.CallToolResult:
    error = data.get("error") or {}
    if data.get("status") == "limit":
        headline = f"{data.get('tool')} hit the {data.get('limit')} limit"
    else:
        headline = f"{data.get('status')}: {error.get('type')}: {error.get('message')}"
    # No structuredContent: the outputSchema describes a success ({"result": ...}),
    # and clients that validate it (the TypeScript SDK) would reject this one.
    return types.CallToolResult(
        content=[types.TextContent(text=f"Error: {headline}\n{json.dumps(data, ensure_ascii=False)}")],
        meta={OUTCOME_META: data},
        is_error=True,
    )


_PIN = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,63}|sha256:[0-9a-f]{4,64}")
_SHA256 = re.compile(r"[0-9a-f]{4,64}")


def pinned_ref(tool_name: str, meta: Any) -> tuple[str, str | None]:
    """(the served name, the pinned reference or None) of a tools/call.

    A client pins a version the way the registry names one: ``NAME@VERSION``
    or ``NAME@sha256:PREFIX`` as the tool name; or in the request's ``_meta``,
    the ``toolcrib/sha256`` its listing carried, or fastmcp's
    ``{"fastmcp": {"version": "1.2.0"}}`` (what ``Client.call_tool(...,
    version=)`` sends; exact versions only). MCP itself has no settled tool
    versioning (SEP-1575 proposes semver constraints, SEP-1766 content
    digests in ``_meta``). Pinned two ways at once, both must say the same.
    InvalidInput for a malformed or contradictory pin."""
    name, at, version = tool_name.partition("@")
    shown = repr(tool_name[:100])
    pins: list[str] = []
    if at:
        if not _PIN.fullmatch(version):
            raise InvalidInput(f"cannot pin {shown}: use NAME@VERSION or NAME@sha256:PREFIX (hex)")
        pins.append(version)
    meta = meta if isinstance(meta, dict) else {}
    sha = meta.get(SHA256_META)
    if sha is not None:
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise InvalidInput(
                f"_meta {SHA256_META!r} must be a lowercase hex sha256 (or a prefix of 4 digits or more)"
            )
        pins.append(f"sha256:{sha}")
    fastmcp = meta.get("fastmcp")
    wanted = fastmcp.get("version") if isinstance(fastmcp, dict) else None
    if isinstance(wanted, dict) and set(wanted) == {"eq"}:
        wanted = wanted["eq"]
    if wanted is not None:
        if not isinstance(wanted, str) or not _PIN.fullmatch(wanted) or wanted.startswith("sha256:"):
            raise InvalidInput("_meta fastmcp.version must be one exact version such as 1.2.0 (no ranges)")
        pins.append(wanted)
    if len(set(pins)) > 1:
        raise InvalidInput(f"{shown} is pinned more than one way, to different versions ({', '.join(pins)}): pin one")
    return name, f"{name}@{pins[0]}" if pins else None


def _refused(tool: str | None, err: ToolcribError) -> types.CallToolResult:
    """A call refused before it ran: `call --json`'s refusal JSON (`outcome.refusal`)."""
    return _error_result(refusal(tool, err))


class ToolServer:
    """The MCP server over one registry (serve it with `run_stdio` or `run_http`)."""

    def __init__(self, options: ServeOptions, *, backends: Mapping[str, Injected] | None = None) -> None:
        self.options = options
        # One Registry for every client and thread: each call runs under
        # `acting_as(client)`, so any number of client names costs nothing.
        # Opened up front so a wrong path fails before serving (NotFound, exit 3).
        # ``backends`` is the registry's injection seam (tests serve a FakeBackend).
        self.registry = Registry(options.registry, actor="mcp:serve", create=False, backends=backends)
        # Client namespaces (`_owner`): stdio's one client, and the salt that
        # turns an HTTP session id into a namespace without storing it.
        self._stdio_owner = secrets.token_hex(_OWNER_HEX // 2)
        self._salt = secrets.token_bytes(16)
        self._lock = threading.Lock()
        # Handshake-era client sessions, told about list changes; 2026-era
        # clients listen on the bus instead.
        self._sessions: dict[int, Any] = {}
        self._bus = InMemorySubscriptionBus()
        self._fingerprint: tuple[tuple[str, str, str], ...] = ()
        self.server: Server[Any] = Server(
            "toolcrib",
            version=_package_version(),
            instructions="Verified tools from a toolcrib registry; each call runs in a fresh sandbox.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=ListenHandler(self._bus),
        )
        self.server.middleware.append(self._track_sessions)

    # -- the registry ------------------------------------------------------------

    def close(self) -> None:
        self.registry.close()

    def served_refs(self, owner: str | None = None, *, every_owner: bool = False) -> tuple[tuple[str, str, str], ...]:
        """(name, version, sha256) of every tool served now to the client that
        owns the namespace ``owner`` (`_owner`): per name, the highest version
        that is verified, not yanked and not deprecated, among the shared
        tools and that client's own added ones (`every_owner`: everyone's,
        for the watcher's fingerprint only)."""
        served = []
        mine = namespace_prefix(owner) if owner is not None else None
        # The registry's one "newest" rule (store_versions.SERVABLE): one row per name.
        for name, version, sha256 in self.registry.servable():
            plain = name
            if _ADDED_NAME.match(name):
                if not every_owner and (mine is None or not name.startswith(mine)):
                    continue  # another client's addition: never served to this one
                plain = name[len(namespace_prefix("0" * _OWNER_HEX)) :]
            if self.options.tools and not any(fnmatch.fnmatchcase(plain, g) for g in self.options.tools):
                continue
            if self.options.allow_add and name in (ADD_TOOL, VERIFY_TOOL):
                continue  # the management tools take those names
            served.append((name, version, sha256))
        return tuple(sorted(served))

    def listings(self, owner: str | None = None) -> list[types.Tool]:
        """What tools/list returns for the registry's tools, to the client owning ``owner``."""
        return [
            self._listing(self.registry.get(f"{name}@{version}")) for name, version, _sha in self.served_refs(owner)
        ]

    def _owner(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        """The namespace of the client making this request, from an identity
        the server issued, never one the client declares (clientInfo is
        chosen by the client: two clients may send the same).

        stdio: the process's one client, a random id drawn at start. HTTP:
        the ``Mcp-Session-Id`` the server handed out at initialize (the
        transport refuses an unknown one), hashed with a per-process salt so
        that no session id, a credential while it lives, reaches the
        registry. A request without a session (the 2026-07-28 protocol's
        single-exchange HTTP) has no owner: it sees only the shared tools
        and cannot add. An added tool lives as long as its client's session;
        after that only a person sees it (`toolcrib show`, `browse`)."""
        request = ctx.request
        if request is None:
            return self._stdio_owner
        session = getattr(request, "headers", {}).get("mcp-session-id")
        if not session:
            return None
        return hashlib.sha256(self._salt + session.encode("utf-8", "surrogateescape")).hexdigest()[:_OWNER_HEX]

    def _listing(self, tool: ToolVersion) -> types.Tool:
        # The shape `export-schema --format mcp` gives (toolcrib/exports.py),
        # naming this server's backend, plus what pins the exact version.
        definition = mcp_tool(tool, backend=self.options.backend)
        definition["_meta"] = {
            "toolcrib/ref": tool.ref,
            "toolcrib/sha256": tool.sha256,
            "toolcrib/backend": self.options.backend,
        }
        return types.Tool.model_validate(definition)

    def _management_tools(self) -> list[types.Tool]:
        if not self.options.allow_add:
            return []
        writes = types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
        return [
            types.Tool(
                name=ADD_TOOL,
                title="Add a tool to the registry",
                description="Register a new tool in this client's own namespace (stored as mcp-<id>_NAME and "
                "served to this client alone, once verify_tool passes). A tool name that exists "
                "already is refused: choose a new one. Returns its reference.",
                input_schema=_ADD_SCHEMA,
                annotations=writes,
            ),
            types.Tool(
                name=VERIFY_TOOL,
                title="Verify a registered tool",
                description="Run the tests of a version this client added (NAME, NAME@VERSION or the "
                "mcp-<id>_NAME reference) in the sandbox; one that passes is served to this client.",
                input_schema=_VERIFY_SCHEMA,
                annotations=writes,
            ),
        ]

    # -- MCP handlers ------------------------------------------------------------

    async def _track_sessions(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        # Each handshake-era connection sends `notifications/initialized` once:
        # its session is where list_changed notifications go.
        if ctx.method == "notifications/initialized":
            with self._lock:
                self._sessions[id(ctx.session)] = ctx.session
        return await call_next(ctx)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        listed = await anyio.to_thread.run_sync(self.listings, self._owner(ctx))
        return types.ListToolsResult(tools=listed + self._management_tools())

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        actor = _actor(ctx)
        owner = self._owner(ctx)
        args = params.arguments or {}
        if self.options.allow_add and params.name == ADD_TOOL:
            return await self._in_thread(partial(self._add, actor, owner, args))
        if self.options.allow_add and params.name == VERIFY_TOOL:
            return await self._in_thread(partial(self._verify, actor, owner, args))
        try:
            name, pin = pinned_ref(params.name, params.meta)
        except InvalidInput as err:
            return _refused(params.name, err)
        cancel = Cancel()
        return await self._in_thread(partial(self._call_served, actor, owner, name, pin, args, cancel), cancel)

    async def _in_thread(
        self, work: Callable[[], types.CallToolResult], cancel: Cancel | None = None
    ) -> types.CallToolResult:
        try:
            # Abandoned on cancellation: the thread still finishes (and audits)
            # once the Cancel below has killed its sandbox.
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            if cancel is not None:
                cancel.cancel()
            raise

    def _call_served(
        self, actor: str, owner: str | None, name: str, pin: str | None, args: dict[str, Any], cancel: Cancel
    ) -> types.CallToolResult:
        # In the call's own worker thread: one hop off the event loop per call, not two.
        version = {served: v for served, v, _ in self.served_refs(owner)}.get(name)
        if version is None:
            raise MCPError(INVALID_PARAMS, f"unknown tool {name!r} (not served: see tools/list)")
        return self._call(actor, pin or f"{name}@{version}", args, cancel)

    def _call(self, actor: str, ref: str, args: dict[str, Any], cancel: Cancel) -> types.CallToolResult:
        try:
            with self.registry.acting_as(actor):
                outcome = self.registry.call(ref, args, backend=self.options.backend, cancel=cancel)
        except PolicyRefused as err:  # a pinned version yanked or unverified, or one gone since it was listed
            # The registry's advice (--allow-yanked, --allow-unverified) is not a client's to take.
            reason = str(err).split("; pass --allow-")[0].split(": run 'toolcrib verify")[0]
            return _refused(ref, PolicyRefused(f"{reason}: not callable over MCP (see tools/list)"))
        except ToolcribError as err:  # bad arguments; an unknown pinned version
            return _refused(ref, err)
        return self._outcome(outcome)

    @staticmethod
    def _outcome(outcome: CallOutcome) -> types.CallToolResult:
        data = outcome.to_json()
        if outcome.status != "ok":
            return _error_result(data)
        return types.CallToolResult(
            content=[types.TextContent(text=_text(outcome.result))],
            structured_content={"result": outcome.result},
            # What a fastmcp server says of a wrapped result: fastmcp's Client
            # unwraps it even for a pinned NAME@VERSION it never saw listed.
            meta={"fastmcp": {"wrap_result": True}},
        )

    def _add(self, actor: str, owner: str | None, args: dict[str, Any]) -> types.CallToolResult:
        """add_tool: a new tool in the client's own namespace, never a version
        of a tool anyone else is served. Until a person reviews additions,
        a client's tool changes what that client is served and nothing else."""
        source = args.get("source")
        if not isinstance(source, str):
            return _refused(None, InvalidInput("source must be a string"))
        if owner is None:
            return _refused(ADD_TOOL, PolicyRefused(_NO_SESSION))
        try:
            name = self._added_name(owner, source, args)
            with self.registry.acting_as(actor):
                added = self.registry.add(
                    source,
                    name=name,
                    entrypoint=args.get("entrypoint"),
                    tests=args.get("tests"),
                    provenance=ProvenanceInput(generator=actor.removeprefix("mcp:"), prompt=args.get("prompt")),
                    namespace=namespace_prefix(owner).removesuffix("_"),
                    param_forms=args.get("params"),
                )
        except ToolcribError as err:
            return _refused(str(args.get("name") or "?"), err)
        data = {
            "tool": added.tool.ref,
            "created": added.created,
            "status": added.tool.status,
            "sha256": added.tool.sha256,
            "bump": added.bump,
            "notes": added.notes,
        }
        return types.CallToolResult(content=[types.TextContent(text=json.dumps(data))], structured_content=data)

    def _added_name(self, owner: str, source: str, args: dict[str, Any]) -> str:
        """The name (within the client's namespace) an add_tool call asks for;
        PolicyRefused if a tool of that name exists outside the namespace.

        Refused rather than quietly renamed: a client that means to change a
        shared tool must learn it cannot, not find a look-alike served."""
        name = args.get("name")
        if name is None:
            name = admit(source, entrypoint=args.get("entrypoint")).entrypoint
        if not isinstance(name, str):
            raise InvalidInput("name must be a string")
        name = name.removeprefix(namespace_prefix(owner))  # the client's own tool, by the name it was given
        if self.registry.has_tool(name):
            raise PolicyRefused(
                f"{name!r} is an existing tool: a version of it cannot be added over MCP (what a client adds is "
                f"served to that client alone, under its own name, until a person reviews it); choose a new name"
            )
        return name

    def _verify(self, actor: str, owner: str | None, args: dict[str, Any]) -> types.CallToolResult:
        """verify_tool: only a version in the client's own namespace (a NAME
        without the prefix means the client's own tool of that name)."""
        ref = args.get("ref")
        if not isinstance(ref, str):
            return _refused(None, InvalidInput("ref must be a string"))
        if owner is None:
            return _refused(ref, PolicyRefused(_NO_SESSION))
        prefix = namespace_prefix(owner)
        own_ref = ref if ref.startswith(prefix) else prefix + ref
        try:
            with self.registry.acting_as(actor):
                result = self.registry.verify(own_ref, backend=self.options.backend)
        except NotFound:
            return _refused(
                ref,
                NotFound(f"{ref!r} is not a tool this client added: verify_tool verifies only those (this session's)"),
            )
        except ToolcribError as err:
            return _refused(ref, err)
        data = result.model_dump(mode="json")
        text = f"{result.tool}: {result.status} ({result.passed}/{result.passed + result.failed} passed)"
        return types.CallToolResult(
            content=[types.TextContent(text=text)], structured_content=data, is_error=result.status != "verified"
        )

    # -- following the registry ----------------------------------------------------

    async def watch(self) -> None:
        """Poll the served set; on a change, tell every client (list_changed)."""
        # Everyone's tools: a client is told when its own addition is verified
        # (the others then re-list and find nothing new).
        everything = partial(self.served_refs, every_owner=True)
        self._fingerprint = await anyio.to_thread.run_sync(everything)
        while True:
            await anyio.sleep(self.options.poll_seconds)
            current = await anyio.to_thread.run_sync(everything)
            if current != self._fingerprint:
                self._fingerprint = current
                await self._announce()

    async def _announce(self) -> None:
        with self._lock:
            sessions = list(self._sessions.items())
        for key, session in sessions:
            try:
                with anyio.fail_after(5):
                    await session.send_tool_list_changed()
            except Exception:  # noqa: BLE001 - that client is gone: forget it
                with self._lock:
                    self._sessions.pop(key, None)
        await self._bus.publish(ToolsListChanged())

    def initialization_options(self) -> Any:
        return self.server.create_initialization_options(NotificationOptions(tools_changed=True))

    def warm_up(self) -> None:
        """Start the backend now so the first call does not pay for it (failures show on the first call)."""
        try:
            self.registry.backend(self.options.backend).start()
        except Exception:  # noqa: BLE001 - a call reports an unavailable sandbox itself
            pass


def _package_version() -> str:
    from toolcrib import __version__

    return __version__


async def run_stdio(server: ToolServer) -> None:
    """Serve one client on stdin/stdout until it disconnects."""
    await anyio.to_thread.run_sync(server.warm_up)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.watch)
        async with stdio_server() as (read_stream, write_stream):
            await server.server.run(read_stream, write_stream, server.initialization_options())
        tg.cancel_scope.cancel()


_ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


def _check_headers(app: _ASGIApp, settings: TransportSecuritySettings) -> _ASGIApp:
    """Refuse every HTTP request whose Host (421) or Origin (403) is not on the
    allow-list, whatever its path, before authentication or any handler.

    The SDK's transport checks the same settings on its MCP endpoint; this
    outer door covers every other path too, with the SDK's own validation."""
    security = TransportSecurityMiddleware(settings)
    # The SDK logs each refused value as a warning, raw: a rebinding page
    # would write its chosen Host (escape sequences included) to the
    # operator's terminal, once per request. The refusal is the answer.
    logging.getLogger(TransportSecurityMiddleware.__module__).setLevel(logging.ERROR)

    async def guarded(
        scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] in ("http", "websocket"):
            from starlette.requests import Request

            refusal = await security.validate_request(Request({**scope, "type": "http"}))
            if refusal is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await refusal(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


# OAuth discovery and the endpoints an OAuth client falls back to when
# discovery finds nothing (the MCP authorization spec's legacy defaults).
_OAUTH_PATHS = re.compile(
    r"/\.well-known/(oauth-protected-resource|oauth-authorization-server|openid-configuration)(/.*)?"
    r"|/(authorize|token|register)"
)
_NOT_OAUTH = (
    b'{"error": "not_found", "error_description": "toolcrib serve takes a static bearer token, not OAuth: '
    b'send the header Authorization: Bearer <the --token value>"}'
)


def _require_token(app: _ASGIApp, token: str) -> _ASGIApp:
    """Refuse any HTTP request without ``Authorization: Bearer <token>`` (401).

    The token is a static secret, not OAuth (MCP's authorization spec is
    optional, and toolcrib has no authorization server to name), so the 401
    is RFC 6750's plain challenge, ``Bearer realm="toolcrib"``, with no
    ``resource_metadata``; a wrong token adds ``error="invalid_token"`` and a
    description. An OAuth-capable client (the MCP Inspector, any TypeScript
    SDK client given an auth provider) still probes discovery after a 401:
    the discovery documents and the fallback endpoints answer 404 saying
    so, without the token (they reveal nothing), so its attempt ends there
    with that message instead of registering a client and opening a
    browser. Configure the client with the header instead (docs/mcp.md)."""
    expected = f"Bearer {token}".encode()

    async def guarded(
        scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] == "http":
            if _OAUTH_PATHS.fullmatch(scope.get("path") or ""):
                await _answer(send, 404, [], _NOT_OAUTH)
                return
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                challenge = b'Bearer realm="toolcrib"'
                if given:
                    challenge += b', error="invalid_token", error_description="this is not the server\'s --token"'
                body = b'{"error": "a valid bearer token is required (Authorization: Bearer <the --token value>)"}'
                await _answer(send, 401, [(b"www-authenticate", challenge)], body)
                return
        await app(scope, receive, send)

    return guarded


async def _answer(
    send: Callable[[Any], Awaitable[None]], status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def run_http(
    server: ToolServer,
    host: str,
    port: int,
    token: str | None,
    announce: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    *,
    allow_hosts: tuple[str, ...] = (),
    allow_origins: tuple[str, ...] = (),
) -> None:
    """Serve streamable HTTP at http://HOST:PORT/mcp until interrupted.

    The socket is bound here (port 0 picks a free one) and its real address
    announced on stderr before the first request can arrive. Every request's
    Host and Origin are checked against `header_allow_list` (built from the
    bound port, plus ``allow_hosts``/``allow_origins``), then its token."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on an accepted
    # socket only when its protocol says TCP (base_events._set_nodelay), and an
    # accepted socket inherits the listener's. Without it Nagle's algorithm held
    # each response's last small write for the client's delayed ACK: ~40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    bound_port = sock.getsockname()[1]
    settings = header_allow_list(host, bound_port, extra_hosts=allow_hosts, extra_origins=allow_origins)
    # JSON responses: each request's answer is one HTTP body, not an SSE
    # stream of several small writes (each waking the client): a TypeScript
    # client's warm call took 3.7 ms instead of 6.3 (bench/README.md). Nothing
    # toolcrib answers streams: list_changed goes on the session's GET stream
    # or a 2026 client's subscriptions/listen, cancellation is a notification.
    app: Any = server.server.streamable_http_app(host=host, transport_security=settings, json_response=True)
    if token:
        app = _require_token(app, token)
    app = _check_headers(app, settings)  # outermost: a foreign name learns nothing, not even that a token is needed
    from toolcrib.mcp_http_writes import http_protocol

    # httptools' parser, its request head bounded as h11's is; one write per
    # answer, head and body together, sent at once (toolcrib/mcp_http_writes.py).
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, http=http_protocol())
    web = uvicorn.Server(config)
    await anyio.to_thread.run_sync(server.warm_up)
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    announce(f"toolcrib serve: listening on http://{shown}:{bound_port}/mcp")
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.watch)
            await web.serve(sockets=[sock])
            tg.cancel_scope.cancel()
    finally:
        sock.close()  # uvicorn leaves a socket it was handed open
