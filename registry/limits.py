"""The registry's maximum limits: the operator's choice, kept in the registry file.

A version declares its limits (`add --limit`, a bundle); a caller may ask
for others (`call --limit`). Neither may go past the registry's maxima, and
those are set by whoever runs the registry (`toolcrib limits --max
output=4096`, audited as a ``setting`` event), never by a tool's author: a
version that declares more is *clamped at call time*, each limit lowered to
the maximum (its declaration stays as it was stored, part of its content
hash, so bundles move between registries with other maxima unchanged).
`toolcrib show` prints what a version declared and what this registry
grants it; each call's audit entry names the limits that were lowered.

The output maximum bounds the host as well as the tool: the host reads a
reply of at most that many bytes (and one JSON value per
`sandbox.inside.wire.VALUE_BYTES` of it), so its memory for one call stays within
a small multiple of this number (docs/sandbox-restricted.md).

Stored in the ``settings`` table (migration m005), one row per limit the
operator set, key ``limits.max.<name>``; a limit without a row has its
default maximum (`DEFAULT_MAX_LIMITS`). Plain sqlite3, no models: the call
path reads the maxima on every call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from ..sandbox.contract import LIMIT_NAMES, Limits
from .errors import InvalidInput
from .store_settings import delete_setting, put_setting, settings_with_prefix

__all__ = ["DEFAULT_MAX_LIMITS", "KEY_PREFIX", "granted", "operator_maxima", "set_maxima", "stored_maxima"]

# The maxima of a registry whose operator set none. Output: 1 MiB, the
# default a version gets anyway (contract.Limits); a tool that needs more
# needs the operator to allow it.
DEFAULT_MAX_LIMITS = Limits(cpu=60, wall=120, memory=4096, output=1024, pids=256, disk=256)
KEY_PREFIX = "limits.max."


def stored_maxima(conn: sqlite3.Connection) -> Limits:
    """The registry's maxima: what the operator set, the defaults for the rest.
    A stored value that is not a valid limit (edited by hand) is ignored."""
    maxima = DEFAULT_MAX_LIMITS
    for key, value, _by, _at in settings_with_prefix(conn, KEY_PREFIX):
        name = str(key)[len(KEY_PREFIX) :]
        try:
            maxima = maxima.override(**{name: _number(value)})
        except ValueError:
            continue
    return maxima


def operator_maxima(conn: sqlite3.Connection) -> dict[str, Any]:
    """Each limit the operator set, with who set it and when."""
    return {
        key[len(KEY_PREFIX) :]: {"value": _number(value), "set_by": by, "set_at": at}
        for key, value, by, at in settings_with_prefix(conn, KEY_PREFIX)
    }


def _number(text: Any) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def set_maxima(
    conn: sqlite3.Connection,
    *,
    actor: str,
    changes: Mapping[str, float] | None = None,
    unset: tuple[str, ...] | list[str] = (),
) -> Limits:
    """Set some maxima (``changes``) and return others to their defaults
    (``unset``), in one transaction with one audit entry per setting
    (event ``setting``, as `toolcrib model` writes). Returns the new maxima.
    InvalidInput names an unknown limit or a value that is not one."""
    changes = dict(changes or {})
    for name in [*changes, *unset]:
        if name not in LIMIT_NAMES:
            raise InvalidInput(f"unknown limit {name!r} (known: {', '.join(LIMIT_NAMES)})")
    both = sorted(set(changes) & set(unset))
    if both:
        raise InvalidInput(f"limit {both[0]!r} is both set and unset")
    try:
        checked = Limits().override(**changes).to_json() if changes else {}
    except ValueError as exc:
        raise InvalidInput(f"invalid maximum: {exc}") from None
    # Here: reading the maxima (every call, `show`) needs neither.
    from .audit import append_row
    from .store import write_transaction

    with write_transaction(conn):
        for name in changes:
            key, value = KEY_PREFIX + name, checked[name]
            put_setting(conn, key, str(value), actor=actor)
            append_row(conn, actor=actor, event="setting", details={"key": key, "value": value})
        for name in unset:
            key = KEY_PREFIX + name
            delete_setting(conn, key)
            append_row(
                conn,
                actor=actor,
                event="setting",
                details={"key": key, "value": None, "default": getattr(DEFAULT_MAX_LIMITS, name)},
            )
    return stored_maxima(conn)


def granted(declared: Limits | None, maxima: Limits) -> tuple[Limits, dict[str, float | int]]:
    """What a version gets on this registry: its declared limits (else the
    defaults), each lowered to the maximum; and the declared values that
    were lowered (name -> what the version asked for)."""
    base = declared or Limits()
    lowered = {name: getattr(base, name) for name in LIMIT_NAMES if getattr(base, name) > getattr(maxima, name)}
    return base.capped(maxima), lowered
