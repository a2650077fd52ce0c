"""examples/alpha_umi.py: the planner / caller / summarizer loop over the
Python API with scripted models (no network), the real registry and the real
restricted sandbox."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from toolcrib import Registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alpha_umi", EXAMPLES / "alpha_umi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["alpha_umi"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


alpha_umi = _load()

DIVIDE = '''\
def divide(a: float, b: float) -> float:
    """Divide a by b: the quotient of two numbers."""
    return a / b
'''


@pytest.fixture(scope="module")
def module_reg(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Built once for the module, as actor "alpha-umi": the two tools verified."""
    with Registry(tmp_path_factory.mktemp("alpha") / "r.db", actor="alpha-umi") as registry:
        registry.add(
            (EXAMPLES / "days_between.py").read_text(),
            tests=json.loads((EXAMPLES / "days_between.tests.json").read_text()),
        )
        registry.add(DIVIDE, tests=[{"args": {"a": 6, "b": 3}, "expected": 2.0}])
        registry.verify("days_between")
        registry.verify("divide")
        yield registry


def test_a_bad_call_is_caught_by_the_schema_then_corrected(module_reg: Registry) -> None:
    model = alpha_umi.ScriptedModel(
        {
            "planner": [
                "CALL days_between: days from 2024-02-28 to 2024-03-01",
                "CALL days_between: again, as strings",
                "FINISH",
            ],
            "caller": [
                '{"name": "days_between", "arguments": {"start": 20240228, "end": 20240301}}',
                '{"name": "days_between", "arguments": {"start": "2024-02-28", "end": "2024-03-01"}}',
            ],
            "summarizer": ["There are 2 days."],
        }
    )
    calls_before = len(module_reg.audit(event="call"))
    episode = alpha_umi.run_episode(module_reg, "How many days are there from 2024-02-28 to 2024-03-01?", model)
    assert episode.candidates[0] == "days_between@1.0.0"
    first, second = episode.steps
    assert first.call is None and first.observation["status"] == "invalid" and "start" in first.observation["error"]
    assert second.observation == {
        "status": "ok",
        "result": 2,
        "error": None,
        "limit": None,
        "tool": "days_between@1.0.0",
    }
    assert episode.answer == "There are 2 days."
    # Only the valid call reached the sandbox (and the audit log).
    assert len(module_reg.audit(event="call")) == calls_before + 1
    # The planner saw the candidates, then each observation; the caller saw the exported definition.
    planner = [p for role, p in model.prompts if role == "planner"]
    assert "- days_between: Number of days" in planner[0]
    assert '"status": "invalid"' in planner[1] and '"result": 2' in planner[2]
    caller = [p for role, p in model.prompts if role == "caller"]
    assert '"strict": true' in caller[0] and '"parameters"' in caller[0]
    summary = [p for role, p in model.prompts if role == "summarizer"][0]
    assert '"result": 2' in summary


def test_a_tool_error_goes_back_to_the_planner_as_data(module_reg: Registry) -> None:
    model = alpha_umi.ScriptedModel(
        {
            "planner": ["CALL divide: 1 by 0", "CALL divide: 1 by 4", "FINISH"],
            "caller": [
                '{"name": "divide", "arguments": {"a": 1, "b": 0}}',
                '{"name": "divide", "arguments": {"a": 1, "b": 4}}',
            ],
            "summarizer": ["1 / 0 is undefined; 1 / 4 = 0.25."],
        }
    )
    episode = alpha_umi.run_episode(module_reg, "What is the quotient of dividing 1 by 0, and of 1 by 4?", model)
    failed, worked = episode.steps
    assert failed.observation["status"] == "error"
    assert failed.observation["error"]["type"] == "ZeroDivisionError"
    assert worked.observation["status"] == "ok" and worked.observation["result"] == 0.25
    assert '"ZeroDivisionError"' in [p for role, p in model.prompts if role == "planner"][1]


def test_the_planner_can_only_pick_an_offered_tool_and_no_fit_means_no_call(module_reg: Registry) -> None:
    model = alpha_umi.ScriptedModel(
        {
            "planner": ["CALL translate: into French", "FINISH"],
            "summarizer": ["No tool can translate; a new one must be made."],
        }
    )
    episode = alpha_umi.run_episode(module_reg, "Translate 'good morning' into French.", model)
    assert episode.candidates == []
    assert "- none" in model.prompts[0][1]
    assert episode.steps[0].observation["status"] == "invalid" and "translate" in episode.steps[0].observation["error"]
    assert not [role for role, _ in model.prompts if role == "caller"]
    assert episode.answer.startswith("No tool")


def test_a_caller_naming_another_tool_is_refused(module_reg: Registry) -> None:
    model = alpha_umi.ScriptedModel(
        {
            "planner": ["CALL divide: 6 by 3", "FINISH"],
            "caller": ['{"name": "days_between", "arguments": {"start": "2024-01-01", "end": "2024-01-02"}}'],
            "summarizer": ["Could not compute."],
        }
    )
    episode = alpha_umi.run_episode(module_reg, "Divide 6 by 3: the quotient of two numbers", model)
    assert "caller called 'days_between'" in episode.steps[0].observation["error"]


def test_the_example_runs_as_a_script(capsys: pytest.CaptureFixture[str]) -> None:
    alpha_umi.main()
    out = capsys.readouterr().out
    assert "candidates: days_between@1.0.0" in out
    assert '"result": 2' in out and "answer:" in out
