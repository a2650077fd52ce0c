"""The `llm` plugin and human review (issue 18): a model-made version that
waits for a reviewer is not offered as an llm tool, and a call that reaches
it anyway is refused as a tool error naming the approve command; once a
trusted key approves it, it is offered and runs. Through llm's own CLI (no
network: the scripted echo model); real keys; the real restricted sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.registry.attest import generate_key
from toolcrib.registry.models import ProvenanceInput

from toolcrib import Registry

MADE = "def triple(x: int) -> int:\n    return 3 * x\n"
HUMAN = "def double(x: int) -> int:\n    return 2 * x\n"


@pytest.fixture
def llm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from toolcrib import llm_plugin

    path = tmp_path / "tools.db"
    with Registry(path, actor="tester") as registry:
        registry.add(MADE, tests=[{"args": {"x": 1}, "expected": 3}], provenance=ProvenanceInput(generator="gpt-4o"))
        registry.add(HUMAN, tests=[{"args": {"x": 1}, "expected": 2}], provenance=ProvenanceInput(generator="human"))
        assert registry.verify("triple").status == "verified" and registry.verify("double").status == "verified"
    monkeypatch.setenv("TOOLCRIB_REGISTRY", str(path))
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    yield path
    llm_plugin.close_shared_registries()


def _offered() -> set[str]:
    from llm.cli import cli

    result = CliRunner().invoke(cli, ["tools", "list", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {t["name"] for t in json.loads(result.output)["tools"] if t.get("plugin") == "toolcrib"}


def test_an_unapproved_version_is_not_offered_and_its_call_is_refused(llm_env: Path, tmp_path: Path) -> None:
    from toolcrib import llm_plugin

    assert _offered() == {"double"}
    registry = llm_plugin.shared_registry()
    assert registry is not None
    run = llm_plugin._implementation(registry, "triple@1.0.0")
    with pytest.raises(llm_plugin.ToolcribCallError, match="awaits review .*toolcrib approve triple@1.0.0"):
        run(x=2)
    llm_plugin.close_shared_registries()
    key = tmp_path / "reviewer"
    with Registry(llm_env, actor="alice") as registry:
        registry.trust_key(generate_key(key, name="alice"))
        registry.approve("triple@1.0.0", key=key)
    assert _offered() == {"double", "triple"}
    again = llm_plugin.shared_registry()
    assert again is not None
    assert llm_plugin._implementation(again, "triple@1.0.0")(x=2) == 6
