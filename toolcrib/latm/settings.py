"""The registry's settings (table from migration m005_latm); the loop keeps its
default model there, so everyone using one registry file gets the same one."""

from __future__ import annotations

from ..registry import Registry
from ..registry.audit import append_entry
from ..registry.errors import InvalidInput
from ..registry.store import utc_now, write_transaction

__all__ = ["MODEL_KEY", "get_setting", "set_setting"]

MODEL_KEY = "latm.model"


def get_setting(reg: Registry, key: str) -> str | None:
    row = reg.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def set_setting(reg: Registry, key: str, value: str | None) -> None:
    """Set (or, with None, clear) a setting, with an audit entry."""
    if value is not None and not value.strip():
        raise InvalidInput(f"{key} must not be empty")
    with write_transaction(reg.db):
        if value is None:
            reg.db.execute("DELETE FROM settings WHERE key = ?", [key])
        else:
            reg.db.execute(
                "INSERT INTO settings (key, value, updated_by, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, "
                "updated_at = excluded.updated_at",
                [key, value, reg.actor, utc_now()],
            )
        append_entry(reg.db, actor=reg.actor, event="setting", details={"key": key, "value": value})
