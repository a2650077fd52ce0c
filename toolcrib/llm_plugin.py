"""toolcrib's plugin for Simon Willison's `llm`: the registry's verified
tools as `llm` tools (docs/guide.md, "With llm").

    llm tools list                         # the verified tools, with their parameters
    llm -m gpt-4.1-mini -T sort_words 'sort: pear apple fig'
    llm chat -m claude-sonnet-4.5 -T sort_words -T days_between

Installed with toolcrib (the ``llm`` entry point in pyproject.toml; `llm`
is a dependency). The registry is ``$TOOLCRIB_REGISTRY``, else the CLI's
default (~/.local/share/toolcrib/registry.db); with no registry there, no
tools are registered (none is created).

Each call runs in the sandbox (the restricted backend), held to the version's
stored input schema, and is audited as actor ``llm:MODEL`` (the model that
asked for it). A call that does not come back "ok" (the tool raised, bad
arguments, a limit, a refusal) raises here, so `llm` hands the model the
message as the tool's error. One `Registry`, and so one warm sandbox, serves
the whole process: every call of an `llm` conversation or chain.

Importing this module costs nothing (`llm` loads every plugin on start):
the registry is opened on the first `register_tools`.
"""

from __future__ import annotations

import inspect
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llm

if TYPE_CHECKING:
    from toolcrib.registry import Registry
    from toolcrib.registry.models import ToolVersion

__all__ = ["ToolcribCallError", "close_shared_registries", "register_tools", "shared_registry"]

_lock = threading.Lock()
_shared: dict[str, Registry] = {}


def _registry_path() -> Path:
    given = os.environ.get("TOOLCRIB_REGISTRY")
    if given:
        return Path(given).expanduser()
    from toolcrib.registry import default_registry_path

    return default_registry_path()


def shared_registry() -> Registry | None:
    """The one Registry this process's tools run on (opened once, at the
    registry's path then; None when there is no registry there)."""
    path = _registry_path()
    key = str(path.resolve()) if path.exists() else str(path)
    with _lock:
        if key in _shared:
            return _shared[key]
        if not path.is_file():
            return None
        from toolcrib.registry import Registry

        registry = Registry(path, actor="llm")
        _shared[key] = registry
        return registry


def _model_id() -> str:
    """The id of the model whose tool call is running: the `llm` response
    executing the calls is up the stack (`Response.execute_tool_calls`)."""
    frame = inspect.currentframe()
    try:
        depth = 0
        while frame is not None and depth < 40:
            owner = frame.f_locals.get("self")
            model = getattr(owner, "model", None) if frame.f_code.co_name == "execute_tool_calls" else None
            model_id = getattr(model, "model_id", None)
            if isinstance(model_id, str) and model_id:
                return model_id
            frame = frame.f_back
            depth += 1
    finally:
        del frame
    return "unknown"


class ToolcribCallError(Exception):
    """A call that did not come back "ok": its message is what the model reads."""


def _failure(outcome: Any) -> str:
    error = outcome.error
    if outcome.status == "limit":
        return f"{outcome.tool} hit its {outcome.limit} limit" + (f": {error.message}" if error else "")
    if error is not None:
        where = f" (line {error.line})" if getattr(error, "line", None) else ""
        return f"{outcome.tool} raised {error.type}: {error.message}{where}"
    return f"{outcome.tool}: {outcome.status}"


_PYTHON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": None,
}


def _python_type(schema: Any) -> Any:
    """A Python type naming a property schema's JSON type, for the signature
    `llm tools list` prints (Any where there is no one type)."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, str) and kind in _PYTHON_TYPES:
        return _PYTHON_TYPES[kind]
    return Any


def _signature(input_schema: dict[str, Any], output_schema: dict[str, Any] | None) -> inspect.Signature:
    """The tool's parameters, in declaration order, with their JSON types
    and defaults: what `llm tools list` shows."""
    required = set(input_schema.get("required") or [])
    parameters = []
    for name, prop in (input_schema.get("properties") or {}).items():
        if not name.isidentifier():
            continue
        default: Any = inspect.Parameter.empty
        if name not in required:
            default = prop.get("default") if isinstance(prop, dict) else None
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=_python_type(prop))
        )
    returns = _python_type(output_schema) if output_schema is not None else inspect.Signature.empty
    return inspect.Signature(parameters, return_annotation=returns)


def _implementation(registry: Registry, ref: str) -> Any:
    def run(**arguments: Any) -> Any:
        from toolcrib.registry.errors import ToolcribError

        with registry.acting_as(f"llm:{_model_id()}"):
            try:
                outcome = registry.call(ref, arguments)
            except ToolcribError as exc:  # refused, bad arguments, not found: audited already
                raise ToolcribCallError(exc.message) from None
        if outcome.status != "ok":
            raise ToolcribCallError(_failure(outcome))
        return outcome.result

    return run


def _tool(registry: Registry, version: ToolVersion, name: str) -> llm.Tool:
    from toolcrib.exports import export_definitions
    from toolcrib.provider_schemas import provider_schema

    # The MCP form's description; the stored input schema (in declaration
    # order, what a call is held to) without titles and toolcrib's x- marks,
    # as every provider export sends it.
    definition = export_definitions([version], "mcp").definitions[0]
    schema = provider_schema(definition["inputSchema"])
    schema.pop("description", None)
    implementation = _implementation(registry, version.ref)
    implementation.__signature__ = _signature(schema, version.signature.output_schema)
    implementation.__name__ = name
    implementation.__doc__ = definition["description"]
    return llm.Tool(
        name=name, description=definition["description"], input_schema=schema, implementation=implementation
    )


@llm.hookimpl
def register_tools(register: Any) -> None:
    """Every verified, live tool of the registry (its newest version)."""
    registry = shared_registry()
    if registry is None:
        return
    from toolcrib.exports import portable_name

    for version in registry.list():
        if version.status != "verified" or version.yanked or not registry.review_allows(version.ref):
            continue  # an unapproved version (human review, issue 18) is not offered either
        register(_tool(registry, version, portable_name(version.name)))


def close_shared_registries() -> None:
    """Close the registries the plugin opened (tests; a process's end does it too)."""
    with _lock:
        registries = list(_shared.values())
        _shared.clear()
    for registry in registries:
        registry.close()
