"""What identifies a tool version: its content hash, its semantic version, and
the references users write to pick one. Pure functions, no database.

The canonical form and the reference grammar are specified in docs/formats.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..sandbox.contract import Lock
from .errors import InvalidInput

if TYPE_CHECKING:  # annotations only: a call reads versions without building models
    from .models import Signature, TestCase

__all__ = [
    "DEFAULT_POLICY",
    "MAX_REFERENCE_CHARS",
    "MAX_VERSION_CHARS",
    "MIN_SHA_PREFIX",
    "Reference",
    "SemVer",
    "TOOL_FORMAT",
    "canonical_json",
    "content_sha256",
    "next_version",
    "parse_json_text",
    "parse_reference",
    "parse_version",
    "sha256_text",
    "stored_lock",
    "tool_content",
]

TOOL_FORMAT = "toolcrib.tool/v1"

# The fields of toolcrib.tool/v1 that are hashed, named here rather than read
# from the models: a field added to `Signature` or `TestCase` later (a new
# option, a cache) must not change the hash of any version already stored.
# A change to what is hashed is a new TOOL_FORMAT.
SIGNATURE_FIELDS_V1: tuple[str, ...] = ("input_schema", "output_schema", "untyped", "description")
TEST_FIELDS_V1: tuple[str, ...] = ("name", "args", "snippet", "expected", "comparator", "tolerance")


def _fields(dumped: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: dumped.get(name) for name in names}


# The policy a version gets when it declares none. The canonical form names a
# version's policy only when it differs, so every version stored before
# policies could be declared keeps its content hash.
DEFAULT_POLICY = "restricted"
MIN_SHA_PREFIX = 7

_NAME = r"[a-zA-Z0-9_-]{1,64}"
_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = rf"{_NUM}\.{_NUM}\.{_NUM}(?:-{_IDENT}(?:\.{_IDENT})*)?"
_SEMVER_RE = re.compile(rf"^({_NUM})\.({_NUM})\.({_NUM})(?:-({_IDENT}(?:\.{_IDENT})*))?$")
_REF_RE = re.compile(rf"^(?P<name>{_NAME})(?:@(?:sha256:(?P<prefix>[0-9a-fA-F]+)|(?P<version>{_SEMVER})))?$")


def canonical_json(value: Any) -> str:
    """The one JSON text of a value: sorted keys, no insignificant whitespace,
    UTF-8 characters kept as they are, NaN/Infinity refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_json_text(text: str, limit: int, *, too_large: str, not_json: str) -> Any:
    """`text` (from outside: a file, an argument) read as JSON, bounded:
    InvalidInput(too_large) beyond `limit` bytes of UTF-8, InvalidInput(not_json)
    if it is not JSON or nests too deep to read."""
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        raise InvalidInput(too_large)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(not_json) from None


def sha256_text(text: str) -> str:
    """Hex sha256 of the UTF-8 bytes of `text`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tool_content(
    source: str,
    entrypoint: str,
    signature: Signature,
    tests: Iterable[TestCase],
    policy: str = DEFAULT_POLICY,
    lock: Lock | None = None,
    prelude: str | None = None,
) -> dict[str, Any]:
    """The object whose canonical JSON is hashed: the fields of
    `SIGNATURE_FIELDS_V1` and `TEST_FIELDS_V1` written out, defaults
    included, so two registries always agree on the bytes. The
    declared policy is the one exception: present only when it is not the
    default (`DEFAULT_POLICY`), so older versions' hashes stay what they were
    while a version declaring "plain" can never share a hash with its
    "restricted" twin. The same holds for a version's lock (the exact wheels
    its requirements resolved to) and its prelude (code run before the tool):
    each is present only when the version has one, and then changes the hash."""
    content: dict[str, Any] = {
        "format": TOOL_FORMAT,
        "source": source,
        "entrypoint": entrypoint,
        "signature": _fields(signature.model_dump(mode="json"), SIGNATURE_FIELDS_V1),
        "tests": [_fields(case.model_dump(mode="json"), TEST_FIELDS_V1) for case in tests],
    }
    if policy != DEFAULT_POLICY:
        content["policy"] = policy
    if lock is not None:
        content["lock"] = lock.to_json()
    if prelude is not None:
        content["prelude"] = prelude
    return content


def content_sha256(
    source: str,
    entrypoint: str,
    signature: Signature,
    tests: Iterable[TestCase],
    policy: str = DEFAULT_POLICY,
    lock: Lock | None = None,
    prelude: str | None = None,
) -> str:
    """The content address of a tool version (hex sha256 of its canonical form)."""
    return sha256_text(canonical_json(tool_content(source, entrypoint, signature, tests, policy, lock, prelude)))


def stored_lock(ref: str, text: str | None) -> Lock | None:
    """A version's lock as stored (None: no lock). The contract checks it like
    any other lock; one it refuses (stored before those checks, e.g. from a
    forged bundle) is InvalidInput naming the version, never a crash."""
    if not text:
        return None
    try:
        return Lock.from_json(text)
    except ValueError as exc:
        raise InvalidInput(
            f"{ref}: its stored lock is refused: {exc} (add the tool again with its requirements)"
        ) from None


@dataclass(frozen=True)
class SemVer:
    """A semantic version MAJOR.MINOR.PATCH[-PRERELEASE] (build metadata is refused:
    it would let two distinct version strings share one precedence)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.prerelease)}" if self.prerelease else core

    def key(self) -> tuple[Any, ...]:
        """Sort key implementing semver 2.0 precedence."""
        # A release sorts after all its prereleases; numeric identifiers sort
        # numerically and before alphanumeric ones.
        pre: tuple[Any, ...] = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: SemVer) -> bool:
        return self.key() < other.key()

    def __le__(self, other: SemVer) -> bool:
        return self.key() <= other.key()

    def __gt__(self, other: SemVer) -> bool:
        return self.key() > other.key()

    def __ge__(self, other: SemVer) -> bool:
        return self.key() >= other.key()


# Longest version string and reference read: checked before the pattern or
# int() sees them, so a version of 5,000 digits (past Python's int-to-string
# limit) is a clean InvalidInput, and a message never quotes a megabyte.
MAX_VERSION_CHARS = 128
MAX_REFERENCE_CHARS = 64 + 1 + MAX_VERSION_CHARS


def _quoted(text: object) -> str:
    shown = repr(text)
    return shown if len(shown) <= 60 else f"{shown[:50]}... ({len(str(text))} characters)"


def parse_version(text: str) -> SemVer:
    """Parse a semantic version; InvalidInput if it is not one (or is longer
    than MAX_VERSION_CHARS)."""
    if isinstance(text, str) and len(text) > MAX_VERSION_CHARS:
        raise InvalidInput(f"invalid version {_quoted(text)}: longer than {MAX_VERSION_CHARS} characters")
    match = _SEMVER_RE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise InvalidInput(f"invalid version {_quoted(text)}: expected MAJOR.MINOR.PATCH[-PRERELEASE], e.g. 1.2.0")
    major, minor, patch, pre = match.groups()
    return SemVer(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())


def next_version(current: SemVer, kind: Literal["major", "minor", "patch"]) -> SemVer:
    """The version after `current` for a change of that kind.

    From a prerelease, the release it leads up to comes next when that is
    enough (1.2.0-rc.1 + minor = 1.2.0), as npm's `semver.inc` does.
    """
    m, n, p = current.major, current.minor, current.patch
    pre = bool(current.prerelease)
    if kind == "major":
        return SemVer(m, 0, 0) if pre and n == 0 and p == 0 else SemVer(m + 1, 0, 0)
    if kind == "minor":
        return SemVer(m, n, 0) if pre and p == 0 else SemVer(m, n + 1, 0)
    if kind == "patch":
        return SemVer(m, n, p) if pre else SemVer(m, n, p + 1)
    raise ValueError(f"unknown bump kind {kind!r}")


@dataclass(frozen=True)
class Reference:
    """A parsed reference: NAME, NAME@VERSION or NAME@sha256:PREFIX."""

    name: str
    version: str | None = None
    sha_prefix: str | None = None

    @property
    def pinned(self) -> bool:
        return self.version is not None or self.sha_prefix is not None

    def __str__(self) -> str:
        if self.version:
            return f"{self.name}@{self.version}"
        if self.sha_prefix:
            return f"{self.name}@sha256:{self.sha_prefix}"
        return self.name


def parse_reference(ref: str) -> Reference:
    """Parse a reference; InvalidInput naming the accepted forms if malformed."""
    match = _REF_RE.fullmatch(ref) if isinstance(ref, str) and len(ref) <= MAX_REFERENCE_CHARS else None
    if not match:
        raise InvalidInput(
            f"invalid reference {_quoted(ref)}: expected NAME, NAME@VERSION (e.g. add@1.2.0) "
            f"or NAME@sha256:HEX (at least {MIN_SHA_PREFIX} hex digits)"
        )
    prefix = match.group("prefix")
    if prefix is not None:
        if not MIN_SHA_PREFIX <= len(prefix) <= 64:
            raise InvalidInput(f"invalid reference {ref!r}: a sha256 prefix needs {MIN_SHA_PREFIX} to 64 hex digits")
        prefix = prefix.lower()
    return Reference(match.group("name"), match.group("version"), prefix)
