"""Comparing two versions: unified diffs of source and signature JSON, and
the semver bump the change implies (`signature.bump_kind`)."""

from __future__ import annotations

import difflib
import json

from .models import ToolDiff, ToolVersion
from .signature import bump_kind

__all__ = ["tool_diff"]


def tool_diff(old: ToolVersion, new: ToolVersion) -> ToolDiff:
    """What changed from `old` to `new` (see `Registry.diff`)."""
    source_diff = "".join(
        difflib.unified_diff(
            old.source.splitlines(keepends=True), new.source.splitlines(keepends=True), old.ref, new.ref
        )
    )
    schema_diff = "".join(difflib.unified_diff(_schema_lines(old), _schema_lines(new), old.ref, new.ref))
    bump = "none" if old.sha256 == new.sha256 else bump_kind(old.signature, new.signature)
    return ToolDiff(old=old.ref, new=new.ref, source_diff=source_diff, schema_diff=schema_diff, bump=bump)


def _schema_lines(tool: ToolVersion) -> list[str]:
    text = json.dumps(tool.signature.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False)
    return [line + "\n" for line in text.splitlines()]
