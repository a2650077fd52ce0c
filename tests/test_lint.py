"""The checkout is ruff-clean: lint and format (the configuration is in
pyproject.toml's [tool.ruff]). Run by the test command like mypy is
(tests/test_typing.py), so a change that breaks either fails the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(
    "args", [("check", "--no-cache", "."), ("format", "--no-cache", "--check", ".")], ids=["check", "format"]
)
def test_ruff(args: tuple[str, ...]) -> None:
    done = _ruff(*args)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
