"""The one contract both sandbox backends honour: what goes in (`Job`), under
which bounds (`Limits`), and what comes back (`Result`).

Everything here is plain data. A `Result` is built by the host from JSON that
the sandbox wrote; the host never holds an object the sandbox made.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

__all__ = [
    "ArgForm",
    "Backend",
    "Cancel",
    "CallMode",
    "ErrorInfo",
    "Job",
    "LIMIT_NAMES",
    "LimitName",
    "Limits",
    "Lock",
    "LockedPackage",
    "PolicyName",
    "Result",
    "Status",
    "canonical_version",
    "is_requirement",
    "lock_import_problem",
    "normalized_name",
    "wheel_name_version",
]

Status = Literal["ok", "error", "blocked", "limit", "unavailable"]
"""ok: the tool returned; error: it raised (or its result was not JSON);
blocked: the policy refused it (restricted compiler, a guard, an import);
limit: a resource limit was hit (see `Result.limit`); unavailable: the backend
could not run anything (no Docker engine, the zygote cannot start)."""

LimitName = Literal["cpu", "wall", "memory", "output", "pids", "disk"]
LIMIT_NAMES: tuple[str, ...] = ("cpu", "wall", "memory", "output", "pids", "disk")

CallMode = Literal["args", "snippet"]

PolicyName = Literal["restricted", "plain"]

ArgForm = Literal["dataframe", "ndarray"]

_STATUSES = frozenset(get_args(Status))
_MODES = frozenset(get_args(CallMode))
_POLICIES = frozenset(get_args(PolicyName))
_ARG_FORMS = frozenset(get_args(ArgForm))
_SHA256 = re.compile(r"[0-9a-f]{64}")

# -- what a lock may say (checked by its constructors, so every path that makes
# one, from `add`, a bundle, the registry's own rows or the MCP server, is
# checked the same way; see docs/packages.md "What a lock may say") ---------------
#
# Every pattern below is matched only after a length cap and is linear in the
# text it reads: fields separated by characters no field contains.

# A PEP 508 distribution name (what PEP 503 normalizes). Any spelling is
# accepted ("PyYAML", "zope.interface", as the wheel's METADATA says it);
# comparisons use the normalized form (`normalized_name`).
_DIST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")
_MAX_NAME = 200
# PEP 440, as `packaging` spells it (VERSION_PATTERN), less the surrounding
# whitespace: what `canonical_version` reads. A lock's own version must be
# the normalized form that function returns.
_PEP440 = re.compile(
    r"""
    v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?P<dev>[-_.]?dev[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_MAX_VERSION = 100
_PRE_LETTERS = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc"}
# A wheel file's tags (PEP 491 / the binary distribution format): no field
# holds "-", so the name splits on it into 5 or 6 fields.
_WHEEL_TAG = re.compile(r"[A-Za-z0-9_.]{1,200}")
_WHEEL_BUILD = re.compile(r"[0-9][A-Za-z0-9_.]{0,99}")
_MAX_FILENAME = 255
# A PEP 508 requirement without a direct reference: a name, optional extras,
# optional version specifiers, optional environment marker. No URLs, paths or
# pip options: a requirement names a package on the index the machine reaches
# and nothing else (a leading "-" would be an option to pip).
_REQ_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQ_SPEC = r"(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
_REQUIREMENT = re.compile(
    rf"^{_REQ_NAME}\s*(?:\[\s*{_REQ_NAME}(?:\s*,\s*{_REQ_NAME})*\s*\])?\s*"
    rf"(?:\(?\s*{_REQ_SPEC}(?:\s*,\s*{_REQ_SPEC})*\s*\)?)?\s*"
    r"(?:;\s*[A-Za-z0-9_ .'\"<>=!~(),-]+)?$"
)
_MAX_REQUIREMENT = 500
# An import name the zygote imports: a top-level module (no dots), ASCII.
_IMPORT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# The standard library (and the modules built into the interpreter): a lock
# never names one, so the zygote imports nothing but the lock's own wheels.
_STDLIB = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)
_PYTHON_TAG = re.compile(r"cp3[0-9]{1,2}")

# Why stdlib dataclasses and not pydantic models: these types are built on
# every call, in every process that calls a tool, including a one-shot
# `toolcrib call`, where building pydantic's first model class alone costs
# more than the rest of the start. Their checks are few and written out below.


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass's own field


def _number(owner: str, name: str, value: Any, *, integer: bool, minimum: float, inclusive: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner} {name} must be a number, got {value!r}")
    number: float | int = value
    if integer:
        if isinstance(number, float):
            if not number.is_integer():
                raise ValueError(f"{owner} {name} must be a whole number, got {value!r}")
            number = int(number)
    else:
        number = float(number)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{owner} {name} must be finite, got {value!r}")
    if number < minimum or (number == minimum and not inclusive):
        sign = ">=" if inclusive else ">"
        raise ValueError(f"{owner} {name} must be {sign} {minimum:g}, got {value!r}")
    return number


def _text(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ValueError(f"{owner} {name} must be a string, got {type(value).__name__}")


def _strings(owner: str, name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{owner}.{name} must be a list of strings")
    for item in value:
        _text(owner, name, item)
    return tuple(value)


def _environment(value: Any) -> dict[str, str]:
    """A result's environment map: string keys to string values, copied (the
    Result is frozen; a caller's dict must not change it afterwards)."""
    if not isinstance(value, dict):
        raise ValueError("result.environment must be an object of strings")
    for key, item in value.items():
        _text("result", "environment key", key)
        _text("result", f"environment[{key!r}]", item)
    return dict(value)


def _shown(value: str, cap: int = 80) -> str:
    """A value quoted for a one-line error: escaped (repr), at most `cap` characters of it."""
    return repr(value[:cap]) + ("…" if len(value) > cap else "")


def normalized_name(name: str) -> str:
    """A distribution name's PEP 503 normalized form ("Foo.Bar_baz" -> "foo-bar-baz")."""
    return re.sub(r"[-_.]+", "-", name).lower()


def canonical_version(text: str) -> str | None:
    """The PEP 440 normalized form of a version ("1.0-RC1" -> "1.0rc1",
    "2020.01" -> "2020.1"), or None when `text` is not a PEP 440 version."""
    if len(text) > _MAX_VERSION:
        return None
    match = _PEP440.fullmatch(text)
    if match is None:
        return None
    epoch = int(match["epoch"] or 0)
    parts = [f"{epoch}!" if epoch else "", ".".join(str(int(n)) for n in match["release"].split("."))]
    if match["pre"]:
        letter = match["pre_l"].lower()
        parts.append(f"{_PRE_LETTERS.get(letter, letter)}{int(match['pre_n'] or 0)}")
    if match["post"]:
        parts.append(f".post{int(match['post_n1'] or match['post_n2'] or 0)}")
    if match["dev"]:
        parts.append(f".dev{int(match['dev_n'] or 0)}")
    if match["local"]:
        local = re.split(r"[-_.]", match["local"].lower())
        parts.append("+" + ".".join(str(int(p)) if p.isdigit() else p for p in local))
    return "".join(parts)


def is_requirement(text: str) -> bool:
    """Whether `text` (stripped) is a plain PEP 508 requirement: a name with
    optional extras, versions and marker; no URL, path or pip option."""
    return 0 < len(text) <= _MAX_REQUIREMENT and _REQUIREMENT.match(text) is not None


def wheel_name_version(filename: str) -> tuple[str, str]:
    """(distribution, version) from a plain wheel file name, as the file
    spells them; ValueError (naming the field) for anything that is not one,
    a path above all (a file name never holds "/", "\\", NUL or "..", nor
    starts with ".")."""
    problem = _wheel_filename_problem(filename)
    if problem:
        raise ValueError(
            f"locked package filename must be a plain wheel file name "
            f"(name-version-python-abi-platform.whl), {problem}: {_shown(filename)}"
        )
    fields = filename[: -len(".whl")].split("-")
    return fields[0], fields[1]


def _wheel_filename_problem(filename: str) -> str:
    if not filename or len(filename) > _MAX_FILENAME:
        return f"at most {_MAX_FILENAME} characters"
    if any(c in filename for c in "/\\\0") or filename.startswith(".") or ".." in filename:
        return "not a path"
    if not filename.endswith(".whl"):
        return "ending in .whl"
    fields = filename[: -len(".whl")].split("-")
    if len(fields) not in (5, 6):
        return "with 5 or 6 fields separated by '-'"
    if not _DIST_NAME.fullmatch(fields[0]) or "-" in fields[0]:
        return "whose first field is a distribution name"
    if canonical_version(fields[1].replace("_", "-")) is None:
        return "whose second field is a PEP 440 version"
    if len(fields) == 6 and not _WHEEL_BUILD.fullmatch(fields[2]):
        return "whose build tag starts with a digit"
    if not all(_WHEEL_TAG.fullmatch(tag) for tag in fields[-3:]):
        return "whose python, abi and platform tags are letters, digits, '_' and '.'"
    return ""


def lock_import_problem(name: str) -> str:
    """Why `name` cannot be one of a lock's imports ("" when it can): a lock
    names top-level modules its wheels provide, never the standard library's."""
    if not _IMPORT_NAME.fullmatch(name) or keyword.iskeyword(name):
        return f"not a top-level module name (an identifier, no dots): {_shown(name)}"
    if name in _STDLIB:
        return f"{name!r} is a standard-library module (a lock names only modules its own wheels provide)"
    return ""


def _known_limits(names: Any) -> None:
    unknown = sorted(set(names) - set(LIMIT_NAMES))
    if unknown:
        raise ValueError(f"unknown limit {unknown[0]!r} (known: {', '.join(LIMIT_NAMES)})")


def _choice(owner: str, name: str, value: Any, choices: frozenset[str], *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value not in choices:
        raise ValueError(f"{owner} {name} must be one of {', '.join(sorted(choices))}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits for one call. Units are in the field names' docs;
    the CLI spells them `--limit cpu=2 --limit memory=512`."""

    cpu: float = 2.0
    """CPU seconds"""
    wall: float = 5.0
    """wall-clock seconds"""
    memory: int = 256
    """address space / container memory, MiB"""
    output: int = 1024
    """result JSON plus captured prints, KiB"""
    pids: int = 32
    """processes and threads (Docker backend)"""
    disk: int = 8
    """largest file / tmpfs size, MiB (0: no writes)"""

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            value = _number(
                "limit",
                name,
                getattr(self, name),
                integer=name not in ("cpu", "wall"),
                minimum=0,
                inclusive=name == "disk",
            )
            _set(self, name, value)

    def capped(self, maxima: Limits) -> Limits:
        """These limits, each lowered to at most the matching maximum."""
        return Limits(**{k: min(getattr(self, k), getattr(maxima, k)) for k in LIMIT_NAMES})

    def override(self, **changes: float | int) -> Limits:
        """A copy with some fields changed (checked; ValueError names a bad one)."""
        _known_limits(changes)
        return Limits(**{**self.to_json(), **changes})

    def to_json(self) -> dict[str, Any]:
        """The limits as a JSON object (what is stored, hashed and sent)."""
        return {name: getattr(self, name) for name in LIMIT_NAMES}

    @classmethod
    def from_json(cls, data: Any) -> Limits:
        """Limits from a JSON object; ValueError for anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"limits must be a JSON object, got {type(data).__name__}")
        _known_limits(data)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One distribution of a lock: an exact wheel, named by its file and hash.
    Checked here, whoever builds it: a PEP 508 name, a normalized PEP 440
    version, a plain wheel file name of that name and version (never a path),
    a sha256 (docs/packages.md, "What a lock may say")."""

    name: str
    version: str
    filename: str
    sha256: str

    def __post_init__(self) -> None:
        for name in ("name", "version", "filename", "sha256"):
            _text("locked package", name, getattr(self, name))
        if len(self.name) > _MAX_NAME or not _DIST_NAME.fullmatch(self.name):
            raise ValueError(f"locked package name must be a PEP 508 distribution name, got {_shown(self.name)}")
        if canonical_version(self.version) != self.version:
            raise ValueError(
                f"locked package version must be a PEP 440 version in its normalized form, got {_shown(self.version)}"
            )
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"locked package sha256 must be 64 lowercase hex digits, got {_shown(self.sha256)}")
        file_name, file_version = wheel_name_version(self.filename)
        # The wheel spec escapes "-" in both fields as "_"; compare normalized forms.
        if (
            normalized_name(file_name) != normalized_name(self.name)
            or canonical_version(file_version.replace("_", "-")) != self.version
        ):
            raise ValueError(
                f"locked package filename {_shown(self.filename)} is not a wheel of "
                f"{_shown(self.name)} {_shown(self.version)}"
            )

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "filename": self.filename, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Lock:
    """What a version needs beyond the standard library, resolved once (at
    `add`) to exact wheels: `sandbox/packages.py` makes it and turns it into
    a site directory; the backends run the version with that directory on
    its path. ``imports``: the top-level import names the packages provide
    (preloaded where the jail allows no later import): never a standard-library
    module; that the wheels provide each is checked where the wheels are
    (`packages.materialize`)."""

    requirements: tuple[str, ...]
    packages: tuple[LockedPackage, ...]
    imports: tuple[str, ...] = ()
    python: str = "cp311"

    def __post_init__(self) -> None:
        for name in ("requirements", "imports"):
            _set(self, name, _strings("lock", name, getattr(self, name)))
        if isinstance(self.packages, (str, bytes)) or not isinstance(self.packages, (list, tuple)):
            raise ValueError("lock.packages must be a list of packages")
        packages = []
        for package in self.packages:
            if isinstance(package, dict):
                keys = set(package)
                if keys != {"name", "version", "filename", "sha256"}:
                    raise ValueError(
                        f"lock.packages: a package has the fields name, version, filename and sha256, "
                        f"not {', '.join(sorted(keys))}"
                    )
                package = LockedPackage(**package)
            elif not isinstance(package, LockedPackage):
                raise ValueError(f"lock.packages: not a package: {type(package).__name__}")
            packages.append(package)
        _set(self, "packages", tuple(packages))
        _text("lock", "python", self.python)
        self._check_fields()

    def _check_fields(self) -> None:
        for requirement in self.requirements:
            if requirement != requirement.strip() or not is_requirement(requirement):
                raise ValueError(f"lock requirements: not a plain PEP 508 requirement: {_shown(requirement)}")
        for module in self.imports:
            problem = lock_import_problem(module)
            if problem:
                raise ValueError(f"lock imports: {problem}")
        seen: set[str] = set()
        for package in self.packages:
            key = normalized_name(package.name)
            if key in seen:
                raise ValueError(f"lock packages: {_shown(package.name)} is locked twice")
            seen.add(key)
        if not _PYTHON_TAG.fullmatch(self.python):
            raise ValueError(f"lock python must be a CPython tag such as 'cp311', got {_shown(self.python)}")

    def to_json(self) -> dict[str, Any]:
        """The lock as a JSON object (what is stored, hashed and carried in bundles)."""
        return {
            "requirements": list(self.requirements),
            "packages": [p.to_json() for p in self.packages],
            "imports": list(self.imports),
            "python": self.python,
        }

    @classmethod
    def from_json(cls, data: Any) -> Lock:
        """A lock from its JSON object (or JSON text); ValueError for anything else."""
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise ValueError(f"a lock must be a JSON object, got {type(data).__name__}")
        known = {"requirements", "packages", "imports", "python"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"a lock has no field {unknown[0]!r}")
        if "requirements" not in data or "packages" not in data:
            raise ValueError("a lock needs requirements and packages")
        return cls(**data)

    def digest(self) -> str:
        """sha256 over the canonical JSON of the lock: what images and
        zygotes are keyed by."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Job:
    """One call of one tool: the tool's whole source, which function to call,
    and either JSON arguments or a snippet that calls it and sets `ans`."""

    source: str
    entrypoint: str
    mode: CallMode = "args"
    args: dict[str, Any] = field(default_factory=dict)
    snippet: str | None = None
    limits: Limits = field(default_factory=Limits)
    # Docker backend only: "restricted" also applies the RestrictedPython policy
    # inside the container (defence in depth); "plain" runs the tool as Python.
    policy: PolicyName = "restricted"
    # Packages the version needs (None: the standard library only).
    lock: Lock | None = None
    # Code run in the tool's namespace before the tool (a library's shared
    # import block), or None.
    prelude: str | None = None
    # Parameters whose JSON argument becomes a pandas DataFrame or a numpy
    # array before the call (see docs/formats.md).
    arg_forms: dict[str, ArgForm] = field(default_factory=dict)
    # Snippet jobs only: the entrypoint is replaced by a stub that returns an
    # opaque object without running the tool. LATM `make` runs each use case
    # so once more: one that still gives the answer never needed the tool.
    stub_entrypoint: bool = False
    # Report what the call used, where the backend can say, as
    # Result.environment "cpu_seconds" and "memory_mib" (peak resident
    # memory above the start). LATM `make` measures the tool on its examples
    # so. The restricted backend then waits for the zygote's trailer (a few
    # ms); others may ignore it (the wall time is always there). In the wire
    # only when set, for the sandbox service's host side; the sandbox ignores it.
    measure: bool = False

    def __post_init__(self) -> None:
        _text("job", "source", self.source)
        _text("job", "entrypoint", self.entrypoint)
        _choice("job", "mode", self.mode, _MODES)
        if not isinstance(self.args, dict):
            raise ValueError("job.args must be a dict")
        _text("job", "snippet", self.snippet, optional=True)
        if isinstance(self.limits, dict):
            _set(self, "limits", Limits.from_json(self.limits))
        elif not isinstance(self.limits, Limits):
            raise ValueError("job.limits must be Limits")
        _choice("job", "policy", self.policy, _POLICIES)
        if isinstance(self.lock, dict):
            _set(self, "lock", Lock.from_json(self.lock))
        elif self.lock is not None and not isinstance(self.lock, Lock):
            raise ValueError("job.lock must be a Lock or None")
        _text("job", "prelude", self.prelude, optional=True)
        if not isinstance(self.arg_forms, dict):
            raise ValueError("job.arg_forms must be a dict")
        for name, form in self.arg_forms.items():
            _text("job", "arg_forms", name)
            _choice("job", f"arg_forms[{name!r}]", form, _ARG_FORMS)
        if self.mode == "snippet" and not self.snippet:
            raise ValueError("a snippet job needs a snippet")
        if self.mode == "args" and self.snippet is not None:
            raise ValueError("an args job takes no snippet")
        if type(self.stub_entrypoint) is not bool or (self.stub_entrypoint and self.mode != "snippet"):
            raise ValueError("job.stub_entrypoint must be a bool, and true only for a snippet job")
        if type(self.measure) is not bool:
            raise ValueError("job.measure must be a bool")

    def wire(self) -> dict[str, Any]:
        """The job as the JSON-able dict that crosses into a sandbox."""
        return (
            {
                "source": self.source,
                "entrypoint": self.entrypoint,
                "mode": self.mode,
                "args": self.args,
                "snippet": self.snippet,
                "limits": self.limits.to_json(),
                "policy": self.policy,
                "lock": self.lock.to_json() if self.lock is not None else None,
                "prelude": self.prelude,
                "arg_forms": dict(self.arg_forms),
            }
            | ({"stub_entrypoint": True} if self.stub_entrypoint else {})
            | ({"measure": True} if self.measure else {})
        )


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str
    message: str
    line: int | None = None

    def __post_init__(self) -> None:
        _text("error", "type", self.type)
        _text("error", "message", self.message)
        if self.line is not None and (isinstance(self.line, bool) or not isinstance(self.line, int)):
            raise ValueError(f"error.line must be an integer or None, got {self.line!r}")

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "line": self.line}

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo:
        if isinstance(data, ErrorInfo):
            return data
        if not isinstance(data, dict) or not {"type", "message"} <= set(data) <= {"type", "message", "line"}:
            raise ValueError("an error is an object with type, message and line")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Result:
    """What one call produced. `result` is parsed JSON (never a sandbox object)."""

    status: Status
    backend: str
    result: Any = None
    error: ErrorInfo | None = None
    limit: LimitName | None = None
    stdout: str = ""
    duration_ms: float = 0.0
    # What the backend knows of the environment the call ran in, as plain
    # strings: backend-specific facts live here, never as fields of their
    # own, so the contract does not change when a backend is added. Docker
    # puts the image id there as "image_digest" (`sha256:...`).
    environment: dict[str, str] = field(default_factory=dict)
    # The isolation layers the host knows were in force for this call
    # (e.g. "landlock", "seccomp", "netns" on the restricted backend; see
    # `toolcrib doctor`). Recorded in the audit log and verification evidence.
    layers: tuple[str, ...] = ()
    # Snippet calls only: how many calls of the entrypoint returned while the
    # snippet ran, observed inside the sandbox (LATM `make` counts a use case
    # only if it called the tool). None when not observed.
    calls: int | None = None

    def __post_init__(self) -> None:
        _choice("result", "status", self.status, _STATUSES)
        _text("result", "backend", self.backend)
        if self.error is not None:
            _set(self, "error", ErrorInfo.from_json(self.error))
        _choice("result", "limit", self.limit, frozenset(LIMIT_NAMES), optional=True)
        _text("result", "stdout", self.stdout)
        _set(
            self,
            "duration_ms",
            _number("result", "duration_ms", self.duration_ms, integer=False, minimum=0, inclusive=True),
        )
        _set(self, "environment", _environment(self.environment))
        _set(self, "layers", _strings("result", "layers", self.layers))
        if self.calls is not None:
            _set(self, "calls", _number("result", "calls", self.calls, integer=True, minimum=0, inclusive=True))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "result": self.result,
            "error": self.error.to_json() if self.error is not None else None,
            "limit": self.limit,
            "stdout": self.stdout,
            "backend": self.backend,
            "duration_ms": self.duration_ms,
            "environment": dict(self.environment),
            "layers": list(self.layers),
        }


class Cancel:
    """A caller's way to stop a job that is running, from any other thread.

    While a job runs, the backend registers how to stop it (``on_cancel``);
    ``cancel()`` runs those hooks once. A hook registered after the fact runs
    at once. Used by `toolcrib serve`, where a client may cancel a call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._hooks: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            hooks, self._hooks = list(self._hooks.values()), {}
        for hook in hooks:
            hook()

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Register `hook`; returns the function that unregisters it."""
        with self._lock:
            if not self._cancelled:
                key = self._next
                self._next += 1
                self._hooks[key] = hook

                def remove() -> None:
                    with self._lock:
                        self._hooks.pop(key, None)

                return remove
        hook()
        return lambda: None


@runtime_checkable
class Backend(Protocol):
    """A way to run jobs: everything a caller may ask of a backend, so that no
    caller asks its name or probes it for methods (`sandbox/backends.py`
    holds the table of backends by name; `sandbox/fake.py` the tests' double).

    `run` never raises for anything the tool does: every outcome, including
    "the engine is gone", is a `Result`.
    """

    name: str

    def default_policy(self, declared: PolicyName) -> PolicyName:
        """The policy a job runs under when its caller names none, given the
        one its tool declared: the restricted backend keeps the declared
        one (its policy is the boundary); Docker answers "plain" (the
        container is the boundary)."""
        ...

    def start(self) -> None:
        """Start now what the first call would otherwise start (a zygote, a
        connection); raises RuntimeError if the backend cannot run."""
        ...

    def prepare(
        self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None
    ) -> object:
        """Have the runtime a version with packages (`lock`) needs, built now
        if ``build`` allows; a no-op where a backend needs nothing ahead of
        the call. Raises `image.RuntimeImageMissing` or
        `image.ImageBuildError` when that runtime cannot be had."""
        ...

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        """Run one job. ``cancel``, when given and cancelled, kills the job's
        process (or container) as soon as possible."""
        ...

    def health(self) -> dict[str, Any]:
        """What this backend achieves on this machine, for `toolcrib doctor`:
        at least ``backend`` (its name) and ``available`` (bool), with
        ``error`` when it is not; backend-specific facts beside them."""
        ...

    def close(self) -> None: ...
