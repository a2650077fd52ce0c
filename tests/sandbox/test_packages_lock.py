"""sandbox/packages.py with real wheels from the package index this machine
reaches: requirements resolved to a lock of exact wheels, a lock installed
offline into a cached site directory, tampered wheels refused."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from toolcrib.sandbox import packages
from toolcrib.sandbox.contract import Lock, LockedPackage
from toolcrib.sandbox.packages import PackagesError, check_requirement, materialize, resolve, wheel_imports

# Loopback port 9 (discard): a connection is refused at once, so a pip that
# tried the network would fail fast and loudly.
UNREACHABLE = "http://127.0.0.1:9/"


@pytest.fixture(scope="module")
def six_lock(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lock, Path]:
    """One resolution shared by the tests below (each copies the wheel cache)."""
    root = tmp_path_factory.mktemp("shared-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLCRIB_CACHE", str(root))
        return resolve(["six", "mpmath"]), root


def _use_cache(shared: Path, cache: Path) -> None:
    (cache / "wheels").mkdir(parents=True)
    for wheel in (shared / "wheels").glob("*.whl"):
        (cache / "wheels" / wheel.name).write_bytes(wheel.read_bytes())


def _import_in(site: Path, module: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(site)!r}); import {module}; print({module}.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.network
def test_resolve_locks_exact_wheels_with_hashes(six_lock: tuple[Lock, Path]) -> None:
    lock, shared = six_lock
    assert lock.requirements == ("mpmath", "six")
    names = {p.name.lower(): p for p in lock.packages}
    assert set(names) == {"mpmath", "six"}
    for pkg in lock.packages:
        wheel = shared / "wheels" / pkg.filename
        assert wheel.is_file() and pkg.filename.endswith(".whl")
        assert pkg.sha256 == packages._sha256(wheel)
        assert pkg.version in pkg.filename
    assert set(lock.imports) >= {"six", "mpmath"}
    assert lock.python == f"cp{sys.version_info.major}{sys.version_info.minor}"


@pytest.mark.network
def test_materialize_is_cached_and_offline(
    six_lock: tuple[Lock, Path], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock, shared = six_lock
    _use_cache(shared, cache)
    # Every wheel is in the cache: the install needs no index at all.
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    site = materialize(lock)
    assert site == cache / "sites" / lock.digest()
    assert _import_in(site, "six").startswith(str(site))
    assert _import_in(site, "mpmath").startswith(str(site))
    # Exactly the locked distributions, nothing else.
    dists = sorted(p.name.split("-")[0].lower() for p in site.glob("*.dist-info"))
    assert dists == ["mpmath", "six"]
    # The second time: the same directory, reused (its inode is unchanged).
    inode = site.stat().st_ino
    assert materialize(lock) == site and site.stat().st_ino == inode
    # No half-built directories are left beside it.
    assert [p.name for p in site.parent.iterdir()] == [lock.digest()]
    # Real wheels pass the RECORD check, and the built site is read-only.
    for pkg in lock.packages:
        assert packages.check_wheel(cache / "wheels" / pkg.filename, pkg)
    assert not any(p.stat().st_mode & 0o222 for p in [site, *site.rglob("*")] if not p.is_symlink())


@pytest.mark.network
def test_a_missing_wheel_is_downloaded_again_by_exact_hash(six_lock: tuple[Lock, Path], cache: Path) -> None:
    lock, _shared = six_lock
    # An empty cache: materialize fetches exactly the locked files, then installs.
    site = materialize(lock)
    assert sorted(p.name for p in (cache / "wheels").glob("*.whl")) == sorted(p.filename for p in lock.packages)
    assert _import_in(site, "six")


@pytest.mark.network
def test_a_tampered_wheel_is_refused(six_lock: tuple[Lock, Path], cache: Path) -> None:
    lock, shared = six_lock
    _use_cache(shared, cache)
    six = next(p for p in lock.packages if p.name.lower() == "six")
    wheel = cache / "wheels" / six.filename
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    with pytest.raises(PackagesError, match="does not match the lock"):
        materialize(lock)
    assert not (cache / "sites" / lock.digest()).exists()


@pytest.mark.network
def test_pip_refuses_bytes_that_differ_from_the_locked_hash(
    six_lock: tuple[Lock, Path], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even past the cache check, the install itself runs with --require-hashes:
    a lock naming a hash the file does not have installs nothing."""
    lock, shared = six_lock
    _use_cache(shared, cache)
    six = next(p for p in lock.packages if p.name.lower() == "six")
    forged = Lock(requirements=("six",), packages=(dataclasses.replace(six, sha256="0" * 64),))
    # Make the cache check pass for the forged hash: the cache file is
    # checked against the lock first, so only pip can catch a hash that the
    # cache check was made to agree with.
    monkeypatch.setattr(packages, "_sha256", lambda path: "0" * 64)
    with pytest.raises(PackagesError, match="HASHES"):
        materialize(forged)
    assert not (cache / "sites" / forged.digest()).exists()


@pytest.mark.network
def test_resolve_failure_is_one_line(cache: Path) -> None:
    with pytest.raises(PackagesError) as info:
        resolve(["toolcrib-no-such-package-xyz==0.0.1"])
    assert "\n" not in str(info.value)
    assert "toolcrib-no-such-package-xyz" in str(info.value)


@pytest.mark.parametrize(
    "bad", ["--index-url=http://x", "pkg @ https://example.com/p.whl", "./local", "", "a b", "-e ."]
)
def test_requirements_are_names_not_urls_or_options(bad: str) -> None:
    with pytest.raises(PackagesError, match="not a requirement"):
        check_requirement(bad)


@pytest.mark.parametrize(
    "good",
    [
        "sympy>=1.12",
        "pandas",
        "numpy==1.26.*",
        "requests[socks]>=2,<3",
        "six; python_version >= '3'",
        "Foo.Bar_baz~=1.0",
    ],
)
def test_plain_requirements_pass(good: str) -> None:
    assert check_requirement(f"  {good} ") == good


def test_wheel_imports_from_members() -> None:
    members = [
        "pkg/__init__.py",
        "pkg/sub/mod.py",
        "single.py",
        "_ext.cpython-311-x86_64-linux-gnu.so",
        "pkg-1.0.dist-info/RECORD",
        "pkg-1.0.data/scripts/tool",
        "__pycache__/single.cpython-311.pyc",
        "nsonly/inner/thing.py",
        "README.txt",
    ]
    assert wheel_imports(members) == ["_ext", "nsonly", "pkg", "single"]


def test_lock_digest_follows_content() -> None:
    pkg = LockedPackage(name="six", version="1.17.0", filename="six-1.17.0-py2.py3-none-any.whl", sha256="a" * 64)
    one = Lock(requirements=("six",), packages=(pkg,), imports=("six",))
    assert one.digest() == Lock.from_json(one.to_json()).digest()
    other = Lock(requirements=("six",), packages=(dataclasses.replace(pkg, sha256="b" * 64),), imports=("six",))
    assert one.digest() != other.digest()


@pytest.mark.network
@pytest.mark.slow
def test_sympy_resolves_with_its_dependency(cache: Path) -> None:
    lock = resolve(["sympy>=1.12"])
    names = {p.name.lower() for p in lock.packages}
    assert {"sympy", "mpmath"} <= names
    assert {"sympy", "mpmath"} <= set(lock.imports)
    site = materialize(lock)
    assert _import_in(site, "sympy").startswith(str(site))


# -- a version's lock in the registry ------------------------------------------------

SIX_TOOL = '''
import six

def kind(value: str) -> str:
    """The name of six's text type."""
    return six.text_type.__name__ + ":" + value
'''


@pytest.mark.network
def test_registry_locks_requirements_at_add(cache: Path, tmp_path: Path) -> None:
    from toolcrib.registry.errors import BundleError, InvalidInput
    from toolcrib.registry.versions import content_sha256

    from toolcrib import Registry

    with Registry(tmp_path / "r.db", actor="t") as reg:
        added = reg.add(SIX_TOOL, requires=["six"], tests=[{"args": {"value": "x"}, "expected": "str:x"}]).tool
        lock = added.lock
        assert lock is not None and lock.requirements == ("six",) and "six" in lock.imports
        assert added.requires == ["six"] and added.policy == "plain"
        # The lock is part of the content hash.
        assert added.sha256 == content_sha256(
            added.source, added.entrypoint, added.signature, added.tests, "plain", lock
        )
        assert added.sha256 != content_sha256(added.source, added.entrypoint, added.signature, added.tests, "plain")
        stored = reg.get("kind")
        assert stored.lock == lock
        assert reg.audit(event="add")[-1].details["lock"] == lock.digest()
        statement = reg.provenance("kind")
        deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert {d["digest"]["sha256"] for d in deps} == {p.sha256 for p in lock.packages}
        # The same requirements again: the same lock, the same version.
        assert (
            reg.add(SIX_TOOL, requires=["six"], tests=[{"args": {"value": "x"}, "expected": "str:x"}]).created is False
        )
        with pytest.raises(InvalidInput, match="plain policy"):
            reg.add(SIX_TOOL, requires=["six"], policy="restricted", name="kind_r")
        with pytest.raises(InvalidInput, match="requirements: not a requirement"):
            reg.add(SIX_TOOL, requires=["--index-url=http://x"], name="kind_bad")
        bundle = reg.export(["kind"])
    assert bundle["tools"][0]["lock"] == lock.to_json()
    with Registry(tmp_path / "other.db", actor="o") as other:
        imported = other.import_bundle(bundle)[0].tool
        assert (imported.sha256, imported.lock) == (added.sha256, lock)
    forged = json.loads(json.dumps(bundle))
    forged["tools"][0]["lock"]["packages"][0]["sha256"] = "0" * 64
    with Registry(tmp_path / "third.db", actor="x") as third, pytest.raises(BundleError, match="sha256 mismatch"):
        third.import_bundle(forged)


@pytest.mark.network
def test_cli_add_requires_and_show_lists_the_lock(cache: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from toolcrib.cli import cli

    tool = tmp_path / "kind.py"
    tool.write_text(SIX_TOOL)
    runner = CliRunner()
    base = ["--registry", str(tmp_path / "r.db")]
    refused = runner.invoke(cli, [*base, "add", str(tool)])
    assert refused.exit_code == 2 and "module 'six'" in refused.output and "--requires" in refused.output
    added = runner.invoke(cli, [*base, "add", str(tool), "--requires", "six", "--json"])
    assert added.exit_code == 0, added.output
    data = json.loads(added.stdout)
    assert data["requires"] == ["six"] and data["policy"] == "plain" and len(data["lock"]) == 64
    shown = json.loads(runner.invoke(cli, [*base, "show", "kind", "--json"]).stdout)
    assert shown["requires"] == ["six"] and shown["lock"]["packages"][0]["name"].lower() == "six"
    listed = json.loads(runner.invoke(cli, [*base, "list", "--json"]).stdout)
    assert listed[0]["lock"]["packages"][0]["sha256"] == shown["lock"]["packages"][0]["sha256"]
    text = runner.invoke(cli, [*base, "show", "kind"]).stdout
    assert "requires:   six" in text and "six==" in text
    bad = runner.invoke(cli, [*base, "add", str(tool), "--requires", "toolcrib-no-such-package-xyz", "--name", "k2"])
    assert bad.exit_code == 2 and bad.stdout == ""
    # Progress on stderr, then the error on one line.
    assert bad.stderr.splitlines()[-1].startswith("Error: requirements: cannot resolve toolcrib-no-such-package-xyz")


@pytest.mark.network
@pytest.mark.slow
def test_a_sympy_tool_is_locked_verified_and_called_on_the_restricted_backend(cache: Path, tmp_path: Path) -> None:
    """The registry half of the path: the version's lock travels in the Job;
    the restricted backend runs it (plain policy) from a zygote with the
    locked packages."""
    from toolcrib import Registry

    source = (
        "import sympy\n\n"
        "def expand(expr: str) -> str:\n"
        '    """Expand a polynomial expression."""\n'
        "    return str(sympy.expand(sympy.sympify(expr)))\n"
    )
    with Registry(tmp_path / "r.db", actor="t") as reg:
        reg.add(source, requires=["sympy>=1.12"], tests=[{"args": {"expr": "(x+1)**2"}, "expected": "x**2 + 2*x + 1"}])
        verdict = reg.verify("expand")
        assert verdict.status == "verified", verdict.cases
        assert reg.call("expand", {"expr": "(a-b)*(a+b)"}).result == "a**2 - b**2"
