"""The version is written once: toolcrib.__version__ (toolcrib/__init__.py).

pyproject.toml declares it dynamic and setuptools reads it from there, so a
release bumps one line; the wheel, `toolcrib --version` (the installed
metadata) and the MCP server's version all follow.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
import warnings
from pathlib import Path

import toolcrib

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_does_not_write_the_version() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project, "pyproject.toml writes the version: it is toolcrib.__version__ alone"
    assert "version" in project["dynamic"]
    setuptools = _pyproject()["tool"]
    assert isinstance(setuptools, dict)
    assert setuptools["setuptools"]["dynamic"]["version"] == {"attr": "toolcrib.__version__"}


def test_setuptools_reads_the_version_from_the_package() -> None:
    from setuptools.config.pyprojecttoml import read_configuration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools calls [tool.setuptools] "beta"
        config = read_configuration(ROOT / "pyproject.toml", expand=True)
    source = (ROOT / "toolcrib" / "__init__.py").read_text()
    written = re.findall(r'^__version__ = "([^"]+)"$', source, re.M)
    assert written == [config["project"]["version"]]


def test_the_installed_metadata_agrees() -> None:
    # The metadata is written at install time: after a bump, reinstall
    # (`pip install -e '.[test]'`, as tests/run.sh does) and this agrees again.
    assert importlib.metadata.version("toolcrib") == toolcrib.__version__
