"""The command line's exit codes: the contract scripts rely on (README
"Exit codes", docs/cli.md).

Exceptions carry their code (`registry.errors`: ``ToolcribError.exit_code``,
mapped to a one-line error by the group in `cli/__init__.py`); a call's or a
verification's *outcome* is not an exception, and its status maps here
(`exit_code_for_status`). Imports nothing: `toolcrib call` reads it on its
fast path.
"""

from __future__ import annotations

__all__ = ["EXIT_CODES", "INTERNAL_ERROR", "STATUS_EXIT_CODES", "exit_code_for_status"]

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "the tool raised an error, a test case failed, or a signature, checkpoint or proof did not verify",
    2: "usage error or bad input",
    3: "not found",
    4: "refused by policy (unverified, yanked, unapproved or rejected by review, refused by the restricted compiler or a guard)",
    5: "a resource limit was hit",
    6: "the sandbox is unavailable (e.g. no Docker engine)",
    7: "an optional part of toolcrib is not installed (e.g. pip install 'toolcrib[browse]')",
    8: "the registry cannot be used at that path (read-only file or directory, not a regular file)",
}

# A bug: the last line of defence in `main` (TOOLCRIB_DEBUG=1 for a traceback).
INTERNAL_ERROR = 70

# A call outcome's status (`CallOutcome.status`, `sandbox.contract.Status`) -> its exit code.
STATUS_EXIT_CODES: dict[str, int] = {"ok": 0, "error": 1, "blocked": 4, "limit": 5, "unavailable": 6}


def exit_code_for_status(status: str) -> int:
    """The exit code for a call outcome's status (ok 0, error 1, blocked 4, limit 5, unavailable 6)."""
    return STATUS_EXIT_CODES[status]
