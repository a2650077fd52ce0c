"""A lock is validated wherever it comes from, and installing it stays inert.

Locks are forged three ways: through the contract directly (`Lock`,
`LockedPackage`), through `toolcrib import` of a hand-edited bundle whose
digests the forger recomputed, and through `toolcrib add --requires` of
packages in a local index the test builds (wheels made here with zipfile, found
through PIP_FIND_LINKS with the index switched off: no network). Every refusal
is one line, with the documented exit code (2: bad input), and leaves the
registry as it was. Installing checks every wheel against its own RECORD,
refuses paths out of the site, and leaves a read-only site directory without
.pth files or console scripts.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import sqlite3
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from toolcrib.registry import Registry
from toolcrib.registry.versions import content_sha256
from toolcrib.sandbox.contract import Lock, LockedPackage
from toolcrib.sandbox.packages import PackagesError, materialize

# -- wheels built here ---------------------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    *,
    tamper: dict[str, bytes] | None = None,
    unrecorded: dict[str, bytes] | None = None,
    entry_points: str | None = None,
) -> Path:
    """A pure-Python wheel with a correct RECORD over `files` and its
    metadata; then `tamper` replaces members' bytes after RECORD was written
    and `unrecorded` adds members RECORD does not list."""
    dist = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    members[f"{dist}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: toolcrib-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points is not None:
        members[f"{dist}/entry_points.txt"] = entry_points.encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in members.items():
        writer.writerow([path, _digest(data), str(len(data))])
    writer.writerow([f"{dist}/RECORD", "", ""])
    members[f"{dist}/RECORD"] = record.getvalue().encode()
    members.update(tamper or {})
    members.update(unrecorded or {})
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        for path, data in members.items():
            whl.writestr(path, data)
    return wheel


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _locked(wheel: Path, name: str, version: str) -> LockedPackage:
    return LockedPackage(name=name, version=version, filename=wheel.name, sha256=_sha256(wheel))


@pytest.fixture()
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local find-links directory and no index at all: pip sees only the
    wheels a test puts there."""
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")
    return links


SHA = "a" * 64
GOOD_PACKAGE = {"name": "six", "version": "1.16.0", "filename": "six-1.16.0-py2.py3-none-any.whl", "sha256": SHA}
GOOD_LOCK = {"requirements": ["six"], "packages": [GOOD_PACKAGE], "imports": ["six"], "python": "cp311"}


def _with_package(**changes: Any) -> dict[str, Any]:
    return {**GOOD_LOCK, "packages": [{**GOOD_PACKAGE, **changes}]}


# Each forgery, the field its error names, and (a regex over) what it says.
FORGED: list[tuple[str, dict[str, Any], str]] = [
    ("absolute path", _with_package(filename="/etc/hostname"), r"filename .*not a path: '/etc/hostname'"),
    ("relative path", _with_package(filename="../../six-1.16.0-py2.py3-none-any.whl"), r"filename .*not a path"),
    ("subdirectory", _with_package(filename="sub/six-1.16.0-py2.py3-none-any.whl"), r"filename .*not a path"),
    ("backslash", _with_package(filename="..\\six-1.16.0-py2.py3-none-any.whl"), r"filename .*not a path"),
    ("NUL", _with_package(filename="six-1.16.0-py2.py3-none-any.whl\0"), r"filename .*not a path"),
    ("hidden", _with_package(filename=".six-1.16.0-py2.py3-none-any.whl"), r"filename .*not a path"),
    ("not a wheel", _with_package(filename="six-1.16.0.tar.gz"), r"filename .*\.whl"),
    (
        "other name",
        _with_package(filename="evil-1.16.0-py3-none-any.whl"),
        r"filename 'evil-.*' is not a wheel of 'six'",
    ),
    ("other version", _with_package(filename="six-1.17.0-py3-none-any.whl"), r"is not a wheel of 'six' '1.16.0'"),
    ("short hash", _with_package(sha256="abc"), r"sha256 must be 64 lowercase hex digits, got 'abc'"),
    ("empty hash", _with_package(sha256=""), r"sha256 must be 64"),
    ("stdlib os", {**GOOD_LOCK, "imports": ["six", "os"]}, r"imports: 'os' is a standard-library module"),
    ("stdlib subprocess", {**GOOD_LOCK, "imports": ["subprocess"]}, r"imports: 'subprocess' is a standard-library"),
    ("builtin module", {**GOOD_LOCK, "imports": ["_thread"]}, r"imports: '_thread' is a standard-library"),
    ("dotted import", {**GOOD_LOCK, "imports": ["six.moves"]}, r"imports: not a top-level module name"),
    ("keyword import", {**GOOD_LOCK, "imports": ["import"]}, r"imports: not a top-level module name"),
    (
        "non-canonical version",
        _with_package(version="1.16.0-RC1", filename="six-1.16.0rc1-py3-none-any.whl"),
        r"version must be a PEP 440 version in its normalized form, got '1.16.0-RC1'",
    ),
    ("leading v", _with_package(version="v1.16.0", filename="six-1.16.0-py3-none-any.whl"), r"normalized form"),
    ("version with an option", _with_package(version="1.16.0 --index-url=http://x"), r"version must be a PEP 440"),
    ("absurd version", _with_package(version="1" * 5000), r"version must be a PEP 440 .*'…$"),
    ("word version", _with_package(version="latest"), r"version must be a PEP 440"),
    ("name with an option", _with_package(name="--index-url=http://x"), r"name must be a PEP 508 distribution name"),
    ("name with a marker", _with_package(name="six; os_name"), r"name must be a PEP 508"),
    (
        "requirement option",
        {**GOOD_LOCK, "requirements": ["--index-url=http://x"]},
        r"requirements: not a plain PEP 508",
    ),
    (
        "requirement url",
        {**GOOD_LOCK, "requirements": ["six @ https://example.com/six.whl"]},
        r"requirements: not a plain",
    ),
    ("twice", {**GOOD_LOCK, "packages": [GOOD_PACKAGE, {**GOOD_PACKAGE, "name": "Six"}]}, r"'Six' is locked twice"),
    ("python tag", {**GOOD_LOCK, "python": "../cp311"}, r"python must be a CPython tag"),
]


def test_the_good_lock_is_accepted() -> None:
    """The control: the forgeries below differ from it in one field each."""
    lock = Lock.from_json(GOOD_LOCK)
    assert lock.to_json() == GOOD_LOCK
    # Names compare in their normalized form; METADATA's spelling is kept.
    LockedPackage(
        name="MarkupSafe",
        version="2.1.3",
        sha256=SHA,
        filename="MarkupSafe-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    )
    LockedPackage(
        name="zope.interface", version="6.0", filename="zope.interface-6.0-cp311-cp311-linux_x86_64.whl", sha256=SHA
    )
    LockedPackage(
        name="typing-extensions", version="4.9.0", filename="typing_extensions-4.9.0-py3-none-any.whl", sha256=SHA
    )
    LockedPackage(name="pkg", version="1.0.post1", filename="pkg-1.0.post1-1build-py3-none-any.whl", sha256=SHA)


@pytest.mark.parametrize(("case", "forged", "message"), FORGED, ids=[f[0] for f in FORGED])
def test_a_forged_lock_is_refused_by_the_contract(case: str, forged: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        Lock.from_json(forged)
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    assert "remove" not in text and "\0" not in text


# -- through `toolcrib import` of a hand-edited bundle ------------------------------

ADD = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return a + b\n'


class _RawLock:
    """What a forger hashes: the lock's JSON as they wrote it (the content
    digest covers `lock.to_json()`), without the contract's checks."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_json(self) -> dict[str, Any]:
        return self.data


def _forge_bundle(bundle: dict[str, Any], lock: dict[str, Any]) -> dict[str, Any]:
    """The bundle with its one entry given `lock`, every digest recomputed
    (anyone can: a bundle's digests catch accidents, not forgers)."""
    from toolcrib.registry.models import Signature, TestCase

    forged = json.loads(json.dumps(bundle))
    entry = forged["tools"][0]
    entry["lock"], entry["policy"] = lock, "plain"
    entry["sha256"] = content_sha256(
        entry["source"],
        entry["entrypoint"],
        Signature.model_validate(entry["signature"]),
        [TestCase.model_validate(t) for t in entry["tests"]],
        "plain",
        _RawLock(lock),  # type: ignore[arg-type]
    )
    return forged


def _counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        versions = conn.execute("SELECT count(*) FROM versions").fetchone()[0]
        audit = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    return versions, audit


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with Registry(tmp_path_factory.mktemp("src") / "src.db", actor="exporter") as reg:
        reg.add(ADD, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
        return reg.export(["add"])


@pytest.fixture()
def target(tmp_path: Path) -> Iterator[Path]:
    """A registry with one version in it already (so "unchanged" counts something)."""
    db = tmp_path / "dst.db"
    with Registry(db, actor="importer") as reg:
        reg.add('def neg(x: float) -> float:\n    """Negate."""\n    return -x\n')
    yield db


def _import(db: Path, bundle: dict[str, Any], tmp_path: Path) -> Any:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    from toolcrib.cli import cli

    return CliRunner().invoke(cli, ["--registry", str(db), "import", str(path)])


def test_a_well_formed_lock_imports(plain_bundle: dict[str, Any], target: Path, tmp_path: Path) -> None:
    """The control for the forgeries: the same edit with a good lock imports."""
    done = _import(target, _forge_bundle(plain_bundle, GOOD_LOCK), tmp_path)
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize(("case", "forged", "message"), FORGED, ids=[f[0] for f in FORGED])
def test_a_forged_lock_in_a_bundle_is_refused_by_import(
    case: str, forged: dict[str, Any], message: str, plain_bundle: dict[str, Any], target: Path, tmp_path: Path
) -> None:
    before = _counts(target)
    done = _import(target, _forge_bundle(plain_bundle, forged), tmp_path)
    assert done.exit_code == 2, done.output
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: tools[0] (add@1.0.0): lock"), done.stderr
    assert "Traceback" not in done.output and "\0" not in done.output
    assert _counts(target) == before


# -- through `toolcrib add --requires`, from a local index ---------------------------

USES_FAKE = (
    'import {module}\n\ndef bump(x: int) -> int:\n    """Add the package\'s value."""\n    return x + {module}.VALUE\n'
)


def _add(db: Path, tmp_path: Path, requirement: str, module: str) -> Any:
    from toolcrib.cli import cli

    tool = tmp_path / f"{module}_tool.py"
    tool.write_text(USES_FAKE.format(module=module))
    return CliRunner().invoke(cli, ["--registry", str(db), "add", str(tool), "--requires", requirement, "--json"])


def test_add_locks_a_local_wheel(index: Path, cache: Path, target: Path, tmp_path: Path) -> None:
    """The control: a well-made wheel from the local index is locked."""
    build_wheel(index, "tcgood", "1.0", {"tcgood/__init__.py": b"VALUE = 1\n"})
    done = _add(target, tmp_path, "tcgood", "tcgood")
    assert done.exit_code == 0, done.output
    with Registry(target, actor="t") as reg:
        lock = reg.get("bump").lock
    assert lock is not None and lock.imports == ("tcgood",)
    assert [p.filename for p in lock.packages] == ["tcgood-1.0-py3-none-any.whl"]


def test_a_wheel_shipping_a_stdlib_module_does_not_put_it_in_the_lock(
    index: Path, cache: Path, target: Path, tmp_path: Path
) -> None:
    """A wheel may ship `subprocess.py` (it shadows nothing: the site comes
    after the standard library); the lock never names it, so no zygote is
    asked to import a standard-library module on the lock's behalf."""
    build_wheel(
        index,
        "tcshadow",
        "1.0",
        {"tcshadow/__init__.py": b"VALUE = 1\n", "subprocess.py": b"X = 1\n", "os/__init__.py": b""},
    )
    done = _add(target, tmp_path, "tcshadow", "tcshadow")
    assert done.exit_code == 0, done.output
    with Registry(target, actor="t") as reg:
        lock = reg.get("bump").lock
    assert lock is not None and lock.imports == ("tcshadow",)


@pytest.mark.parametrize(
    ("case", "wheel", "message"),
    [
        (
            "content not its RECORD",
            {"tamper": {"tcbad/__init__.py": b"VALUE = 2\n"}},
            r"tcbad-1.0-py3-none-any.whl: member 'tcbad/__init__.py' does not match the hash RECORD gives for it",
        ),
        (
            "member not in RECORD",
            {"unrecorded": {"tcbad/extra.py": b"import os\n"}},
            r"member 'tcbad/extra.py' is not listed in RECORD",
        ),
        (
            "parent-directory member",
            {"files": {"../escape.py": b"X = 1\n"}},
            r"member '../escape.py' is not a plain relative path",
        ),
        (
            "absolute member",
            {"files": {"/tmp/escape.py": b"X = 1\n"}},
            r"member '/tmp/escape.py' is not a plain relative path",
        ),
    ],
)
def test_add_refuses_a_wheel_that_is_not_what_its_record_says(
    case: str, wheel: dict[str, Any], message: str, index: Path, cache: Path, target: Path, tmp_path: Path
) -> None:
    files = {"tcbad/__init__.py": b"VALUE = 1\n", **wheel.pop("files", {})}
    build_wheel(index, "tcbad", "1.0", files, **wheel)
    before = _counts(target)
    done = _add(target, tmp_path, "tcbad", "tcbad")
    assert done.exit_code == 2, done.output
    last = done.stderr.splitlines()[-1]
    assert last.startswith("Error: requirements: ") and __import__("re").search(message, last), done.stderr
    # stdout: only the refusal JSON every failing --json command prints (issue 17), naming the same error.
    refusal = json.loads(done.stdout)
    assert refusal["status"] == "invalid" and __import__("re").search(message, refusal["error"]["message"]), refusal
    assert "Traceback" not in done.output
    assert _counts(target) == before


# -- installing: each wheel checked, the site inert and read-only --------------------


def _lock_of(wheel: Path, name: str, version: str, imports: tuple[str, ...], cache: Path) -> Lock:
    (cache / "wheels").mkdir(parents=True, exist_ok=True)
    os.replace(wheel, cache / "wheels" / wheel.name)
    return Lock(
        requirements=(name,), packages=(_locked(cache / "wheels" / wheel.name, name, version),), imports=imports
    )


def test_materialize_refuses_an_import_no_wheel_provides(cache: Path, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "tcgood", "1.0", {"tcgood/__init__.py": b"VALUE = 1\n"})
    lock = _lock_of(wheel, "tcgood", "1.0", ("tcgood", "requests"), cache)
    with pytest.raises(PackagesError, match=r"^lock imports 'requests', which none of its wheels provides$"):
        materialize(lock)
    assert not (cache / "sites").exists() or not any((cache / "sites").iterdir())


@pytest.mark.parametrize(
    ("case", "wheel", "message"),
    [
        (
            "content not its RECORD",
            {"tamper": {"tcbad/__init__.py": b"VALUE = 2\n"}},
            r"does not match the hash RECORD",
        ),
        ("RECORD size", {"tamper": {"tcbad/__init__.py": b"VALUE = 1 \n"}}, r"does not match the hash RECORD"),
        ("member not in RECORD", {"unrecorded": {"tcbad/extra.pth": b"import os\n"}}, r"is not listed in RECORD"),
        ("parent-directory member", {"files": {"tcbad/../../escape.py": b"X = 1\n"}}, r"is not a plain relative path"),
        ("second dist-info", {"unrecorded": {"other-1.0.dist-info/RECORD": b""}}, r"exactly one \.dist-info"),
    ],
)
def test_materialize_checks_each_wheel_against_its_record(
    case: str, wheel: dict[str, Any], message: str, cache: Path, tmp_path: Path
) -> None:
    files = {"tcbad/__init__.py": b"VALUE = 1\n", **wheel.pop("files", {})}
    built = build_wheel(tmp_path / "w", "tcbad", "1.0", files, **wheel)
    lock = _lock_of(built, "tcbad", "1.0", ("tcbad",), cache)
    with pytest.raises(PackagesError, match=message) as info:
        materialize(lock)
    assert "\n" not in str(info.value)
    assert not (cache / "sites" / lock.digest()).exists()


def test_the_site_is_read_only_without_pth_files_or_scripts(cache: Path, tmp_path: Path) -> None:
    """A .pth file and a console script are never needed by a site that the
    zygote adds with sys.path (-I -S): both are removed, and no later process
    can change what was installed."""
    wheel = build_wheel(
        tmp_path / "w",
        "tcgood",
        "1.0",
        {"tcgood/__init__.py": b"VALUE = 1\n", "tcgood-hook.pth": b"import os; os.system('touch /tmp/pwned')\n"},
        entry_points="[console_scripts]\ntcgood = tcgood:main\n",
    )
    lock = _lock_of(wheel, "tcgood", "1.0", ("tcgood",), cache)
    site = materialize(lock)
    assert (site / "tcgood" / "__init__.py").is_file()
    assert not list(site.glob("*.pth")) and not (site / "bin").exists()
    for path in [site, *site.rglob("*")]:
        assert not path.lstat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), path
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            (site / "tcgood" / "evil.py").write_text("x")
    # Built once: the second call reuses it (and re-checks the imports it provides).
    assert materialize(lock) == site


def test_no_zygote_starts_for_a_lock_whose_import_no_wheel_provides(cache: Path, tmp_path: Path) -> None:
    """The restricted backend: a well-formed lock (as an imported bundle may
    carry) naming an import its wheels lack is the lock's error, reported as
    `unavailable` with the reason, and no zygote is started for it."""
    from toolcrib.sandbox.contract import Job
    from toolcrib.sandbox.restricted import RestrictedBackend

    wheel = build_wheel(tmp_path / "w", "tcgood", "1.0", {"tcgood/__init__.py": b"VALUE = 1\n"})
    lock = _lock_of(wheel, "tcgood", "1.0", ("tcgood", "tcother"), cache)
    backend = RestrictedBackend(lock_idle=600)
    try:
        source = USES_FAKE.format(module="tcgood")
        result = backend.run(Job(source=source, entrypoint="bump", args={"x": 1}, policy="plain", lock=lock))
        assert result.status == "unavailable" and result.error is not None
        assert "lock imports 'tcother', which none of its wheels provides" in result.error.message
        assert backend.lock_zygotes() == {}
        # The same wheel with an honest lock runs.
        honest = Lock(requirements=lock.requirements, packages=lock.packages, imports=("tcgood",))
        done = backend.run(Job(source=source, entrypoint="bump", args={"x": 1}, policy="plain", lock=honest))
        assert done.status == "ok" and done.result == 2, done.error
    finally:
        backend.close()


def test_a_stored_lock_the_contract_refuses_is_a_one_line_error(target: Path, tmp_path: Path) -> None:
    """A registry written before these checks may hold a forged lock (a bundle
    imported then): reading that version is exit 2 naming it, never a crash,
    and nothing runs."""
    from toolcrib.cli import cli

    forged = json.dumps({**GOOD_LOCK, "imports": ["six", "queue"]})
    with sqlite3.connect(target) as conn:
        conn.execute("UPDATE versions SET lock = ?, policy = 'plain' WHERE name = 'neg'", [forged])
    before = _counts(target)
    for command in (["show", "neg"], ["call", "neg", "--args", '{"x": 1}', "--allow-unverified"]):
        done = CliRunner().invoke(cli, ["--registry", str(target), *command])
        assert done.exit_code == 2, (command, done.output)
        assert done.stderr.splitlines() == [
            "Error: neg@1.0.0: its stored lock is refused: lock imports: 'queue' is a standard-library module "
            "(a lock names only modules its own wheels provide) (add the tool again with its requirements)"
        ], done.stderr
    assert _counts(target) == before


def test_add_stores_the_normalized_version(index: Path, cache: Path, target: Path, tmp_path: Path) -> None:
    """A wheel's METADATA may spell its version loosely ("1.0-RC1"): the lock
    stores the normalized form, the one the contract accepts."""
    wheel = build_wheel(index, "tcrc", "1.0-RC1", {"tcrc/__init__.py": b"VALUE = 1\n"})
    wheel.rename(index / "tcrc-1.0rc1-py3-none-any.whl")
    done = _add(target, tmp_path, "tcrc==1.0rc1", "tcrc")
    assert done.exit_code == 0, done.output
    with Registry(target, actor="t") as reg:
        lock = reg.get("bump").lock
    assert lock is not None and [(p.version, p.filename) for p in lock.packages] == [
        ("1.0rc1", "tcrc-1.0rc1-py3-none-any.whl")
    ]
