"""`list`, `list --json`, `export` and `audit` streamed (issue 21): paging
(--limit, --offset, --after) and filters (--status, --name GLOB) on the
command line, the JSON still one valid array (or, for export, the bundle
json.dumps wrote before), byte for byte, and bad paging refused with exit 2.
The CLI in-process on `reg`'s file; nothing runs in a sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcrib import Registry

TOOL = 'def {name}(x: int) -> int:\n    """Tool {name}."""\n    return x\n'


@pytest.fixture
def cli_registry(reg: Registry) -> Path:
    for name in ("alpha", "beta", "gamma", "delta", "sort_a", "sort_b"):
        reg.add(TOOL.format(name=name))
    reg.yank("gamma", "bad")
    return reg.path


def _names(result) -> list[str]:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return [t["name"] for t in json.loads(result.stdout)]


def test_list_json_is_the_same_array_and_pages(tc, reg: Registry) -> None:
    out = tc("list", "--json")
    expected = []
    for tool in reg.list():
        data = tool.model_dump(mode="json")
        data["ref"], data["requires"] = tool.ref, tool.requires
        data.pop("source", None)
        data["provenance"].pop("prompt", None)
        expected.append(data)
    assert out.stdout == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    assert _names(tc("list", "--json", "--limit", "2")) == ["alpha", "beta"]
    assert _names(tc("list", "--json", "--limit", "2", "--offset", "2")) == ["delta", "sort_a"]
    assert _names(tc("list", "--json", "--limit", "2", "--after", "beta")) == ["delta", "sort_a"]
    assert _names(tc("list", "--json", "--name", "sort_*")) == ["sort_a", "sort_b"]
    assert _names(tc("list", "--json", "--all", "--name", "g*")) == ["gamma"]
    assert _names(tc("list", "--json", "--status", "verified")) == []
    assert tc("list", "--json", "--name", "nothing*").stdout == "[]\n"
    stats = json.loads(tc("list", "--json", "--stats", "--limit", "1").stdout)
    assert [s["usage"]["calls"] for s in stats] == [0]


def test_list_table_pages(tc) -> None:
    lines = tc("list", "--limit", "3", "--offset", "1").stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "VERSION", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ["beta", "delta", "sort_a"]
    assert [line.split()[0] for line in tc("list", "--stats", "--name", "sort_?").stdout.splitlines()[1:]] == [
        "sort_a",
        "sort_b",
    ]


@pytest.mark.parametrize(
    "args", [("--limit", "-1"), ("--offset", "x"), ("--status", "bogus")], ids=["limit", "offset", "status"]
)
def test_bad_paging_is_exit_2(tc, args: tuple[str, ...]) -> None:
    result = tc("list", *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_export_streams_the_same_bundle(tc, reg: Registry, tmp_path: Path) -> None:
    out = tc("export")
    assert out.exit_code == 0
    bundle = json.loads(out.stdout)
    expected = reg.export()
    assert bundle["tools"] == expected["tools"]
    assert (
        out.stdout
        == json.dumps({**expected, "exported_at": bundle["exported_at"]}, indent=2, ensure_ascii=False) + "\n"
    )
    target = tmp_path / "b.json"
    done = tc("export", "sort_a", "-o", str(target))
    assert done.exit_code == 0 and "Exported 1 version(s)" in done.stderr
    assert [t["name"] for t in json.loads(target.read_text())["tools"]] == ["sort_a"]
    assert not target.with_name("b.json.partial").exists()
    # An unknown tool: nothing written, no partial file left.
    assert tc("export", "nope", "-o", str(tmp_path / "c.json")).exit_code != 0
    assert not (tmp_path / "c.json").exists() and not (tmp_path / "c.json.partial").exists()
    refused = tc("export", "sort_a", "nope")
    assert refused.exit_code != 0 and refused.stdout == ""


def test_audit_json_is_one_array(tc, reg: Registry) -> None:
    entries = json.loads(tc("audit", "--json").stdout)
    assert [e["seq"] for e in entries] == [e.seq for e in reg.audit()]
    newest = json.loads(tc("audit", "--json", "--limit", "2").stdout)
    assert [e["seq"] for e in newest] == [e.seq for e in reg.audit()][-2:]
    table = tc("audit", "--since", "2000-01-01", "--event", "yank").stdout.splitlines()
    assert len(table) == 2 and "gamma" in table[1]
