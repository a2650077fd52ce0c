"""toolcrib works from any directory, installed from a wheel or not.

The checkout keeps its folders at the top (registry/, sandbox/, cli/,
sandbox-images/ beside toolcrib/); pyproject's package-dir maps them under
the one import name. Run from the checkout root, the root toolcrib/ folder
comes first on sys.path, so it maps them itself (toolcrib/__init__.py).

tests/run.sh runs the whole suite a second time against the built wheel,
installed in a fresh venv, from the checkout root, with
TOOLCRIB_EXPECT_WHEEL=1: the checks marked so prove that pass really
exercised the installed copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

import toolcrib

ROOT = Path(__file__).resolve().parent.parent
IN_WHEEL_PASS = bool(os.environ.get("TOOLCRIB_EXPECT_WHEEL"))
wheel_only = pytest.mark.skipif(not IN_WHEEL_PASS, reason="only in tests/run.sh's wheel pass (TOOLCRIB_EXPECT_WHEEL=1)")


def test_the_checkout_mapping_is_pyprojects() -> None:
    package_dir: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    # Packages whose folder is not where the import name puts it.
    moved = {name: folder for name, folder in package_dir.items() if folder != name.replace(".", "/")}
    assert toolcrib._CHECKOUT_PACKAGES == moved


def _setuptools() -> dict[str, object]:
    config: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config


def test_every_package_folder_is_in_the_wheel() -> None:
    # setuptools installs only the listed packages: a subfolder (such as
    # sandbox/inside/) left off the list would import from a checkout but be
    # missing from every wheel.
    setuptools = _setuptools()
    package_dir = setuptools["package-dir"]
    assert isinstance(package_dir, dict)
    folders = {ROOT / folder: name for name, folder in package_dir.items()}
    found = set()
    for folder, name in folders.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            if "__pycache__" not in relative and not any(part.startswith(".") for part in relative):
                found.add(".".join((name, *relative)))
    assert found - set(setuptools["packages"]) == set()  # type: ignore[arg-type]
    assert package_dir["toolcrib.sandbox.inside"] == "sandbox/inside"


def test_every_data_file_of_the_sandbox_is_in_the_wheel() -> None:
    # The Docker backend reads its seccomp profile from beside docker.py.
    package_data = _setuptools()["package-data"]
    assert isinstance(package_data, dict)
    for name, folder in (("toolcrib.sandbox", "sandbox"), ("toolcrib.sandbox.inside", "sandbox/inside")):
        data = {p.name for p in (ROOT / folder).iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")}
        assert data <= set(package_data.get(name, [])), name
    assert "seccomp-docker.json" in package_data["toolcrib.sandbox"]


CHECKOUT_FILES = {
    "toolcrib": str(ROOT / "toolcrib" / "__init__.py"),
    "toolcrib.registry.errors": str(ROOT / "registry" / "errors.py"),
    "toolcrib.sandbox": str(ROOT / "sandbox" / "__init__.py"),
    "toolcrib.images": str(ROOT / "sandbox-images" / "__init__.py"),
    "toolcrib.latm.replies": str(ROOT / "toolcrib" / "latm" / "replies.py"),
}


def _where(code: str, cwd: Path, *flags: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, *flags, "-c", f"import json\n{code}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, str] = json.loads(done.stdout)
    return found


# Stdlib-only modules of each mapped package (and the one inside toolcrib/).
_FILES = """
import toolcrib, toolcrib.registry.errors, toolcrib.sandbox, toolcrib.images, toolcrib.latm.replies
modules = (toolcrib, toolcrib.registry.errors, toolcrib.sandbox, toolcrib.images, toolcrib.latm.replies)
print(json.dumps({m.__name__: m.__file__ for m in modules}))
"""


def test_the_checkout_root_imports_with_nothing_installed() -> None:
    # -S: no site-packages at all, so neither an installed copy nor an editable
    # install's finder can help; only the checkout's own mapping. (Not
    # toolcrib.latm, whose package imports pydantic.)
    code = _FILES.replace(", toolcrib.latm.replies", "")
    assert _where(code, ROOT, "-S") == {k: v for k, v in CHECKOUT_FILES.items() if "latm" not in k}


def test_the_checkout_root_imports_the_checkout_whatever_is_installed() -> None:
    # The command from the issue, which failed from the root with a wheel installed.
    assert _where(_FILES, ROOT) == CHECKOUT_FILES


def test_any_other_directory_imports_the_installed_copy(tmp_path: Path) -> None:
    files = _where(_FILES, tmp_path)
    assert set(files) == set(CHECKOUT_FILES)
    for path in files.values():
        assert Path(path).is_file()
    if IN_WHEEL_PASS:
        assert all(Path(path).resolve().is_relative_to(_site_packages()) for path in files.values()), files


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"]).resolve()


@wheel_only
def test_the_suite_runs_against_the_wheel() -> None:
    import toolcrib.cli
    import toolcrib.images
    import toolcrib.registry
    import toolcrib.sandbox

    for package in (toolcrib, toolcrib.registry, toolcrib.sandbox, toolcrib.cli, toolcrib.images):
        path = Path(package.__file__ or "").resolve()
        assert path.is_relative_to(_site_packages()), f"{package.__name__} came from {path}, not the wheel"


@wheel_only
def test_the_wheel_carries_what_the_image_build_copies() -> None:
    from toolcrib.sandbox import image

    files = image.context_files()
    assert files["Dockerfile"] == (ROOT / "sandbox-images" / "Dockerfile").read_bytes()
    modules = {path.rsplit("/", 1)[1]: data for path, data in files.items() if path.startswith("opt/toolcrib/tcbox/")}
    assert {"harness.py", "execute.py"} <= set(modules)
    for name, data in modules.items():
        if name != "__init__.py":
            assert data == (ROOT / "sandbox" / "inside" / name).read_bytes(), name
    assert Path(image.__file__).resolve().is_relative_to(_site_packages())


@wheel_only
def test_the_console_script_works_from_any_directory(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "toolcrib"
    for cwd in (tmp_path, ROOT, Path("/")):
        done = subprocess.run(
            [str(script), "--version"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0 and "0.1.0" in done.stdout, (cwd, done.stderr)
