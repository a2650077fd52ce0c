"""`use`: the tool user. For each question the model gets the wrapped tool
(the stored source and its use cases) and answers with a call snippet;
toolcrib runs that snippet against the stored version through
`Registry.call` (sandboxed, policy-checked, audited) and reads `ans`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, Field

from ..registry import Registry, ToolVersion
from ..registry.calls import backend_name
from ..registry.cases import compare
from ..registry.errors import InvalidInput, SandboxUnavailable
from ..registry.models import TestCase
from .answers import EPILOGUE_MARK, with_epilogue
from .make import USE_CASES_KEY
from .models import Model
from .prompts import use_prompt, wrapped_tool
from .replies import ReplyTooLong, UseCase, check_reply, code_blocks
from .tasks import Example

__all__ = ["Answer", "UseReport", "tool_use_cases", "use", "wrapped_for"]


class Answer(BaseModel):
    """One question: `--json` gives one of these per question."""

    question: str
    snippet: str | None = Field(None, description="the model's call snippet (None if its reply had no code)")
    status: str = Field(description="ok, error, blocked, limit, or no_code (the reply had no code)")
    answer: Any = None
    target: Any = None
    correct: bool | None = Field(None, description="None when the question has no target")
    error: str | None = None
    duration_ms: float = 0.0


class UseReport(BaseModel):
    tool: str
    model: str
    answers: list[Answer]
    scored: int = Field(description="questions that had a target")
    correct: int
    accuracy: float | None = None
    tokens: dict[str, int] | None = None


def _blocks(text: str) -> tuple[list[str], str | None]:
    """The reply's code blocks, or none and why: a reply over the cap is not read."""
    try:
        return code_blocks(check_reply(text)), None
    except ReplyTooLong as exc:
        return [], str(exc)


def tool_use_cases(tool: ToolVersion) -> list[UseCase]:
    """The use cases stored by `make`; for a tool added by hand, its snippet
    tests stand in (the epilogue `make` appends is left out)."""
    raw = tool.provenance.metadata.get(USE_CASES_KEY)
    if raw:
        # Metadata may come from an imported bundle: read it like any input.
        from ..sandbox.inside.wire import ProtocolError, read_json

        try:
            stored = read_json(raw, f"{tool.ref}'s stored use cases")
            return [UseCase(question=c["question"], solution=c["solution"]) for c in stored]
        except ProtocolError as exc:
            raise InvalidInput(str(exc)) from None
        except (TypeError, KeyError, ValueError):
            raise InvalidInput(f"{tool.ref}'s stored use cases are not a list of question/solution pairs") from None
    cases = []
    for test in tool.tests:
        if test.snippet is not None:
            solution = test.snippet.split("\n" + EPILOGUE_MARK)[0].rstrip() + "\n"
            cases.append(UseCase(question=test.name or "(a question)", solution=solution))
    return cases


def wrapped_for(tool: ToolVersion) -> str:
    return wrapped_tool(tool.source, tool_use_cases(tool))


def use(
    reg: Registry,
    ref: str,
    questions: Sequence[Example],
    model: Model,
    *,
    backend: str | None = None,
    limits: dict[str, float] | None = None,
    on_answer: Callable[[Answer], None] | None = None,
) -> UseReport:
    """Answer each question with the tool; score it when it has a target.

    Raises PolicyRefused for an unverified or yanked version (as `call` does),
    ModelFailed when the model cannot reply."""
    tool = reg.get(ref, allow_yanked=False)
    backend = backend_name(backend)  # None: restricted where the Linux jail exists, else wasm
    wrapped = wrapped_for(tool)
    # Answers are scored the way the tool's own tests compare (the
    # comparator chosen when it was made), else exactly.
    kinds = {t.comparator for t in tool.tests}
    comparator = kinds.pop() if len(kinds) == 1 else "exact"
    answers: list[Answer] = []
    tokens: dict[str, int] | None = {"input": 0, "output": 0}

    def run_one(example: Example, snippet: str, target: Any) -> Answer:
        as_text = example.has_target and isinstance(example.target, str)
        outcome = reg.call(
            tool.ref, snippet=with_epilogue(snippet, example.input, as_text=as_text), backend=backend, limits=limits
        )
        if outcome.status == "unavailable":  # nothing can run: stop the batch (exit 6), as `call` would
            raise SandboxUnavailable(
                outcome.error.message if outcome.error else f"the {backend} backend is unavailable"
            )
        correct: bool | None = None
        if example.has_target:
            probe = TestCase(snippet="ans = 0", expected=target, comparator=comparator)
            correct = outcome.status == "ok" and compare(probe, outcome.result)[0]
        error = None
        if outcome.status == "limit":
            error = f"hit the {outcome.limit} limit"
        elif outcome.error is not None:
            error = f"{outcome.error.type}: {outcome.error.message}"
        return Answer(
            question=example.input,
            snippet=snippet,
            status=outcome.status,
            answer=outcome.result if outcome.status == "ok" else None,
            target=target,
            correct=correct,
            error=error,
            duration_ms=round(outcome.duration_ms, 3),
        )

    # The model is asked question by question, in order; each answer's
    # sandboxed run starts as soon as its reply is in, several at once where
    # the backend has room (a Ray cluster's actors, the restricted backend's
    # spares), and answers are reported in the questions' order.
    pending: list[Future[Answer] | Answer] = []

    def report_ready(wait: bool) -> None:
        while len(answers) < len(pending):
            item = pending[len(answers)]
            if isinstance(item, Future):
                if not wait and not item.done():
                    return
                item = item.result()  # a sandbox that cannot run stops the batch here
            answers.append(item)
            if on_answer is not None:
                on_answer(item)

    workers = reg.parallelism(backend) if len(questions) > 1 else 1
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="toolcrib-use") as pool:
        try:
            for example in questions:
                reply = model.start().send(use_prompt(wrapped, example.input))
                if tokens is not None and reply.input_tokens is not None and reply.output_tokens is not None:
                    tokens = {
                        "input": tokens["input"] + reply.input_tokens,
                        "output": tokens["output"] + reply.output_tokens,
                    }
                else:
                    tokens = None
                target = example.target if example.has_target else None
                blocks, unread = _blocks(reply.text)
                if not blocks:
                    pending.append(
                        Answer(
                            question=example.input,
                            status="no_code",
                            target=target,
                            correct=False if example.has_target else None,
                            error=unread or "the reply has no ```python block",
                        )
                    )
                else:
                    pending.append(pool.submit(run_one, example, blocks[0], target))
                report_ready(wait=False)
            report_ready(wait=True)
        except BaseException:
            for item in pending:
                if isinstance(item, Future):
                    item.cancel()
            raise
    scored = [a for a in answers if a.correct is not None]
    right = sum(1 for a in scored if a.correct)
    return UseReport(
        tool=tool.ref,
        model=model.model_id,
        answers=answers,
        scored=len(scored),
        correct=right,
        accuracy=round(right / len(scored), 4) if scored else None,
        tokens=tokens,
    )
