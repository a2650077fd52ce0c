"""Reviewer keys (issue 18): key generate, key trust, key list, key untrust."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import CLIError, echo_json, echo_table, echo_text, json_option, open_registry

if TYPE_CHECKING:
    from ..registry.attest import ReviewKey

__all__ = ["COMMANDS"]


def _expires_option(fn: Any) -> Any:
    return click.option(
        "--expires",
        metavar="WHEN",
        help="ISO date or time (UTC if no zone) from which the key's approvals no longer count.",
    )(fn)


def _expiring(made: ReviewKey, expires: str | None) -> ReviewKey:
    from ..registry.audit import normalize_since

    return made if expires is None else dataclasses.replace(made, expires=normalize_since(expires))


@click.group()
def key() -> None:
    """Make reviewer keys and choose which ones the registry trusts."""


@key.command(name="generate")
@click.option(
    "--out",
    "out",
    metavar="FILE",
    help="Where to write the private key (FILE.pub beside it). "
    "Default: $TOOLCRIB_KEY, else ~/.config/toolcrib/reviewer_ed25519.",
)
@click.option("--name", help="The key's name (default: the acting reviewer, --actor).")
@click.option("--no-trust", is_flag=True, help="Only make the key; do not trust it in this registry.")
@_expires_option
@json_option
def key_generate(out: str | None, name: str | None, no_trust: bool, expires: str | None, json_output: bool) -> None:
    """Make an Ed25519 reviewer key and trust it in this registry.

    The private key is written in OpenSSH format (mode 0600, never
    overwritten), its public line beside it as FILE.pub: give that to other
    registries' 'toolcrib key trust'. An existing OpenSSH Ed25519 key works
    as well: pass it to approve with --key and trust its .pub.

    \b
    Examples:
        toolcrib key generate
        toolcrib key generate --out ./alice_ed25519 --no-trust
    """
    from ..registry.attest import generate_key
    from .review import default_key_path

    path = Path(out).expanduser() if out else default_key_path()
    reg = None if no_trust else open_registry()
    made = generate_key(path, name=name or (reg.actor if reg is not None else "reviewer"))
    trusted = reg.trust_key(_expiring(made, expires)) if reg is not None else False
    if json_output:
        echo_json({"path": str(path), "public": made.openssh, "keyid": made.keyid, "trusted": trusted})
        return
    state = "trusted by this registry" if trusted else "not trusted here"
    echo_text(f"Key {made.keyid[:16]} written to {path} (public: {path}.pub), {state}")


@key.command(name="trust")
@click.argument("public")
@click.option("--name", help="A name for the key (default: the comment of its .pub line).")
@_expires_option
@json_option
def key_trust(public: str, name: str | None, expires: str | None, json_output: bool) -> None:
    """Trust a reviewer's public key: a .pub file, or its 'ssh-ed25519 AAAA...' line.

    Approvals count only when signed by a trusted key (audited: key-trust).
    Trusting a trusted key again with --expires changes its expiry: an
    approval it signed at or after that time stops counting (a key known to
    be compromised since then).

    \b
    Examples:
        toolcrib key trust alice_ed25519.pub
        toolcrib key trust ~/.ssh/id_ed25519.pub --name alice --expires 2027-06-30
    """
    from ..registry.attest import MAX_KEY_BYTES, public_key

    text = public
    candidate = Path(public).expanduser()
    if not public.startswith("ssh-ed25519 ") and candidate.exists():
        try:
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_KEY_BYTES + 1)
        except OSError as exc:
            raise CLIError(f"cannot read {candidate}: {exc.strerror}") from None
    made = _expiring(public_key(text, name=name), expires)
    added = open_registry().trust_key(made)
    if json_output:
        echo_json({"keyid": made.keyid, "name": made.name, "added": added})
    else:
        echo_text(f"{'trusted' if added else 'already trusted'}: {made.keyid} ({made.name})")


@key.command(name="list")
@json_option
def key_list(json_output: bool) -> None:
    """The reviewer keys this registry trusts.

    \b
    Example:
        toolcrib key list
    """
    keys = open_registry().reviewer_keys()
    if json_output:
        echo_json([{"keyid": k.keyid, "name": k.name, "public": k.openssh, "expires": k.expires} for k in keys])
        return
    echo_table(["KEYID", "NAME", "EXPIRES"], [(k.keyid, k.name, k.expires or "") for k in keys])


@key.command(name="untrust")
@click.argument("keyid")
def key_untrust(keyid: str) -> None:
    """Stop trusting a key (its id, or at least its first 8 digits): its approvals stop counting.

    \b
    Example:
        toolcrib key untrust 3f1c2a9b
    """
    open_registry().untrust_key(keyid)
    echo_text(f"no longer trusted: {keyid}")


COMMANDS = [key]
