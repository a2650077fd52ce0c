"""The sandbox image: tag hashing, build context, build caching, status,
doctor and their CLI commands."""

from __future__ import annotations

import gc
import io
import json
import os
import shutil
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.sandbox import image
from toolcrib.sandbox.doctor import doctor


def test_tag_is_a_stable_content_hash() -> None:
    tag = image.image_tag()
    repo, _, digest = tag.partition(":")
    assert repo == image.IMAGE_REPOSITORY
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert image.image_tag() == tag


def test_tag_changes_when_the_recipe_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before, base_before = image.image_tag(), image.base_tag()
    recipes = tmp_path / "recipes"
    shutil.copytree(image._recipes_dir(), recipes)
    (recipes / "Dockerfile").write_text((recipes / "Dockerfile").read_text() + "\n# changed\n")
    monkeypatch.setattr(image, "_recipes_dir", lambda: recipes)
    assert image.image_tag() != before
    # The offline base only depends on its own recipe.
    assert image.base_tag() == base_before
    (recipes / "build-base.sh").write_text((recipes / "build-base.sh").read_text() + "\n# changed\n")
    assert image.base_tag() != base_before


def test_context_holds_harness_policy_and_restrictedpython() -> None:
    files = image.context_files()
    assert "Dockerfile" in files
    package = {p.rsplit("/", 1)[1] for p in files if p.startswith("opt/toolcrib/tcbox/")}
    assert {"__init__.py", "harness.py", "execute.py"} <= package
    assert "opt/toolcrib/lib/RestrictedPython/__init__.py" in files
    # Every sibling module execute.py imports relatively is shipped too.
    inside_dir = Path(image.__file__).parent / "inside"
    for name in package - {"__init__.py"}:
        assert files[f"opt/toolcrib/tcbox/{name}"] == (inside_dir / name).read_bytes()
    names = tarfile.open(fileobj=io.BytesIO(image.build_context())).getnames()
    assert sorted(set(files) - set(names)) == []


def test_apt_mirror_is_a_debian_uri() -> None:
    mirror = image.apt_mirror()
    assert mirror.startswith(("http://", "https://", "file:/"))


@pytest.mark.docker
def test_build_is_cached_by_hash(docker_image: str) -> None:
    lines: list[str] = []
    status = image.build_image(offline=True, progress=lines.append)
    assert status["present"] and status["tag"] == docker_image
    assert lines == [f"{docker_image} is present"]
    assert status["id"].startswith("sha256:")


@pytest.mark.docker
def test_image_runs_as_nobody_with_harness_command(docker_image: str, docker_client: Any) -> None:
    client = docker_client
    info = image.find_image(client, docker_image)
    assert info is not None
    config = info["Config"]
    assert config["User"] == "65534:65534"
    assert "tcbox.harness" in " ".join(config["Cmd"])
    assert config["Labels"]["toolcrib.image.hash"] == docker_image.partition(":")[2]


@pytest.mark.docker
def test_doctor_reports_every_check_ok(docker_image: str) -> None:
    report = doctor(restricted=False)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert failed == []
    names = {c["name"] for c in report["checks"]}
    assert {
        "engine reachable",
        "image present",
        "memory limit",
        "pids limit",
        "no-new-privileges",
        "read-only root",
        "no network",
    } <= names
    assert report["ok"] is True


@pytest.mark.docker
def test_cli_image_status_and_doctor_json(docker_image: str) -> None:
    runner = CliRunner()
    status = runner.invoke(cli, ["image", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["tag"] == docker_image
    build = runner.invoke(cli, ["image", "build", "--offline", "--json"])
    assert build.exit_code == 0, build.output
    assert json.loads(build.stdout)["present"] is True
    doctor = runner.invoke(cli, ["doctor", "--json"])
    report = json.loads(doctor.stdout)
    assert doctor.exit_code == (0 if report["ok"] else 6)
    assert any(c["name"] == "restricted backend" for c in report["checks"])


def test_cli_without_engine_exits_6(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    runner = CliRunner()
    result = runner.invoke(cli, ["image", "status"])
    assert result.exit_code == 6
    assert "no Docker engine answers" in result.output
    assert "Traceback" not in result.output
    build = runner.invoke(cli, ["image", "build", "--offline"])
    assert build.exit_code == 6 and "no Docker engine answers" in build.output
    doctor = runner.invoke(cli, ["doctor", "--json", "--no-probe"])
    assert doctor.exit_code == 6
    report = json.loads(doctor.stdout)
    assert report["ok"] is False and report["checks"][0]["name"] == "engine reachable"


def _resource_warnings(action: Callable[[], object]) -> list[str]:
    """The ResourceWarnings raised while `action` runs and its garbage is
    collected (a socket nobody closed warns when the collector frees it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        action()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_no_engine_leaves_no_socket_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-py leaks the socket of a failed Unix connect: asking it about a
    missing engine must not be how toolcrib finds the engine missing."""
    from toolcrib.sandbox.docker import DockerBackend

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")

    def connect_fails() -> None:
        with pytest.raises(image.ImageBuildError):
            image.connect(timeout=5)

    assert _resource_warnings(connect_fails) == []
    assert _resource_warnings(lambda: doctor(probe=False, restricted=False)) == []
    assert _resource_warnings(lambda: image.image_status()) == []

    def backend_without_engine() -> None:
        backend = DockerBackend(pool_size=0)
        assert backend.unavailable_reason is not None and "no Docker engine answers" in backend.unavailable_reason
        backend.close()
        backend.close()  # twice is fine

    assert _resource_warnings(backend_without_engine) == []


@pytest.mark.docker
def test_prune_removes_other_harness_tags_only(docker_image: str, docker_client: Any) -> None:
    client = docker_client
    stale = f"{image.IMAGE_REPOSITORY}:0000000000000000"
    client.api.tag(docker_image, image.IMAGE_REPOSITORY, "0000000000000000")
    assert image.find_image(client, stale) is not None
    result = CliRunner().invoke(cli, ["image", "prune", "--json"])
    assert result.exit_code == 0, result.output
    assert stale in json.loads(result.stdout)["removed"]
    assert image.find_image(client, stale) is None
    assert image.find_image(client, docker_image) is not None


def test_doctor_lists_each_jail_layer_of_the_restricted_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # No engine: only the restricted backend is checked, for real.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    from toolcrib.sandbox import get_backend
    from toolcrib.sandbox.restricted import JAIL_LAYERS, WEAK_JAIL_ENV

    report = doctor(probe=False)
    section = report["restricted"]
    layers = {entry["layer"]: entry for entry in section["layers"]}
    assert set(JAIL_LAYERS) <= set(layers)
    assert {name for name, entry in layers.items() if entry["required"]} == set(JAIL_LAYERS)
    assert all(isinstance(entry["in_force"], bool) and entry["detail"] for entry in layers.values())
    info = get_backend("restricted").info()
    assert section["weak_allowed"] is info["weak_allowed"]
    if WEAK_JAIL_ENV not in os.environ:
        assert section["weak_allowed"] is False
    jail = next(c for c in report["checks"] if c["name"] == "restricted jail")
    assert jail["ok"] is all(layers[name]["in_force"] for name in JAIL_LAYERS)
    # What doctor calls in force is what a call reports it ran under.
    call = next(c for c in report["checks"] if c["name"] == "restricted backend")
    if call["ok"]:
        in_force = {name for name, entry in layers.items() if entry["in_force"]}
        assert set(section["call_layers"]) == in_force


def test_cli_doctor_prints_the_layers_and_weak_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    runner = CliRunner()
    text = runner.invoke(cli, ["doctor", "--no-probe"])
    assert "restricted backend layers (weak isolation allowed: " in text.stdout
    assert "landlock (required): " in text.stdout and "seccomp (required): " in text.stdout
    report = json.loads(runner.invoke(cli, ["doctor", "--no-probe", "--json"]).stdout)
    assert {e["layer"] for e in report["restricted"]["layers"]} >= {"landlock", "seccomp"}
    assert isinstance(report["restricted"]["weak_allowed"], bool)


def test_doctor_text_marks_missing_layers_and_a_backend_without_a_report() -> None:
    from toolcrib.cli.image import _layer_lines
    from toolcrib.sandbox.doctor import _layers

    section = {
        "weak_allowed": True,
        "layers": _layers(
            {
                "layers": [
                    {"layer": "landlock", "in_force": False, "required": True, "detail": "kernel too old"},
                    {"layer": "netns", "in_force": True, "required": False, "detail": "own namespace"},
                    "not a layer",
                ]
            }
        ),
    }
    lines = _layer_lines(section)
    assert "restricted backend layers (weak isolation allowed: yes):" in lines
    assert "  MISSING   landlock (required): kernel too old" in lines
    assert "  in force  netns: own namespace" in lines
    # A backend from before the jail reports no layers: said so, no crash.
    assert _layers({}) == []
    assert "  (this backend reports no layers)" in _layer_lines({"layers": [], "weak_allowed": None})


@pytest.mark.network
@pytest.mark.docker
def test_prune_keeps_current_runtime_images_unless_asked(docker_image: str, docker_client: Any) -> None:
    from toolcrib.sandbox import packages

    client = docker_client
    lock = packages.resolve(["six"])  # small and pure Python: a quick runtime image
    tag = image.runtime_tag(lock, docker_image)
    image.build_runtime_image(lock, client, base=docker_image)
    assert image.find_image(client, tag) is not None
    # Built on the current sandbox image: a plain prune keeps it...
    kept = CliRunner().invoke(cli, ["image", "prune", "--json"])
    assert kept.exit_code == 0, kept.output
    assert tag not in json.loads(kept.stdout)["removed"]
    assert image.find_image(client, tag) is not None
    # ...and --runtime removes it (the next call that needs it rebuilds it offline).
    gone = CliRunner().invoke(cli, ["image", "prune", "--runtime", "--json"])
    assert gone.exit_code == 0, gone.output
    assert tag in json.loads(gone.stdout)["removed"]
    assert image.find_image(client, tag) is None
    assert image.find_image(client, docker_image) is not None
