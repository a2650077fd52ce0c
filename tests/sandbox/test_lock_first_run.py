"""The first run of a tool with packages says what it does, and does it once
(issue 21). Resolving requirements at `add` is cached by requirement set: the
same set resolved within $TOOLCRIB_LOCK_TTL gives the same lock without pip,
in any process; another set, a stale or unreadable cache entry, or a TTL of
0 resolves again. The first call installs the lock and starts its zygote
saying so (`Backend.prepare` with progress, which `call` passes its stderr),
then runs in that zygote. Real pip, offline: wheels made here, served from a
local --find-links directory ("no pip" is shown by taking it away); the real
restricted backend."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest
from toolcrib.sandbox.packages import PackagesError, resolve

# Loopback port 9 (discard): a pip that tried the network fails at once.
UNREACHABLE = "http://127.0.0.1:9/"


def _wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal valid pure-Python wheel (RECORD with every member's hash)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 1\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for member, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{member},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture
def offline_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    links = tmp_path / "links"
    links.mkdir()
    _wheel(links, "tinytc", "1.0")
    _wheel(links, "othertc", "2.0")
    monkeypatch.setenv("TOOLCRIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE)
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.delenv("TOOLCRIB_LOCK_TTL", raising=False)
    return links


def _take_index_away(monkeypatch: pytest.MonkeyPatch, links: Path) -> None:
    for wheel in links.glob("*.whl"):
        wheel.unlink()


def test_the_same_requirement_set_is_resolved_once(offline_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    first = resolve(["tinytc", "othertc"], progress=said.append)
    assert [p.filename for p in first.packages] == ["othertc-2.0-py3-none-any.whl", "tinytc-1.0-py3-none-any.whl"]
    assert any(line.startswith("resolving othertc, tinytc") for line in said)
    _take_index_away(monkeypatch, offline_index)
    said.clear()
    again = resolve(["othertc", "tinytc", "tinytc"], progress=said.append)  # the same set
    assert again == first
    assert said == ["othertc, tinytc: resolved before, reusing its lock (2 wheel(s))"]
    # Another set is resolved: with the index gone, pip fails.
    with pytest.raises(PackagesError, match="cannot resolve othertc"):
        resolve(["othertc"])


def test_ttl_zero_stale_and_unreadable_entries_resolve_again(
    offline_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resolve(["tinytc"])
    (entry,) = (tmp_path / "cache" / "resolutions").glob("*.json")
    _take_index_away(monkeypatch, offline_index)
    monkeypatch.setenv("TOOLCRIB_LOCK_TTL", "0")
    with pytest.raises(PackagesError):
        resolve(["tinytc"])
    monkeypatch.setenv("TOOLCRIB_LOCK_TTL", "3600")
    assert resolve(["tinytc"]).requirements == ("tinytc",)
    old = entry.stat().st_mtime - 7200
    os.utime(entry, (old, old))  # older than the TTL
    with pytest.raises(PackagesError):
        resolve(["tinytc"])
    os.utime(entry, None)
    entry.write_text('{"requirements": ["tinytc"], "packages": "not a list"}')
    with pytest.raises(PackagesError):
        resolve(["tinytc"])


def test_the_first_call_installs_and_starts_the_lock_saying_so(offline_index: Path) -> None:
    from toolcrib.sandbox import Job
    from toolcrib.sandbox.restricted import RestrictedBackend

    lock = resolve(["tinytc"])
    said: list[str] = []
    backend = RestrictedBackend()
    try:
        backend.prepare(lock, progress=said.append)
        assert said[0] == "installing the 1 locked wheel(s) (once per lock)"
        assert "starting the sandbox for this lock: importing tinytc once (later calls reuse it)" in said
        assert said[-1] == "the lock's sandbox is ready"
        said.clear()
        backend.prepare(lock, progress=said.append)
        assert said == []  # running already: nothing to say
        source = "import tinytc\n\n\ndef value() -> int:\n    return tinytc.VALUE\n"
        result = backend.run(Job(source=source, entrypoint="value", policy="plain", lock=lock))
        assert (result.status, result.result) == ("ok", 1), result.error
    finally:
        backend.close()
