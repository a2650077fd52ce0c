"""No command leaves anything in the temp directory: each CLI invocation
runs as users run it (a fresh process) with its own empty TMPDIR, which must
still be empty when the process has exited. (The zygote used to leave one
`toolcrib-zygote-*` directory per process: 696 after one test run.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _toolcrib(
    args: list[str], tmpdir: Path, registry: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "TOOLCRIB_REGISTRY": str(registry)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "toolcrib"), *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=300,
        cwd=tmpdir.parent,
    )


@pytest.fixture()
def sandboxed_tmp(tmp_path: Path) -> Path:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return tmpdir


def test_no_command_leaves_anything_in_the_temp_dir(sandboxed_tmp: Path, tmp_path: Path) -> None:
    registry = tmp_path / "registry.db"
    bundle = tmp_path / "bundle.json"
    steps: list[tuple[list[str], int | tuple[int, ...]]] = [
        (["init"], 0),
        (
            [
                "add",
                str(EXAMPLES / "word_sorting.py"),
                "--tests",
                str(EXAMPLES / "word_sorting.tests.json"),
                "--strip-top-level",
            ],
            0,
        ),
        (["verify", "sort_words"], 0),
        (["call", "sort_words", "--args", json.dumps({"words": ["b", "a"]})], 0),
        (["call", "sort_words", "--snippet", "-", "--json"], 0),
        (["call", "sort_words", "--args", json.dumps({"words": "not a list"})], 2),
        (["show", "sort_words", "--json"], 0),
        (["list", "--json"], 0),
        (["provenance", "sort_words"], 0),
        (["export", "--output", str(bundle)], 0),
        (["audit", "verify"], 0),
        (["audit", "--json"], 0),
        (["search", "sort words", "--json"], 0),
        (["doctor", "--json"], (0, 6)),  # 6 when the Docker image is not built: not what this test is about
    ]
    for args, expected in steps:
        stdin = "ans = sort_words(['z', 'y'])\n" if "--snippet" in args else None
        done = _toolcrib(args, sandboxed_tmp, registry, stdin)
        assert done.returncode in (expected if isinstance(expected, tuple) else (expected,)), (
            args,
            done.returncode,
            done.stderr[-1000:],
        )
        left = sorted(p.name for p in sandboxed_tmp.iterdir())
        assert left == [], f"toolcrib {' '.join(args)} left {left} in the temp dir"
    shutil.rmtree(sandboxed_tmp)
