"""`make --holdout K`: what the finished tool gets right on task examples
it never saw (issue 19, docs/latm.md).

The K examples after the demos and the validation examples are held out:
the model sees none of them while it makes the tool. Once the tool is
wrapped, each is asked the way the tool user asks (`use`): the model gets
the wrapped tool (the verified module and its use cases) and the question,
and answers with a call snippet, which runs against the verified module in
the sandbox; its ``ans`` is compared with the example's target the way the
tool's tests compare. The accuracy goes into the version's provenance and
`make --json`; below ``--min-accuracy`` the make fails and nothing is
registered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from ..registry.cases import compare
from ..registry.errors import InvalidInput, SandboxUnavailable, ToolcribError
from ..registry.models import Comparator, TestCase
from ..sandbox import Backend, Limits
from ..sandbox.contract import PolicyName
from .answers import with_epilogue
from .models import Model
from .prompts import use_prompt, wrapped_tool
from .replies import ReplyTooLong, UseCase, check_reply, code_blocks
from .runs import describe_failure, run_snippet
from .tasks import Example, Task
from .transcript import Transcript

__all__ = ["HeldOut", "HoldoutReport", "held_out", "run_holdout"]


class HeldOut(BaseModel):
    """One held-out example: the model's snippet, what it answered, whether right."""

    question: str
    target: Any = None
    answer: Any = None
    correct: bool
    status: str = Field(description="ok, error, blocked, limit or no_code")
    error: str | None = None


class HoldoutReport(BaseModel):
    """The held-out accuracy of a made tool (`make --json`'s ``holdout``)."""

    examples: int
    correct: int
    accuracy: float
    min_accuracy: float | None = None
    answers: list[HeldOut] = Field(default_factory=list)


def held_out(task: Task, *, demos: int, validate: int, k: int) -> list[Example]:
    """The K examples after the demos and the validation ones; InvalidInput
    when the task has fewer, or one of them has no target."""
    if k < 0:
        raise InvalidInput("--holdout must be 0 or more")
    start = demos + validate
    chosen = task.examples[start : start + k]
    if len(chosen) < k:
        raise InvalidInput(
            f"{task.name} has {len(task.examples)} examples; --holdout {k} needs {start + k} "
            f"({demos} demos + {validate} for validation + {k} held out)"
        )
    missing = [start + i + 1 for i, e in enumerate(chosen) if not e.has_target]
    if missing:
        raise InvalidInput(f"{task.name}: held-out examples {', '.join(map(str, missing))} have no 'target'")
    return chosen


def run_holdout(
    examples: Sequence[Example],
    *,
    model: Model,
    transcript: Transcript,
    source: str,
    entrypoint: str,
    cases: Sequence[UseCase],
    comparator: Comparator,
    limits: Limits | None,
    policy: PolicyName | None = None,
    backend: str,
    runner: Backend,
    min_accuracy: float | None = None,
    progress: Callable[[str, int, str], None] | None = None,
) -> HoldoutReport:
    """Ask each held-out example as the tool user would and score it (see
    the module's doc). A model that cannot reply scores that example wrong;
    SandboxUnavailable if nothing can run."""
    wrapped = wrapped_tool(source, cases)
    answers: list[HeldOut] = []
    for number, example in enumerate(examples, start=1):
        if progress is not None:
            progress("holdout", number, f"held-out example {number} of {len(examples)}")
        try:
            reply = transcript.ask(model.start(), "holdout", use_prompt(wrapped, example.input))
            blocks = code_blocks(check_reply(reply.text))
        except ReplyTooLong as exc:
            blocks, why = [], str(exc)
        except ToolcribError as exc:  # the model failed (provider error, replay ran out)
            blocks, why = [], exc.message
        else:
            why = "the reply has no ```python block"
        if not blocks:
            answers.append(
                HeldOut(question=example.input, target=example.target, correct=False, status="no_code", error=why)
            )
            continue
        as_text = isinstance(example.target, str)
        snippet = with_epilogue(blocks[0], example.input, as_text=as_text)
        result = run_snippet(source, entrypoint, snippet, limits=limits, backend=backend, runner=runner, policy=policy)
        if result.status == "unavailable":
            raise SandboxUnavailable(result.error.message if result.error else f"the {backend} backend is unavailable")
        probe = TestCase(snippet="ans = 0", expected=example.target, comparator=comparator)
        correct = result.status == "ok" and bool(compare(probe, result.result)[0])
        answers.append(
            HeldOut(
                question=example.input,
                target=example.target,
                answer=result.result if result.status == "ok" else None,
                correct=correct,
                status=result.status,
                error=None if result.status == "ok" else describe_failure(result),
            )
        )
    right = sum(1 for a in answers if a.correct)
    return HoldoutReport(
        examples=len(answers),
        correct=right,
        accuracy=round(right / len(answers), 4) if answers else 0.0,
        min_accuracy=min_accuracy,
        answers=answers,
    )
