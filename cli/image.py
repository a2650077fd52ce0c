"""`toolcrib image build|status` and `toolcrib doctor`: the Docker sandbox
image and the health of both sandbox backends.

Registered on the main group by `cli/__init__.py` as ``image_group`` and
``doctor_command``. Progress goes to stderr; results (or JSON) to stdout.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..registry.errors import SandboxUnavailable
from .common import echo_progress, echo_result, json_option, open_registry
from .exit_codes import STATUS_EXIT_CODES

__all__ = ["doctor_command", "image_group"]

# The sandbox (engine or image) cannot be used: a call's "unavailable".
_EXIT_UNAVAILABLE = STATUS_EXIT_CODES["unavailable"]


@click.group("image")
def image_group() -> None:
    """Build and inspect the Docker sandbox image."""


@image_group.command("build")
@click.option(
    "--offline", is_flag=True, help="Debootstrap a Debian base from the apt mirror instead of pulling python:3.11-slim."
)
@click.option("--force", is_flag=True, help="Rebuild even if the image for this harness is present.")
@click.option(
    "requires",
    "--requires",
    multiple=True,
    metavar="SPEC",
    help="Build the runtime image for these requirements (resolved to a lock first). Repeatable.",
)
@click.option("for_ref", "--for", metavar="REF", help="Build the runtime image for this version's stored lock.")
@json_option
def build_command(
    offline: bool, force: bool, requires: tuple[str, ...], for_ref: str | None, json_output: bool
) -> None:
    """Build the sandbox image (tagged by a hash of the harness and policy),
    or with --requires/--for a runtime image for packages on top of it.

    Does nothing when the image is already present. A runtime image holds a
    lock's wheels, installed on the host from the wheel cache and copied in
    by a build without network; every version with that lock uses it.

    \b
    Examples:
        toolcrib image build --offline
        toolcrib image build --json
        toolcrib image build --requires 'sympy>=1.12' --requires pandas
        toolcrib image build --for factor_poly@1.0.0
    """
    from ..sandbox.image import ImageBuildError, build_image

    if requires and for_ref:
        raise click.UsageError("give --requires or --for, not both")
    try:
        status = build_image(offline=offline, force=force and not (requires or for_ref), progress=echo_progress)
        if requires or for_ref:
            status = _build_runtime(requires, for_ref, force)
    except ImageBuildError as exc:
        raise SandboxUnavailable(str(exc)) from None
    echo_result(
        status,
        json_output,
        f"{status['tag']} {status.get('id')} (base {status.get('base')}, {status.get('size_mb')} MiB)",
    )


def _build_runtime(requires: tuple[str, ...], for_ref: str | None, force: bool) -> dict[str, Any]:
    """The runtime image for a lock: resolved from ``requires`` or read
    from the version ``for_ref``."""
    from ..registry.errors import InvalidInput
    from ..sandbox.image import build_runtime_image
    from ..sandbox.packages import PackagesError, resolve

    if for_ref is not None:
        tool = open_registry().get(for_ref)
        if tool.lock is None:
            raise InvalidInput(f"{tool.ref} needs no packages: it runs in the sandbox image itself")
        lock = tool.lock
    else:
        try:
            lock = resolve(list(requires), progress=echo_progress)
        except PackagesError as exc:
            raise InvalidInput(str(exc)) from None
    return build_runtime_image(lock, force=force, progress=echo_progress)


@image_group.command("status")
@json_option
def status_command(json_output: bool) -> None:
    """Show whether the engine answers and the sandbox image is present.

    Exit 6 when there is no engine or the image is missing.

    \b
    Examples:
        toolcrib image status
        toolcrib image status --json
    """
    from ..sandbox.image import image_status

    status = image_status()
    if not status["engine"]:
        if json_output:
            echo_result(status, True, "")
            sys.exit(_EXIT_UNAVAILABLE)
        raise SandboxUnavailable(status.get("error") or "no Docker engine answers")
    if status["present"]:
        text = f"{status['tag']} present: {status['id']} (base {status.get('base')}, {status.get('size_mb')} MiB)"
    else:
        text = f"{status['tag']} missing: run `toolcrib image build --offline` (or `toolcrib image build`)"
    echo_result(status, json_output, text)
    if not status["present"]:
        sys.exit(_EXIT_UNAVAILABLE)


@image_group.command("prune")
@click.option("--runtime", is_flag=True, help="Also remove every runtime image (rebuilt offline when next needed).")
@json_option
def prune_command(runtime: bool, json_output: bool) -> None:
    """Remove sandbox images built for other harness versions, and the
    runtime images built on them (none that a container uses).

    \b
    Examples:
        toolcrib image prune
        toolcrib image prune --runtime --json
    """
    from ..sandbox.image import ImageBuildError, prune_images

    try:
        removed = prune_images(runtime=runtime)
    except ImageBuildError as exc:
        raise SandboxUnavailable(str(exc)) from None
    echo_result({"removed": removed}, json_output, "\n".join(removed) or "nothing to prune")


def _layer_lines(section: dict[str, Any] | None) -> list[str]:
    """The restricted backend's jail, one line per layer."""
    if not section:
        return []
    weak = section.get("weak_allowed")
    allowed = "unknown" if weak is None else ("yes" if weak else "no")
    lines = ["", f"restricted backend layers (weak isolation allowed: {allowed}):"]
    layers = section.get("layers") or []
    if not layers:
        lines.append("  (this backend reports no layers)")
    for entry in layers:
        state = "in force" if entry["in_force"] else ("MISSING " if entry["required"] else "off     ")
        required = " (required)" if entry["required"] else ""
        lines.append(f"  {state}  {entry['layer']}{required}: {entry['detail']}")
    return lines


@click.command("doctor")
@click.option("--no-probe", is_flag=True, help="Skip running a probe container.")
@json_option
def doctor_command(no_probe: bool, json_output: bool) -> None:
    """Check the sandboxes: engine, image, limits really applied inside a
    container, and the restricted backend with each layer of its jail
    (in force or not) and whether weak isolation is allowed
    ($TOOLCRIB_ALLOW_WEAK_JAIL). Exit 6 when a check fails.

    \b
    Examples:
        toolcrib doctor
        toolcrib doctor --json
        toolcrib doctor --no-probe
    """
    from ..sandbox.doctor import doctor

    report = doctor(probe=not no_probe)
    lines = [f"{'ok  ' if c['ok'] else 'FAIL'}  {c['name']}: {c['detail']}" for c in report["checks"]]
    lines.extend(_layer_lines(report.get("restricted")))
    lines.append(f"default backend: {report['default_backend']} (when none is named)")
    echo_result(report, json_output, "\n".join(lines))
    if not report["ok"]:
        sys.exit(_EXIT_UNAVAILABLE)
