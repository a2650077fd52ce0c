"""α-UMi's tool layer on toolcrib: a planner, a caller and a summarizer.

α-UMi ("Small LLMs Are Weak Tool Learners: A Multi-LLM Agent") splits a
tool-using agent into three models. toolcrib is the caller's world:

1. the PLANNER sees the request, the tools `Registry.search` found for it
   (verified only, best fit first) and what happened so far, and answers
   ``CALL <tool>: <what for>`` or ``FINISH``;
2. the CALLER gets that tool's exported definition (`toolcrib.exports`, the
   same JSON a function-calling model is given) and answers
   ``{"name": ..., "arguments": {...}}``; the call is checked against the
   exported schema before anything runs;
3. toolcrib runs it in the sandbox (`Registry.call`), and the structured
   result, or the error, goes back to the planner as the next observation;
4. the SUMMARIZER writes the answer from the request and the observations.

Any callable ``model(role, prompt) -> reply`` can stand behind the three roles.
Here it is a scripted one, so the example runs with no network:

    .venv/bin/python examples/alpha_umi.py

tests/doors/test_alpha_umi_example.py runs the loop with scripted replies, including
a caller that gets the arguments wrong and a tool that raises.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from toolcrib import Registry, ToolcribError
from toolcrib.exports import export_definitions

__all__ = ["Episode", "ScriptedModel", "Step", "main", "run_episode"]

Model = Callable[[str, str], str]  # (role, prompt) -> reply


@dataclass
class Step:
    """One planner decision and what came of it."""

    plan: str
    call: dict[str, Any] | None = None
    observation: dict[str, Any] = field(default_factory=dict)


@dataclass
class Episode:
    question: str
    candidates: list[str]
    steps: list[Step]
    answer: str


class ScriptedModel:
    """Replies written in advance, one queue per role; every prompt is kept
    so a test can see what each role was shown."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = {role: list(replies) for role, replies in script.items()}
        self.prompts: list[tuple[str, str]] = []

    def __call__(self, role: str, prompt: str) -> str:
        self.prompts.append((role, prompt))
        if not self.script.get(role):
            raise RuntimeError(f"the script has no more replies for the {role}")
        return self.script[role].pop(0)


_PLAN = re.compile(r"^\s*CALL\s+([A-Za-z0-9_-]+)\s*:?(.*)$", re.S)


def _planner_prompt(question: str, tools: list[dict[str, Any]], steps: list[Step]) -> str:
    lines = [f"Request: {question}", "Tools that fit (best first):"]
    lines += [f"- {t['function']['name']}: {t['function']['description'].splitlines()[0]}" for t in tools] or ["- none"]
    for i, step in enumerate(steps, 1):
        lines.append(f"Step {i}: {step.plan} -> {json.dumps(step.observation, sort_keys=True)}")
    lines.append("Answer 'CALL <tool>: <sub-goal>' or 'FINISH'.")
    return "\n".join(lines)


def _check_call(reply: str, tool: dict[str, Any]) -> dict[str, Any]:
    """The caller's reply as {name, arguments}, valid against the exported
    definition; ValueError says what is wrong (the planner is told)."""
    try:
        call = json.loads(reply)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the call is not JSON: {exc.msg}") from None
    if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
        raise ValueError('the call must be {"name": ..., "arguments": {...}}')
    if call["name"] != tool["function"]["name"]:
        raise ValueError(f"the planner chose {tool['function']['name']}, the caller called {call['name']!r}")
    try:
        jsonschema.validate(call["arguments"], tool["function"]["parameters"])
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
        raise ValueError(f"{where}: {exc.message}") from None
    return call


def run_episode(reg: Registry, question: str, model: Model, *, max_steps: int = 4) -> Episode:
    """Plan, call, observe until the planner says FINISH (or max_steps), then summarize."""
    hits = reg.search(question, verified_only=True, limit=5)
    tools = export_definitions(hits, "openai").definitions
    by_name = {t["function"]["name"]: (t, hit.ref) for t, hit in zip(tools, hits)}
    steps: list[Step] = []
    for _ in range(max_steps):
        plan = model("planner", _planner_prompt(question, tools, steps)).strip()
        chosen = _PLAN.match(plan)
        if chosen is None:
            break  # FINISH, or anything that is not a call
        step = Step(plan=plan)
        steps.append(step)
        if chosen.group(1) not in by_name:
            step.observation = {"status": "invalid", "error": f"no tool named {chosen.group(1)!r} was offered"}
            continue
        tool, ref = by_name[chosen.group(1)]
        reply = model(
            "caller",
            f"Sub-goal: {chosen.group(2).strip()}\nTool: {json.dumps(tool)}\n"
            f'Reply with {{"name": ..., "arguments": {{...}}}} only.',
        )
        try:
            step.call = _check_call(reply, tool)
        except ValueError as exc:
            step.observation = {"status": "invalid", "error": str(exc)}
            continue
        try:
            outcome = reg.call(ref, step.call["arguments"])
        except ToolcribError as exc:  # refused by policy, or arguments the registry refuses
            step.observation = {"status": "refused", "error": exc.message}
            continue
        step.observation = {
            k: v for k, v in outcome.to_json().items() if k in {"status", "result", "error", "limit", "tool"}
        }
    notes = (
        "\n".join(f"- {s.plan} -> {json.dumps(s.observation, sort_keys=True)}" for s in steps) or "- no tool was used"
    )
    answer = model("summarizer", f"Request: {question}\nWhat the tools said:\n{notes}\nAnswer the request.")
    return Episode(question=question, candidates=[h.ref for h in hits], steps=steps, answer=answer.strip())


def main() -> None:
    examples = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp) / "tools.db", actor="alpha-umi") as reg:
        reg.add(
            (examples / "days_between.py").read_text(),
            tests=json.loads((examples / "days_between.tests.json").read_text()),
        )
        reg.verify("days_between")
        model = ScriptedModel(
            {
                "planner": [
                    "CALL days_between: count the days from 2024-02-28 to 2024-03-01",
                    "CALL days_between: the same, with ISO dates as strings",
                    "FINISH",
                ],
                # The first call passes numbers for dates: the exported schema catches it
                # before anything runs, and the planner sees why.
                "caller": [
                    '{"name": "days_between", "arguments": {"start": 20240228, "end": 20240301}}',
                    '{"name": "days_between", "arguments": {"start": "2024-02-28", "end": "2024-03-01"}}',
                ],
                "summarizer": ["2024 is a leap year: there are 2 days from 28 February to 1 March."],
            }
        )
        episode = run_episode(reg, "How many days are there from 2024-02-28 to 2024-03-01?", model)
        print(f"request:    {episode.question}")
        print(f"candidates: {', '.join(episode.candidates)}")
        for i, step in enumerate(episode.steps, 1):
            print(f"step {i}:     {step.plan}")
            print(f"            -> {json.dumps(step.observation, sort_keys=True)}")
        print(f"answer:     {episode.answer}")


if __name__ == "__main__":
    main()
