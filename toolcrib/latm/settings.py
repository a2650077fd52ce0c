"""The registry's settings (table from migration m005_latm); the loop keeps its
default model there, so everyone using one registry file gets the same one."""

from __future__ import annotations

from ..registry import Registry

__all__ = ["MODEL_KEY", "get_setting", "set_setting"]

MODEL_KEY = "latm.model"


def get_setting(reg: Registry, key: str) -> str | None:
    return reg.setting(key)


def set_setting(reg: Registry, key: str, value: str | None) -> None:
    """Set (or, with None, clear) a setting, with an audit entry (`Registry.set_setting`)."""
    reg.set_setting(key, value)
