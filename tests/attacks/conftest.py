"""Attacks that target one backend are not generated for the other: they are
deselected at collection, so a skip in this suite always means something.
The wasm backend's runs of the corpus are test_wasm_attacks.py's (policy on
and off, with the answers of a 32-bit CPython 3.15 guest)."""

from __future__ import annotations

import pytest

# The canaries of test_attacks.py, for test_wasm_attacks.py too.
from .test_attacks import canaries  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        attack, backend = params.get("attack"), params.get("backend")
        if backend == "wasm" and attack is not None:
            drop.append(item)  # test_wasm_attacks.py runs them, with the guest's own answers
        elif attack is not None and backend is not None and attack.applies_to not in ("both", backend):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
