"""What each attack may end as when it runs with the policy off, inside the
jail (`test_jail.py`, and as an ordinary user in `test_jail_user.py`).

An attack that reaches for anything outside its process must end `error` or
`limit`: the jail refused it (the canaries are checked separately, for every
attack). Attacks aimed only at the RestrictedPython policy simply run as
Python once the policy is off; the ones listed here end `ok` without
touching anything outside the process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["HARMLESS_OK", "OK_IF", "REPLY_FORGERS", "attack_verdict"]

HARMLESS_OK: dict[str, str] = {
    "frame-gi-code-replace": "reads its own generator's code constants",
    "format-str-format-class": "formats a method of a class into a string",
    "format-format-map": "formats str's own __dict__ into a string",
    "format-getattr-format": "formats int's class name",
    "format-subclass-format": "formats its own module globals",
    "format-fstring-attribute": "formats its own module globals",
    "format-super-format": "formats its own class",
    "modwalk-sorted-key-getattr": "sorts a list of names",
    "modwalk-hasattr-probe": "asks json which attributes it has",
    "modwalk-dunder-module": "reads a function's module name",
    "shadow-global-getiter": "rebinds a guard name that plain Python never uses",
    "shadow-except-as": "binds a guard name",
    "shadow-walrus": "binds a guard name",
    "shadow-import-as": "binds a guard name",
    "shadow-for-target": "binds a guard name",
    "shadow-builtins-name": "replaces its own module's builtins",
    "builtins-withheld-eval": "eval of os.getcwd(): the jail's working directory, no file read",
    "import-star": "binds os's names in its own module",
    "import-private-module": "the repr of an already-imported module",
    "import-private-submodule-name": "the repr of json's decoder object",
    "helper-name-rebinds-print-collector": "binds a name the policy reserves",
    "helper-name-rebinds-temporary": "binds a name the policy reserves",
    "import-submodule": "imports an already-loaded submodule",
    "import-from-unoffered-name": "imports a class from json",
    "snippet-format-traversal": "formats a function's repr",
    "persist-setattr-facade": "changes collections in this call only (the persistence pairs check the next call)",
    "cat-rp-cve-2023-41039-format-map": "formats str's own __dict__ into a string",
    "cat-rp-guard-name-rebind-variants": "binds guard names that plain Python never uses",
}
# `ok` is also acceptable for these, when the value shows the attempt failed.
OK_IF: dict[str, tuple[str, Callable[[Any], bool]]] = {
    # os.system() returns the shell's wait status; glibc reports 127 when it
    # could not even start one.
    "builtins-subclasses-walk": ("os.system() reports that no shell ran", lambda value: value != 0),
}


# Attacks that, with the policy off, replace the json module the reply is
# encoded with: the host then sees a reply that is not JSON (and says so).
REPLY_FORGERS = frozenset({"persist-facade-poisoning", "cat-host-module-poisoning"})


def attack_verdict(attack_id: str, reply: dict[str, Any]) -> str | None:
    """Why an attack's outcome (a `Result` as a dict) is not acceptable in
    the jail; None when it is."""
    status = reply.get("status")
    if status == "ok":
        if attack_id in HARMLESS_OK:
            return None
        if attack_id in OK_IF:
            why, holds = OK_IF[attack_id]
            return None if holds(reply.get("result")) else f"{why}, but it returned {reply.get('result')!r}"
        return f"ended ok: {reply!r}"
    if status not in ("error", "limit"):
        return f"expected error or limit: {reply!r}"
    error = reply.get("error") or {}
    if status == "error" and error.get("type") == "SandboxProtocolError" and attack_id not in REPLY_FORGERS:
        return f"the host could not read the reply: {reply!r}"
    return None
