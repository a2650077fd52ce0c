"""Attacks that target one backend are not generated for the other: they are
deselected at collection, so a skip in this suite always means something."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        attack, backend = params.get("attack"), params.get("backend")
        if attack is not None and backend is not None and attack.applies_to not in ("both", backend):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
