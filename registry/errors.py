"""Every exception toolcrib raises on purpose, in one place.

Each carries the CLI exit code it maps to, so the CLI has one rule:
``sys.exit(err.exit_code)`` after printing ``Error: <message>`` on one line.
What each code means, and the codes of call outcomes, are the CLI's own
table (`toolcrib/cli/exit_codes.py`).

    ToolcribError                 base; exit 1
    ├── InvalidInput              exit 2: bad source, arguments, reference syntax, files, bundles
    │   ├── AdmissionError        the source was refused at `add` (names the line)
    │   ├── ArgumentsError        call arguments do not match the input schema (names each field)
    │   ├── TestsFormatError      a tests file is not a valid list of cases
    │   ├── BundleError           an export bundle is malformed or its digests do not match
    │   └── ConflictError         e.g. an explicit --version that is already taken
    ├── NotFound                  exit 3: no such tool, version or reference
    ├── PolicyRefused             exit 4: unverified, yanked or unapproved version refused by policy
    ├── VerificationFailed        exit 1: a signature, statement, checkpoint or proof does not verify
    ├── SandboxUnavailable        exit 6: the backend could not run anything
    ├── ExtraMissing              exit 7: an optional part is not installed (e.g. toolcrib[browse])
    └── RegistryUnusable          exit 8: the registry path cannot be opened and written (read-only, not a file)

Exit code 1 (the tool raised, a test failed) and 5 (a resource limit) come from
call and verify *results*, not exceptions; the CLI maps them
(`cli.exit_codes.exit_code_for_status`).
"""

from __future__ import annotations

__all__ = [
    "AdmissionError",
    "ArgumentsError",
    "BundleError",
    "ConflictError",
    "ExtraMissing",
    "InvalidInput",
    "NotFound",
    "PolicyRefused",
    "RegistryUnusable",
    "SandboxUnavailable",
    "TestsFormatError",
    "ToolcribError",
    "VerificationFailed",
]


class ToolcribError(Exception):
    """Base of every deliberate toolcrib error."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(ToolcribError):
    exit_code = 2


class AdmissionError(InvalidInput):
    """The source was refused at admission. `line` is 1-based where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


class ArgumentsError(InvalidInput):
    """Arguments did not validate. `fields` maps each bad field to why."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class TestsFormatError(InvalidInput):
    __test__ = False  # not a pytest class


class BundleError(InvalidInput):
    pass


class ConflictError(InvalidInput):
    pass


class NotFound(ToolcribError):
    exit_code = 3


class PolicyRefused(ToolcribError):
    exit_code = 4


class VerificationFailed(ToolcribError):
    """Something offered as proof was read but does not hold: a forged or
    unknown-key signature, a statement about another digest, a checkpoint of
    another log, a tampered proof (issue 18). Exit 1; unreadable input is
    InvalidInput (exit 2)."""

    exit_code = 1


class SandboxUnavailable(ToolcribError):
    exit_code = 6


class ExtraMissing(ToolcribError):
    """A command needs an optional extra that is not installed; the message
    names the pip command that installs it."""

    exit_code = 7


class RegistryUnusable(ToolcribError):
    """The registry path is there (or its directory is) but cannot serve as a
    registry: a read-only file, directory or file system, a directory,
    /dev/null, a /proc file. Every command refuses it, read commands too:
    SQLite's WAL journal writes beside the file even to read it."""

    exit_code = 8
