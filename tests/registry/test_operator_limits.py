"""The registry's maximum limits are the operator's choice, never the tool
author's (issue 15, item 3): a version that declares more than the
registry allows is clamped at call time, `show` says so, the caller cannot
ask past a maximum either, and the operator changes a maximum with
`toolcrib limits`, audited. Real registry, real restricted backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.sandbox.contract import Limits

from toolcrib import Registry

# 2 MiB of text: over the default maximum output (1 MiB), under 16 MiB.
BIG = 'def big() -> str:\n    """Two MiB of text."""\n    return "x" * (2 * 1024 * 1024)\n'


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    with Registry(path, actor="author") as reg:
        # The author asks for the old registry maximum: 16 MiB of output.
        reg.add(BIG, limits=Limits(output=16384, wall=30, cpu=10))
    return path


def _cli(db: Path, *args: str, actor: str = "operator") -> tuple[int, str, str]:
    from toolcrib.cli import cli

    done = CliRunner().invoke(cli, ["--registry", str(db), "--actor", actor, *args], catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def _last(db: Path, event: str) -> dict:
    with Registry(db) as reg:
        entries = [e for e in reg.audit() if e.event == event]
    assert entries, f"no {event} entry"
    return entries[-1].model_dump(mode="json")


def test_a_version_declaring_more_output_than_the_registry_allows_is_clamped_at_call_time(db: Path) -> None:
    with Registry(db, actor="caller") as reg:
        assert reg.max_limits.output == 1024
        out = reg.call("big", allow_unverified=True)
    assert (out.status, out.limit) == ("limit", "output")
    details = _last(db, "call")["details"]
    assert details["limits_lowered"] == {"output": [16384, 1024]}


def test_show_says_what_a_version_gets_here(db: Path) -> None:
    code, out, _ = _cli(db, "show", "big")
    assert code == 0
    assert "output=16384" in out and "clamped:    output=1024 (declared 16384)" in out
    code, out, _ = _cli(db, "show", "big", "--json")
    granted = json.loads(out)["granted_limits"]
    assert granted["limits"]["output"] == 1024 and granted["clamped"] == ["output"]


def test_the_operator_raises_a_maximum_with_toolcrib_limits_and_it_is_audited(db: Path) -> None:
    code, out, err = _cli(db, "limits", "--max", "output=4096", "--max", "wall=300")
    assert code == 0, err
    entry = _last(db, "setting")
    assert entry["actor"] == "operator"
    with Registry(db) as reg:
        settings = [e.details for e in reg.audit() if e.event == "setting"]
        assert {"key": "limits.max.output", "value": 4096} in settings
        assert {"key": "limits.max.wall", "value": 300.0} in settings
        assert reg.max_limits.output == 4096
        # Now the version gets what it asked for, up to the new maximum: 2 MiB fits.
        assert reg.call("big", allow_unverified=True).status == "ok"
    code, out, _ = _cli(db, "limits", "--json")
    shown = json.loads(out)
    assert shown["maxima"]["output"] == 4096 and shown["default_maxima"]["output"] == 1024
    assert shown["set_by"]["output"]["set_by"] == "operator"
    # Back to the default: audited too, and the call is clamped again.
    code, _, _ = _cli(db, "limits", "--unset", "output")
    assert code == 0
    assert _last(db, "setting")["details"] == {"key": "limits.max.output", "value": None, "default": 1024}
    with Registry(db) as reg:
        assert reg.call("big", allow_unverified=True).limit == "output"


def test_the_cli_call_path_reads_the_operators_maximum(db: Path) -> None:
    # `toolcrib call` reads the registry through plain sqlite3, not Registry.
    code, _, _ = _cli(db, "call", "big", "--allow-unverified")
    assert code == 5
    assert _cli(db, "limits", "--max", "output=4096")[0] == 0
    code, out, _ = _cli(db, "call", "big", "--allow-unverified")
    assert code == 0 and len(out) == 2 * 1024 * 1024 + 1


def test_a_caller_cannot_ask_past_the_operators_maximum(db: Path) -> None:
    code, _, err = _cli(db, "call", "big", "--allow-unverified", "--limit", "output=4096")
    assert code == 2 and "exceeds the maximum 1024" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max", "gpu=3"], "unknown limit 'gpu'"),
        (["--max", "output=0"], "must be > 0"),
        (["--max", "output=lots"], "not a number"),
        (["--max", "output=1.5"], "whole number"),
        (["--max", "output=2048", "--unset", "output"], "both set and unset"),
    ],
)
def test_a_bad_maximum_is_a_usage_error_and_changes_nothing(db: Path, args: list[str], message: str) -> None:
    code, _, err = _cli(db, "limits", *args)
    assert code == 2 and message in err
    with Registry(db) as reg:
        assert reg.max_limits.output == 1024
        assert not [e for e in reg.audit() if e.event == "setting"]


def test_maxima_given_in_code_win_over_the_stored_ones(db: Path) -> None:
    assert _cli(db, "limits", "--max", "output=4096")[0] == 0
    with Registry(db, max_limits=Limits(output=512)) as reg:
        assert reg.max_limits.output == 512


def test_add_says_when_a_declared_limit_is_over_the_maximum(db: Path, tmp_path: Path) -> None:
    source = tmp_path / "bigger.py"
    source.write_text(BIG.replace("def big", "def bigger"))
    code, _, err = _cli(db, "add", str(source), "--limit", "output=16384", actor="author")
    assert code == 0
    assert "output=16384 is over this registry's maximum: calls get output=1024" in err
