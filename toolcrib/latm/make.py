"""`make`: the tool maker. Propose, verify, wrap, as in the LATM paper, with
every line the model writes run in the sandbox and every turn on the record.

- propose: k demos as Question/Answer pairs; the reply's function and its
  demo code run in the sandbox (snippet mode).
- verify: unit tests on the next examples; function and tests run in the sandbox.
- wrap: the function and its use cases. The wrapped module must be the
  module that was verified, every top-level statement of it (compared as an
  AST, so comments may differ); each use case whose question is one of the
  task's examples runs in the sandbox against the verified module and must
  give that example's target (never a value the model wrote). Then the
  verified module itself (never text re-derived from the wrap) goes through
  `Registry.add` (the normal admission path) with those use cases as
  snippet tests, the whole transcript as provenance, and `verify`.

Unit tests and use cases are evidence only if the answer came from the
tool (evidence.py): the sandbox reports how many calls of the entrypoint
returned while they ran, and none is refused; so is one that still passes
when run again with the entrypoint stubbed (its calls return an object
every use of which raises), one that writes the answer as a literal, and
(a use case) one that binds a name the tool binds or changes its object
in place.

A failure in a stage goes back to the model as one line (type, message,
line), at most `retries` times per stage.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..registry import ProvenanceInput, Registry
from ..registry.admission import Admitted, admit
from ..registry.calls import backend_name
from ..registry.cases import compare
from ..registry.errors import InvalidInput, SandboxUnavailable, ToolcribError
from ..registry.models import Comparator, TestCase
from ..sandbox import Backend, Limits, Result
from ..sandbox.contract import PolicyName
from .answers import options, read_answer, with_epilogue
from .evidence import copies_answer, defined_names, module_key, rebound_names, tool_module, without_definitions
from .holdout import HoldoutReport, held_out, run_holdout
from .measure import HEADROOM, MEASURED, ExampleCost, Measurement, ceiling, cost_of, declare
from .models import Model
from .prompts import fix_prompt, propose_prompt, rejected_prompt, verify_prompt, wrap_prompt
from .replies import ReplyTooLong, UseCase, answer_names, check_reply, code_blocks, defines, use_cases, whitespace_free
from .runs import describe_failure, run_snippet
from .tasks import Example, Task
from .transcript import Transcript, default_transcript_path

__all__ = ["MakeResult", "StageReport", "USE_CASES_KEY", "make"]

Stage = Literal["propose", "verify", "wrap", "holdout"]
Progress = Callable[[str, int, str], None]

USE_CASES_KEY = "latm.use_cases"
_QUESTION_IN_NAME = 200
# How alike (difflib ratio, whitespace ignored) a use case's question must be to a task example's.
_SAME_QUESTION = 0.95


class StageReport(BaseModel):
    stage: Stage
    attempts: int
    passed: bool
    errors: list[str] = Field(default_factory=list, description="what went back to the model, one line each")


class MakeResult(BaseModel):
    """What `make` did: `--json` output of `toolcrib make`."""

    status: Literal["made", "failed"]
    task: str
    task_sha256: str
    model: str
    stages: list[StageReport]
    failed_stage: Stage | None = None
    error: str | None = None
    tool: str | None = Field(None, description="name@version of the tool made")
    sha256: str | None = None
    verification: str | None = Field(None, description="verified or failed")
    tests: int = 0
    tokens: dict[str, int] | None = Field(None, description="tokens in and out, when the model reports them")
    transcript: str = Field(description="file holding every prompt and reply of this run")
    holdout: HoldoutReport | None = Field(None, description="accuracy on the held-out examples (--holdout K)")
    measured: Measurement | None = Field(
        None, description="the tool's cost on its examples, and the limits and policy declared from it (measure.py)"
    )


class _StageFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Wrapped:
    cases: list[UseCase]
    tests: list[dict[str, Any]]


class _Maker:
    def __init__(
        self,
        reg: Registry,
        task: Task,
        model: Model,
        *,
        demos: int,
        validate: int,
        retries: int,
        backend: str,
        limits: Limits | None,
        progress: Progress | None,
        comparator: Comparator = "exact",
    ) -> None:
        self.reg, self.task, self.model, self.demos, self.validate = reg, task, model, demos, validate
        self.comparator: Comparator = comparator
        self.retries, self.backend = retries, backend
        self.progress = progress
        self.chat = model.start()
        self.transcript = Transcript(model=model.model_id, task=task.name)
        self.stages: list[StageReport] = []
        self.source = ""
        self.entrypoint = ""
        # Measuring (measure.py): the limits the stages run with, whether a
        # run may go past them to be measured, the policy, what each example cost.
        self.base = (limits or Limits()).capped(reg.max_limits)
        self.escalate = limits is None
        self._policy: PolicyName | None = None  # the backend's default, once a run asks
        self.costs: list[ExampleCost] = []
        self.measure_notes: list[str] = []
        self.switched_policy = False

    def _say(self, stage: str, attempt: int, message: str) -> None:
        if self.progress is not None:
            self.progress(stage, attempt, message)

    @property
    def policy(self) -> PolicyName:
        """The policy model code runs under: the backend's default for code
        that declared nothing, until a run shows only plain finishes."""
        if self._policy is None:
            self._policy = self.runner().default_policy("restricted")
        return self._policy

    def runner(self) -> Backend:
        """The registry's backend (an injected one first, then the table's):
        the runs of make's stages and its final verification share one seam."""
        return self.reg.backend(self.backend)

    def stage(self, stage: Stage, prompt: str, check: Callable[[str], Any]) -> Any:
        """Ask, check the reply, send what went wrong back; up to 1 + retries attempts."""
        report = StageReport(stage=stage, attempts=0, passed=False)
        self.stages.append(report)
        for attempt in range(1, self.retries + 2):
            report.attempts = attempt
            self._say(stage, attempt, "asking the model")
            try:
                reply = self.transcript.ask(self.chat, stage, prompt)
            except ToolcribError as exc:  # the model failed (provider error, replay ran out)
                before = f"; the last problem was: {report.errors[-1]}" if report.errors else ""
                report.errors.append(exc.message)
                raise _StageFailed(exc.message + before) from None
            try:
                outcome = check(_readable(reply.text))
            except _StageFailed as problem:
                report.errors.append(problem.message)
                self.transcript.note(stage, problem.message)
                self._say(stage, attempt, f"failed: {problem.message}")
                prompt = fix_prompt(stage, problem.message)
                continue
            report.passed = True
            self._say(stage, attempt, "passed")
            return outcome
        raise _StageFailed(report.errors[-1] if report.errors else "no attempt was made")

    # -- the checks of each stage ---------------------------------------------
    def _code(self, reply: str) -> str:
        blocks = code_blocks(reply)
        if not blocks:
            raise _StageFailed("the reply has no ```python code block")
        return "\n\n".join(blocks)

    def _admit(self, code: str, *, markdown: bool, entrypoint: str | None = None) -> Admitted:
        try:
            return admit(code, entrypoint=entrypoint, strip_top_level=True, markdown=markdown)
        except ToolcribError as exc:
            raise _StageFailed(f"the code was not accepted: {exc.message}") from None

    def _run(self, source: str, snippet: str) -> Result:
        result = self._sandbox(source, snippet)
        if result.status != "ok":
            raise _StageFailed(describe_failure(result))
        return result

    def _sandbox(self, source: str, snippet: str, *, stub: bool = False) -> Result:
        """One run of model code, measured; a run that hits its CPU, wall or
        memory limit is run again under the measuring ceiling, then (if the
        jail permits it) under the plain policy (measure.py)."""

        def run(limits: Limits, policy: PolicyName) -> Result:
            return run_snippet(
                source,
                self.entrypoint,
                snippet,
                limits=limits,
                backend=self.backend,
                stub_entrypoint=stub,
                runner=self.runner(),
                policy=policy,
                measure=not stub,
            )

        result = run(self.base, self.policy)
        if stub or not self.escalate or result.status != "limit" or result.limit not in MEASURED:
            return result
        high = ceiling(self.base, self.reg.max_limits)
        again = run(high, self.policy)
        if again.status != "limit" or again.limit not in MEASURED:
            self.measure_notes.append(
                f"a run hit the {result.limit} limit of {_limits_text(self.base)} and finished under "
                f"{_limits_text(high)} ({self.policy} policy)"
            )
            return again
        if self.policy != "restricted":
            return again
        if not self._plain_permitted():
            self.measure_notes.append(
                f"a run hit the {again.limit} limit even under {_limits_text(high)} (restricted policy); "
                "the plain policy is not permitted by this backend's jail, so it was not tried"
            )
            return again
        plain = run(high, "plain")
        if plain.status == "limit" and plain.limit in MEASURED:
            return again
        self._policy, self.switched_policy = "plain", True
        self.measure_notes.append(
            f"a run hit the {again.limit} limit under {_limits_text(high)} with the restricted policy and "
            f"finished under plain: the tool is made and registered under the plain policy (the jail permits it)"
        )
        return plain

    def _plain_permitted(self) -> bool:
        """Whether the backend runs the plain policy inside its whole jail
        (the restricted backend's ``plain_policy``; plain is the default where
        the container is the boundary)."""
        runner = self.runner()
        if runner.default_policy("restricted") == "plain":
            return True
        try:
            return runner.health().get("plain_policy") is True
        except Exception:  # noqa: BLE001 - a backend that cannot say does not permit it
            return False

    def _module(self, code: str, entrypoint: str | None = None) -> str:
        """The tool module of some code: its dead tests dropped (so none is
        taken for the entrypoint), admitted (demo code stripped), then any
        test only that demo code used dropped as well."""
        try:
            code = tool_module(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass  # admission says what is wrong with it
        admitted = self._admit(code, markdown=False, entrypoint=entrypoint)
        module = tool_module(admitted.source)
        if module != admitted.source:
            admitted = self._admit(module, markdown=False, entrypoint=admitted.entrypoint)
        self.entrypoint = admitted.entrypoint
        return admitted.source

    def check_proposal(self, reply: str) -> None:
        code = self._code(reply)
        source = self._module(code)
        self._run(source, code)  # the function and its demo code, as the model wrote them
        self.source = source

    def check_tests(self, reply: str) -> None:
        code = self._code(reply)
        if "assert" not in code:
            raise _StageFailed("the tests assert nothing: end each test with `assert ans == <the answer given>`")
        source, tests = self.source, code
        if defines(code, self.entrypoint):  # the model fixed the function along with the tests
            source = self._module(code, self.entrypoint)
            # The tests run against the module; their own copies of its
            # definitions would shadow the functions the sandbox observes.
            tests = without_definitions(code, defined_names(source))
        examples = self.task.examples[self.demos : self.demos + self.validate]
        result = self._run(source, tests)  # first: a syntax error is reported as the sandbox reads it
        if any(self._copies(tests, answer_names(tests), e) for e in examples):
            raise _StageFailed(
                f"the tests write an answer given in the questions into `ans`; "
                f"compute `ans` by calling {self.entrypoint}"
            )
        if not result.calls:
            raise _StageFailed(f"the tests never called {self.entrypoint}: each test must call it to get `ans`")
        if self._stubbed(source, tests).status == "ok":
            raise _StageFailed(
                f"the tests pass without using what {self.entrypoint} returns: compute each `ans` from its return value"
            )
        self.source = source

    def _stubbed(self, source: str, snippet: str) -> Result:
        """The snippet run once more with the entrypoint stubbed (contract.Job):
        its calls return an object every use of which raises. Code that still
        succeeds, or still answers right, never needed what the tool returned."""
        return self._sandbox(source, snippet, stub=True)

    def _copies(self, snippet: str, names: list[str], example: Example) -> bool:
        """Does the snippet spell out the example's target as a literal (read
        and compared the way its answer will be)? Unreadable counts as yes
        (it ran in the sandbox first, so it does parse)."""
        as_text = isinstance(example.target, str)
        probe = TestCase(snippet="ans = 0", expected=example.target, comparator=self.comparator)
        choices = options(example.input)

        def reads_as_target(value: Any) -> bool:
            if isinstance(value, (bytes, complex)) or value is None or value is Ellipsis:
                return False
            return bool(compare(probe, read_answer(value, choices, as_text))[0])

        return copies_answer(snippet, names, reads_as_target) is not False

    def _example_for(self, question: str) -> tuple[int, Example] | None:
        """The task example a use case asks: the same text up to whitespace, else
        the closest one if it is nearly the same (models add a full stop or
        join lines); a wrong match only makes the use case fail its target."""
        key = whitespace_free(question)
        keys = [whitespace_free(e.input) for e in self.task.examples]
        if key in keys:
            index = keys.index(key)
            return index, self.task.examples[index]
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(key)
        best, best_ratio = -1, _SAME_QUESTION
        for index, other in enumerate(keys):
            matcher.set_seq1(other)
            if matcher.real_quick_ratio() >= best_ratio and matcher.quick_ratio() >= best_ratio:
                ratio = matcher.ratio()
                if ratio >= best_ratio:
                    best, best_ratio = index, ratio
        return (best, self.task.examples[best]) if best >= 0 else None

    def check_wrap(self, reply: str) -> _Wrapped:
        admitted = self._admit(reply, markdown=True, entrypoint=self.entrypoint)
        if module_key(admitted.source) != module_key(self.source):
            raise _StageFailed(
                "the function in the wrapped tool is not the code that was verified; "
                "wrap the verified function unchanged"
            )
        cases = use_cases(reply)
        if not cases:
            raise _StageFailed("the reply has no use cases (Question:, then Solution: with a ```python block)")
        tests: list[dict[str, Any]] = []
        costs: list[ExampleCost] = []
        seen: set[int] = set()
        for number, case in enumerate(cases, start=1):
            found = self._example_for(case.question)
            if found is None or found[0] in seen:
                continue  # kept as a use case for the tool user; only the task's examples have true answers
            index, example = found
            seen.add(index)
            snippet = with_epilogue(case.solution, example.input, as_text=isinstance(example.target, str))
            test = TestCase(
                name=f"example {index + 1}: {_shorten(example.input)}",
                snippet=snippet,
                expected=example.target,
                comparator=self.comparator,
            )
            # Against the verified module: that text, and nothing re-derived, is what is stored.
            result = self._sandbox(self.source, snippet)
            if result.status != "ok":
                raise _StageFailed(f"use case {number} failed: {describe_failure(result)}")
            cpu, wall, memory = cost_of(result)
            costs.append(
                ExampleCost(
                    example=index + 1, policy=self.policy, cpu_seconds=cpu, wall_seconds=wall, memory_mib=memory
                )
            )
            self._check_case(number, case.solution, example)
            if not result.calls:
                raise _StageFailed(
                    f"use case {number} never called {self.entrypoint}: "
                    f"its `ans` must come from calling {self.entrypoint}"
                )
            passed, why = compare(test, result.result)
            if not passed:
                raise _StageFailed(f"use case {number} gives a wrong answer: {why}")
            stubbed = self._stubbed(self.source, snippet)
            if stubbed.status == "ok" and compare(test, stubbed.result)[0]:
                raise _StageFailed(
                    f"use case {number} gives the answer without using what {self.entrypoint} "
                    f"returns: its `ans` must come from the return value"
                )
            tests.append(test.model_dump(exclude_defaults=True) | {"expected": example.target})
        if len(tests) < self.validate:
            raise _StageFailed(
                f"{len(tests)} use case(s) ask a question of the task; write one for each question of the tests"
            )
        self.costs = costs
        return _Wrapped(cases=cases, tests=tests)

    def measurement(self) -> Measurement:
        """The examples' costs and what is declared from them (measure.py)."""
        notes = list(self.measure_notes)
        declared = declare(self.costs, self.base, self.reg.max_limits)
        if not self.escalate:
            if declared is not None:
                notes.append(
                    f"the examples suggest {_limits_text(declared)}; the limits given ({_limits_text(self.base)}) "
                    "are kept"
                )
            declared = self.base
        elif declared is not None:
            heaviest = max(self.costs, key=lambda c: c.cpu_seconds)
            notes.append(
                f"example {heaviest.example} used {heaviest.cpu_seconds:.2f} s CPU; declared "
                f"{_limits_text(declared)} ({HEADROOM}x the heaviest example, within the registry's maxima)"
            )
        return Measurement(
            examples=self.costs,
            ran_with=_limit_numbers(self.base),
            limits=_limit_numbers(declared) if declared is not None else None,
            policy=self.policy,
            notes=notes,
        )

    def _check_case(self, number: int, solution: str, example: Example) -> None:
        """What the host reads in a use case that ran (evidence.py)."""
        rebound = rebound_names(solution, self.source)
        if rebound is None:
            raise _StageFailed(f"use case {number} cannot be read as Python")
        if rebound:
            raise _StageFailed(
                f"use case {number} binds or changes the tool's own name(s) {', '.join(rebound)}: "
                f"call {self.entrypoint}, do not redefine or change it or what it uses"
            )
        if self._copies(solution, answer_names(solution), example):
            raise _StageFailed(
                f"use case {number} writes the answer into `ans` as a literal: "
                f"`ans` must come from calling {self.entrypoint}"
            )


def _limit_numbers(limits: Limits) -> dict[str, float]:
    return {name: getattr(limits, name) for name in MEASURED}


def _limits_text(limits: Limits) -> str:
    return f"cpu={limits.cpu:g} s, wall={limits.wall:g} s, memory={limits.memory} MiB"


def _readable(text: str) -> str:
    """A reply the loop will read: within the cap, else a failure of the stage."""
    try:
        return check_reply(text)
    except ReplyTooLong as exc:
        raise _StageFailed(str(exc)) from None


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _QUESTION_IN_NAME else flat[: _QUESTION_IN_NAME - 1] + "…"


def make(
    reg: Registry,
    task: Task,
    model: Model,
    *,
    demos: int = 3,
    validate: int = 3,
    retries: int = 3,
    name: str | None = None,
    transcript_path: str | Path | None = None,
    backend: str | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    comparator: Comparator = "exact",
    holdout: int = 0,
    min_accuracy: float | None = None,
) -> MakeResult:
    """Make a verified tool from a task's examples (see the module docstring).

    Returns a MakeResult whose status is "made" or "failed" (with the stage and
    the last error); the transcript is written to `transcript_path` (default:
    beside the registry, in transcripts/) either way. Raises InvalidInput for a
    task with too few examples or no targets, SandboxUnavailable if nothing can run.

    ``holdout``: the K examples after the validation ones are held out,
    answered with the finished tool as the tool user would (holdout.py); the
    accuracy is in the provenance and the result, and below ``min_accuracy``
    the make fails with nothing registered.
    """
    if demos < 1 or validate < 1 or retries < 0:
        raise InvalidInput("--demos and --validate must be at least 1, --retries at least 0")
    if len(task.examples) < demos + validate:
        raise InvalidInput(
            f"{task.name} has {len(task.examples)} examples; making a tool needs {demos} demos + {validate} for validation"
        )
    missing = [i + 1 for i, e in enumerate(task.examples[: demos + validate]) if not e.has_target]
    if missing:
        raise InvalidInput(f"{task.name}: examples {', '.join(map(str, missing))} have no 'target'")
    held = held_out(task, demos=demos, validate=validate, k=holdout)
    if min_accuracy is not None and not (0 <= min_accuracy <= 1 and holdout > 0):
        raise InvalidInput("--min-accuracy is a number from 0 to 1, and needs --holdout K")
    if limits is not None:  # model code never runs with more than the registry allows
        limits = limits.capped(reg.max_limits)
    backend = backend_name(backend)  # None: restricted where the Linux jail exists, else wasm
    maker = _Maker(
        reg,
        task,
        model,
        demos=demos,
        validate=validate,
        retries=retries,
        backend=backend,
        limits=limits,
        progress=progress,
        comparator=comparator,
    )
    path = Path(transcript_path) if transcript_path is not None else default_transcript_path(reg.path, task.name)
    examples = task.examples
    result = MakeResult(
        status="failed",
        task=task.name,
        task_sha256=task.sha256,
        model=model.model_id,
        stages=maker.stages,
        transcript=str(path),
    )
    # A reviewer rejected the last tool made for this task: the reason comes first.
    rejection = reg.task_rejection(task.name)
    first = propose_prompt(examples[:demos])
    if rejection is not None:
        first = rejected_prompt(rejection.ref, rejection.reviewer, rejection.note or "") + first
    try:
        maker.stage("propose", first, maker.check_proposal)
        maker.stage("verify", verify_prompt(examples[demos : demos + validate]), maker.check_tests)
        wrapped: _Wrapped = maker.stage("wrap", wrap_prompt(), maker.check_wrap)
    except _StageFailed as failure:
        result.failed_stage = maker.stages[-1].stage
        result.error = failure.message
        return _finish(result, maker, path)
    except SandboxUnavailable:
        maker.transcript.save(path)
        raise
    # The limits (and policy) the tool user's calls will have: the held-out
    # examples are answered under them too.
    result.measured = maker.measurement()
    declared = result.measured.limits
    registered = maker.base.override(**declared) if declared is not None else None
    if held:
        try:
            result.holdout = run_holdout(
                held,
                model=model,
                transcript=maker.transcript,
                source=maker.source,
                entrypoint=maker.entrypoint,
                cases=wrapped.cases,
                comparator=maker.comparator,
                limits=registered,
                policy=maker.policy,
                backend=backend,
                runner=maker.runner(),
                min_accuracy=min_accuracy,
                progress=progress,
            )
        except SandboxUnavailable:
            maker.transcript.save(path)
            raise
        if min_accuracy is not None and result.holdout.accuracy < min_accuracy:
            result.failed_stage = "holdout"
            result.error = (
                f"held-out accuracy {result.holdout.accuracy} ({result.holdout.correct} of "
                f"{result.holdout.examples}) is below --min-accuracy {min_accuracy}: nothing was registered"
            )
            return _finish(result, maker, path)
    metadata = {
        "latm.task": task.name,
        "latm.task_sha256": task.sha256,
        "latm.model": model.model_id,
        USE_CASES_KEY: json.dumps(
            [{"question": c.question, "solution": c.solution} for c in wrapped.cases], ensure_ascii=False
        ),
        "latm.stages": json.dumps([s.model_dump() for s in maker.stages], ensure_ascii=False),
    }
    if result.holdout is not None:
        report = result.holdout
        metadata["latm.holdout"] = json.dumps(
            {
                "examples": report.examples,
                "correct": report.correct,
                "accuracy": report.accuracy,
                "min_accuracy": min_accuracy,
            }
        )
    if rejection is not None:  # which review decision this version answers
        metadata["latm.answers_rejection"] = f"{rejection.ref} review {rejection.id} by {rejection.reviewer}"
    metadata["latm.measured"] = result.measured.model_dump_json()
    added = reg.add(
        maker.source,  # the verified module itself, byte for byte
        name=name,
        entrypoint=maker.entrypoint,
        tests=wrapped.tests,
        provenance=ProvenanceInput(generator=model.model_id, prompt=maker.transcript.text(), metadata=metadata),
        limits=registered,
        # Only a switch make made is declared (measure.py); else the default, as before.
        policy="plain" if maker.policy == "plain" and maker.switched_policy else None,
        markdown=False,
    )
    tool = added.tool
    if tool.source != maker.source:  # admission of admitted text changes nothing; this is the last guard
        result.failed_stage, result.error = "wrap", "the registered source is not the code that was verified"
        return _finish(result, maker, path)
    verification = reg.verify(tool.ref, backend=backend)
    result.tool, result.sha256 = tool.ref, tool.sha256
    result.verification, result.tests = verification.status, len(tool.tests)
    if verification.status == "verified":
        result.status = "made"
    else:
        bad = next(c for c in verification.cases if not c.passed)
        result.failed_stage = "wrap"
        result.error = f"{tool.ref} failed verification: {bad.name}: {bad.error.message if bad.error else bad.status}"
    return _finish(result, maker, path)


def _finish(result: MakeResult, maker: _Maker, path: Path) -> MakeResult:
    if result.measured is None and (maker.costs or maker.measure_notes):
        # A failed make: what was measured and tried, and nothing declared.
        result.measured = maker.measurement().model_copy(update={"limits": None})
    result.stages = list(maker.stages)
    result.tokens = maker.transcript.tokens()
    maker.transcript.save(path)
    return result
