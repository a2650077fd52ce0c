"""Writing a listing as it is read (issue 21): a JSON array, a JSON object
ending in an array, or an aligned table, one item at a time, so `list`,
`list --json`, `export` and `audit` hold one row, never the whole listing.

The JSON written is byte for byte what ``json.dumps(value, indent=2,
ensure_ascii=False)`` writes for the whole value (an item's JSON holds no raw
newline: json escapes them in strings, so indenting an item is a replace).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from .common import _cell, echo_table

__all__ = ["TABLE_CHUNK", "echo_json_array", "echo_table_stream", "write_json_array", "write_json_object"]

# Rows whose widths one table block is aligned to (see `echo_table_stream`).
TABLE_CHUNK = 1000


def _echo(text: str) -> None:
    click.echo(text, nl=False)


def write_json_array(write: Callable[[str], Any], items: Iterable[Any], *, level: int = 0) -> int:
    """`items` as an indented JSON array at nesting `level`, written item by
    item (no newline after the closing bracket); returns how many."""
    pad = "  " * (level + 1)
    count = 0
    for item in items:
        text = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n" + pad)
        write(("[\n" if count == 0 else ",\n") + pad + text)
        count += 1
    write("[]" if count == 0 else "\n" + "  " * level + "]")
    return count


def write_json_object(write: Callable[[str], Any], head: dict[str, Any], key: str, items: Iterable[Any]) -> int:
    """``{**head, key: list(items)}`` as indented JSON, the items written one
    by one (and a final newline); returns how many items."""
    write("{\n")
    for name, value in head.items():
        text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        write(f"  {json.dumps(name, ensure_ascii=False)}: {text},\n")
    write(f"  {json.dumps(key, ensure_ascii=False)}: ")
    count = write_json_array(write, items, level=1)
    write("\n}\n")
    return count


def echo_json_array(items: Iterable[Any]) -> int:
    """`items` as the indented JSON array `echo_json` would print for the
    list of them, written to stdout as they come; returns how many."""
    count = write_json_array(_echo, items)
    click.echo("")
    return count


def echo_table_stream(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, chunk: int = TABLE_CHUNK) -> None:
    """`echo_table` in blocks of `chunk` rows: the header and each block are
    aligned to the widest cell seen so far (a listing up to `chunk` rows is
    `echo_table`'s exactly; a later, wider cell widens the rows after it)."""
    it = iter(rows)
    first = list(itertools.islice(it, chunk))
    echo_table(headers, first)
    if len(first) < chunk:
        return
    widths = [len(h) for h in headers]
    for row in first:
        widths = [max(w, len(_cell(v))) for w, v in zip(widths, row, strict=False)]
    while True:
        block = [[_cell(v) for v in row] for row in itertools.islice(it, chunk)]
        if not block:
            return
        for row in block:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        for row in block:
            click.echo(line.format(*row).rstrip())
