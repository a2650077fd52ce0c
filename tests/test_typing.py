"""`mypy -p toolcrib` passes, with the settings in pyproject.toml ([tool.mypy]).

The folders only become `toolcrib.*` through setuptools' package-dir mapping,
and the editable install (`pip install -e .`, what tests/run.sh does) maps
them with an import hook that mypy cannot follow: from outside the checkout
mypy reports "Can't find package 'toolcrib'". So this test lays the package
out as an install would, from the mapping in pyproject.toml, in a temporary
directory, and runs mypy there (so the checkout's folders cannot shadow it).
The third-party packages (pydantic and its plugin, sqlite-utils,
RestrictedPython, click) come from this interpreter's environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lay_out_package(target: Path) -> None:
    """Copy the sources to `target` the way setuptools installs them."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools["package-dir"]
    for package in setuptools["packages"]:
        source = ROOT / package_dir[package]
        assert (source / "__init__.py").is_file(), f"{package}: no {source}/__init__.py"
        destination = target.joinpath(*package.split("."))
        destination.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.suffix == ".py" or path.name == "py.typed":
                shutil.copy2(path, destination / path.name)


@pytest.mark.slow
def test_mypy_passes_on_the_installed_layout(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _lay_out_package(site)
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(tmp_path / "mypy-cache"),
        "-p",
        "toolcrib",
    ]
    done = subprocess.run(command, cwd=site, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mypy exited {done.returncode}:\n{done.stdout}{done.stderr}"
    assert "Success: no issues found" in done.stdout, done.stdout + done.stderr
