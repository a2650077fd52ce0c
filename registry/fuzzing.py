"""Inputs generated from a version's stored input schema (issue 19,
docs/verification.md): `toolcrib verify REF --fuzz N`.

Hypothesis with hypothesis-jsonschema (the optional extra ``fuzz``) draws N
argument sets from the schema, seeded, so a run can be repeated exactly.
Each runs in the sandbox exactly like a test case (`calls.sandbox_job`: the
version's source, limits and policy, through the backend), several at once
(`parallel.JobPool`: each call starts as soon as its input is drawn, while
Hypothesis draws the next). What can be wrong with a tool on valid input is
classified (`classify`): an exception the tool does not document, a policy
refusal, a limit hit on a small input, a result the declared return type
forbids or that is not JSON; a few inputs run twice catch a tool that
answers one input two ways. Then each distinct finding is shrunk: the same
seeded search runs again, Hypothesis's shrinker driving sandboxed calls
(outcomes already known are not run again), until the smallest input that
still shows it, or the time budget, is reached. Nothing here waits past the
budget except the calls already running (each bounded by its limits).
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..sandbox.contract import Backend, Limits, PolicyName, Result
from .audit import cap_value
from .calls import sandbox_job
from .checks import CheckRun, Finding, StartedRun, check_budget
from .errors import ExtraMissing, InvalidInput, SandboxUnavailable
from .models import ToolVersion
from .parallel import JobPool
from .versions import canonical_json

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_SEED",
    "MAX_FUZZ",
    "NoInputs",
    "SMALL_INPUT_BYTES",
    "Verdict",
    "classify",
    "documented_exceptions",
    "fuzz",
    "generate_inputs",
    "hypothesis_modules",
    "output_validator",
]

# Seconds a fuzz run may take unless the user says otherwise (--budget).
DEFAULT_BUDGET = 60.0
DEFAULT_SEED = 0
MAX_FUZZ = 10_000
# A limit hit on an input this small (its JSON, in bytes) is a finding: a
# tool should not need its whole CPU or memory allowance for it.
SMALL_INPUT_BYTES = 1024
# Inputs run a second time to catch a tool that answers one input two ways.
REPEATS = 8
# At most this many distinct findings are shrunk, each with at most this
# many new sandboxed calls (the budget bounds them all).
MAX_SHRUNK = 5
MAX_SHRINK_CALLS = 200
_SHOW_CAP = 200
_VALUE_CAP = 2048


def hypothesis_modules() -> tuple[Any, Any]:
    """(hypothesis, hypothesis_jsonschema), or ExtraMissing naming the extra."""
    try:
        import hypothesis
        import hypothesis_jsonschema
    except ImportError:
        raise ExtraMissing("fuzzing needs Hypothesis and hypothesis-jsonschema: pip install 'toolcrib[fuzz]'") from None
    return hypothesis, hypothesis_jsonschema


# -- what the tool documents -------------------------------------------------------------

_RAISES = re.compile(r"^\s*(Raises|Raise|Throws|Exceptions)\s*:?\s*$", re.IGNORECASE)
_HEADER = re.compile(r"^\s*[A-Z][A-Za-z ]{1,30}:\s*$")
_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_EXC_NAME = re.compile(r"^\s*(?:[-*•]\s*)?:?(?:exc:)?`?~?(?P<name>[A-Za-z_][\w.]*)")
_SPHINX_RAISES = re.compile(r":raises?\s+(?P<names>[\w., ]+):")


def _docstring(tool: ToolVersion) -> str:
    try:
        tree = ast.parse(tool.source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return tool.signature.description or ""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == tool.entrypoint:
            return ast.get_docstring(node) or ""
    return tool.signature.description or ""


def _raises_section(doc: str) -> set[str]:
    names: set[str] = set()
    for found in _SPHINX_RAISES.finditer(doc):
        names.update(n.strip().rsplit(".", 1)[-1] for n in found.group("names").split(",") if n.strip())
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        if not _RAISES.match(lines[i]):
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        i += 1
        if i < len(lines) and _UNDERLINE.match(lines[i]):
            i += 1  # numpydoc
        entry_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            if _HEADER.match(line) or (i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1])):
                break
            depth = len(line) - len(line.lstrip())
            if depth < indent:
                break
            if entry_indent is None:
                entry_indent = depth
            if depth > entry_indent:
                i += 1  # an entry's description
                continue
            match = _EXC_NAME.match(line)
            name = match.group("name").rsplit(".", 1)[-1] if match else ""
            if name[:1].isupper():
                names.add(name)
            i += 1
    return names


def _expected_by_tests(tool: ToolVersion) -> set[str]:
    """Exception types a test snippet catches (``except ValueError:``)."""
    names: set[str] = set()
    for case in tool.tests:
        if case.snippet is None:
            continue
        try:
            tree = ast.parse(case.snippet)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                for t in types:
                    if isinstance(t, ast.Name):
                        names.add(t.id)
                    elif isinstance(t, ast.Attribute):
                        names.add(t.attr)
    return names


def documented_exceptions(tool: ToolVersion) -> list[str]:
    """Exception types the tool may raise on valid input without that being
    a finding: those its docstring's ``Raises:`` section names (Google,
    numpydoc or ``:raises X:``), and those a test case's snippet catches."""
    return sorted(_raises_section(_docstring(tool)) | _expected_by_tests(tool))


# -- judging one outcome -------------------------------------------------------------------


def output_validator(tool: ToolVersion) -> Any | None:
    """A validator of results against the declared return schema (None: none declared)."""
    schema = tool.signature.output_schema
    if not schema:
        return None
    from .schema_check import _schema_validator

    try:
        return _schema_validator(json.dumps(schema, sort_keys=True))
    except Exception:  # noqa: BLE001 - a schema jsonschema cannot read is no contract to check
        return None


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= _SHOW_CAP else text[: _SHOW_CAP - 1] + "…"


@dataclass(frozen=True)
class Verdict:
    """What one outcome shows: a finding's key (the same bug twice has the
    same key), kind, one-line summary and detail."""

    key: tuple[str, ...]
    kind: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


def classify(
    result: Result, args: dict[str, Any], *, validator: Any | None, documented: list[str] | set[str]
) -> Verdict | None:
    """The finding one sandboxed outcome on schema-valid `args` shows, or
    None when it shows nothing wrong. SandboxUnavailable for a sandbox that
    cannot run."""
    error = result.error
    if result.status == "unavailable":
        raise SandboxUnavailable(f"the {result.backend} backend is unavailable: {error.message if error else '?'}")
    if result.status == "ok":
        if validator is None:
            return None
        problems = sorted(validator.iter_errors(result.result), key=lambda e: [str(p) for p in e.absolute_path])
        if not problems:
            return None
        where = "".join(f"[{json.dumps(p)}]" for p in problems[0].absolute_path)
        why = problems[0].message if len(problems[0].message) <= _SHOW_CAP else problems[0].message[:_SHOW_CAP]
        return Verdict(
            ("return_schema",),
            "return_schema",
            f"returned {_show(result.result)}, which the declared return type forbids"
            f" ({'at ' + where + ': ' if where else ''}{why})",
            {"result": cap_value(result.result, _VALUE_CAP)},
        )
    if result.status == "error" and error is not None:
        if error.type == "ResultNotJSON":
            return Verdict(("not_json",), "not_json", f"the result is not JSON: {error.message}", {})
        if error.type in documented:
            return None
        if error.type == "ArgumentFormError" and error.line is None:
            # The sandbox could not build the DataFrame/ndarray argument from
            # JSON the form's schema admits: the tool never ran.
            return None
        line = f" (line {error.line})" if error.line is not None else ""
        return Verdict(
            ("exception", error.type, str(error.line)),
            "exception",
            f"{error.type}{line} on schema-valid input: {error.message[:_SHOW_CAP]}",
            {"error": error.to_json()},
        )
    if result.status == "blocked":
        kind = error.type if error else "blocked"
        return Verdict(
            ("blocked", kind),
            "blocked",
            f"the policy refused the tool on schema-valid input: {error.message[:_SHOW_CAP] if error else kind}",
            {"error": error.to_json() if error else None},
        )
    if result.status == "limit":
        size = len(canonical_json(args).encode("utf-8"))
        if size > SMALL_INPUT_BYTES:
            return None
        return Verdict(
            ("limit", str(result.limit)),
            "limit",
            f"the {result.limit} limit was hit on a small input ({size} bytes of JSON)",
            {"limit": result.limit},
        )
    return None


# -- generating -------------------------------------------------------------------------


class NoInputs(Exception):
    """The schema gives no argument set (the reason is the message)."""


def _settings(hypothesis: Any, n: int, phases: list[Any]) -> Any:
    return hypothesis.settings(
        max_examples=n,
        database=None,
        deadline=None,
        derandomize=False,
        phases=phases,
        suppress_health_check=list(hypothesis.HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
    )


# A tool's input schema is almost always a plain object of named
# parameters; its strategy is built once per parameter (hypothesis-jsonschema
# would canonicalise each parameter's schema again on every draw).
_PLAIN_OBJECT_KEYS = {"type", "properties", "required", "additionalProperties", "title", "description", "$defs"}


def _draft7(schema: Any) -> Any:
    """`schema` in the dialect hypothesis-jsonschema reads: draft 2020-12's
    ``prefixItems`` (a tuple: what pydantic writes for ``tuple[int, int]``)
    becomes draft 7's ``items`` list, its ``items`` then ``additionalItems``.
    Without this every tuple is drawn as any array and nearly every draw is
    refused by the stored schema."""
    if isinstance(schema, list):
        return [_draft7(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _draft7(value) for key, value in schema.items()}
    if isinstance(out.get("prefixItems"), list):
        rest = out.pop("items", None)
        out["items"] = out.pop("prefixItems")
        out["additionalItems"] = rest if rest is not None else True
    return out


def _strategy(schema: dict[str, Any]) -> Any:
    hypothesis, hj = hypothesis_modules()
    schema = _draft7(schema)
    try:
        properties = schema.get("properties")
        if (
            schema.get("type") == "object"
            and schema.get("additionalProperties") is False
            and isinstance(properties, dict)
            and set(schema) <= _PLAIN_OBJECT_KEYS
        ):
            required = set(schema.get("required") or [])
            defs = {"$defs": schema["$defs"]} if "$defs" in schema else {}
            parts = {name: hj.from_schema({**prop, **defs}) for name, prop in properties.items()}
            return hypothesis.strategies.fixed_dictionaries(
                {name: part for name, part in parts.items() if name in required},
                optional={name: part for name, part in parts.items() if name not in required},
            )
        return hj.from_schema(schema)
    except Exception as exc:  # noqa: BLE001 - whatever the generator says of the schema, reported
        raise NoInputs(f"no generator for the input schema: {type(exc).__name__}: {str(exc)[:_SHOW_CAP]}") from None


def generate_inputs(
    schema: dict[str, Any],
    n: int,
    seed: int,
    *,
    valid: Callable[[dict[str, Any]], bool],
    deadline: float,
    on_input: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Up to `n` distinct argument sets drawn from `schema` with `seed`
    (the same ones each time), each passing `valid` (the registry's own
    check of call arguments). ``on_input`` is given each one as soon as it
    is drawn (fuzzing starts its sandboxed call then). NoInputs naming the
    reason when there are none."""
    hypothesis, _ = hypothesis_modules()
    strategy = _strategy(schema)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    rejected = [0]

    def draw_one(args: Any) -> None:
        if time.monotonic() >= deadline or not isinstance(args, dict):
            return
        text = canonical_json(args)
        if text in seen:
            return
        if not valid(args):
            rejected[0] += 1
            return
        seen.add(text)
        out.append(args)
        if on_input is not None:
            on_input(args)

    # Applied as calls, not as decorators: Hypothesis is imported lazily (the extra).
    draw = hypothesis.seed(seed)(
        _settings(hypothesis, n, [hypothesis.Phase.generate])(hypothesis.given(strategy)(draw_one))
    )
    try:
        draw()
    except Exception as exc:  # noqa: BLE001 - Unsatisfiable, a generator's own error: reported, never raised
        if not out:
            raise NoInputs(
                f"the input schema cannot be satisfied by the generator: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:_SHOW_CAP] if str(exc) else 'no example found'}"
            ) from None
    if not out:
        why = f"{rejected[0]} generated argument sets were all refused by the schema" if rejected[0] else "none"
        raise NoInputs(f"no argument set could be generated from the input schema ({why})")
    return out


# -- the run ---------------------------------------------------------------------------


class _Hit(Exception):
    """The probe found the finding it is shrinking."""


@dataclass
class _Fuzz:
    tool: ToolVersion
    runner: Backend
    limits: Limits
    policy: PolicyName
    n: int
    seed: int
    deadline: float
    documented: list[str]
    validator: Any
    known: dict[str, Verdict | None] = field(default_factory=dict)

    def job(self, args: dict[str, Any]) -> Any:
        return sandbox_job(
            self.tool, self.tool.signature.input_schema, self.limits, self.policy, args=args, snippet=None
        )

    def judge(self, result: Result, args: dict[str, Any]) -> Verdict | None:
        return classify(result, args, validator=self.validator, documented=self.documented)

    def shrink(self, target: tuple[str, ...], first: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The smallest input the seeded search reaches that still shows
        `target` (else `first`), and how many new sandboxed calls it took."""
        hypothesis, _ = hypothesis_modules()
        strategy = _strategy(self.tool.signature.input_schema)
        hits: list[dict[str, Any]] = []
        calls = [0]

        def probe_one(args: Any) -> None:
            if not isinstance(args, dict):
                return
            text = canonical_json(args)
            if text in self.known:
                verdict = self.known[text]
            else:
                if time.monotonic() >= self.deadline or calls[0] >= MAX_SHRINK_CALLS:
                    return
                calls[0] += 1
                result = self.runner.run(self.job(args))
                if result.status == "unavailable":
                    return
                verdict = self.known[text] = self.judge(result, args)
            if verdict is not None and verdict.key == target:
                hits.append(args)
                raise _Hit()

        phases = [hypothesis.Phase.generate, hypothesis.Phase.shrink]
        probe = hypothesis.seed(self.seed)(_settings(hypothesis, self.n, phases)(hypothesis.given(strategy)(probe_one)))
        try:
            probe()
        except Exception:  # noqa: BLE001 - _Hit, or the search giving up (flaky, budget): keep what was found
            pass
        size = len(canonical_json(first))
        best = first
        for args in hits:
            if len(canonical_json(args)) <= size:
                best, size = args, len(canonical_json(args))
        return best, calls[0]


def fuzz(
    tool: ToolVersion,
    runner: Backend,
    *,
    backend: str,
    limits: Limits,
    policy: PolicyName,
    n: int,
    seed: int = DEFAULT_SEED,
    budget: float = DEFAULT_BUDGET,
    valid: Callable[[dict[str, Any]], bool],
) -> CheckRun:
    """Fuzz `tool` with `n` generated argument sets (see the module's doc);
    the run and its findings, not yet stored."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FUZZ:
        raise InvalidInput(f"--fuzz must be a whole number from 1 to {MAX_FUZZ}")
    seconds = check_budget(budget)
    hypothesis_modules()
    run = StartedRun(
        tool, "fuzz", budget=seconds, settings={"n": n, "seed": seed, "budget": seconds}, backend=backend, policy=policy
    )
    deadline = run.deadline
    state = _Fuzz(
        tool=tool,
        runner=runner,
        limits=limits,
        policy=policy,
        n=n,
        seed=seed,
        deadline=deadline,
        documented=documented_exceptions(tool),
        validator=output_validator(tool),
    )
    summary: dict[str, Any] = {"generated": 0, "ran": 0, "documented": state.documented, "error": None}

    def done(findings: list[Finding], exhausted: bool) -> CheckRun:
        summary["budget_exhausted"] = exhausted
        summary["findings"] = len(findings)
        return run.finish(summary, findings)

    with JobPool(runner, deadline=deadline) as pool:
        # Each input's sandboxed call starts as soon as it is drawn: the
        # calls run in the zygotes' children while Hypothesis draws the next.
        pending: list[Future[Result | None]] = []
        try:
            inputs = generate_inputs(
                tool.signature.input_schema,
                n,
                seed,
                valid=valid,
                deadline=deadline,
                on_input=lambda args: pending.append(pool.submit(state.job(args))),
            )
        except NoInputs as exc:
            summary["error"] = str(exc)
            return done([], time.monotonic() >= deadline)
        summary["generated"] = len(inputs)

        outcomes: dict[str, int] = {}
        first_of: dict[tuple[str, ...], tuple[int, Verdict]] = {}
        counts: dict[tuple[str, ...], int] = {}
        results: list[Result | None] = []
        # The same input twice: the first REPEATS inputs that gave an answer
        # and no finding run again, started as soon as their first answer is in.
        repeats: dict[int, Future[Result | None]] = {}
        for index, (args, future) in enumerate(zip(inputs, pending, strict=True)):
            result = future.result()
            results.append(result)
            if result is None:
                continue
            outcomes[result.status] = outcomes.get(result.status, 0) + 1
            verdict = state.judge(result, args)
            state.known[canonical_json(args)] = verdict
            if verdict is not None:
                counts[verdict.key] = counts.get(verdict.key, 0) + 1
                first_of.setdefault(verdict.key, (index, verdict))
            elif result.status in ("ok", "error") and len(repeats) < REPEATS:
                repeats[index] = pool.submit(state.job(args))
        second = {i: future.result() for i, future in repeats.items()}
    ran = sum(outcomes.values())
    summary["ran"] = ran
    summary["outcomes"] = outcomes
    if ran and outcomes.get("limit", 0) == ran:
        summary["note"] = "every call hit a limit"

    findings: list[Finding] = []
    for number, (key, (index, verdict)) in enumerate(sorted(first_of.items(), key=lambda kv: kv[1][0])):
        found = inputs[index]
        shrunk, calls = found, 0
        if number < MAX_SHRUNK and time.monotonic() < deadline:
            shrunk, calls = state.shrink(key, found)
            # What the shrunk input itself showed (the same finding, smaller).
            verdict = state.known.get(canonical_json(shrunk)) or verdict
        findings.append(
            Finding(
                check="fuzz",
                kind=verdict.kind,
                summary=verdict.summary,
                input=shrunk,
                detail={
                    **verdict.detail,
                    "inputs": counts[key],
                    "first_input": cap_value(found, _VALUE_CAP),
                    "shrunk": shrunk != found,
                    "shrink_calls": calls,
                },
            )
        )

    # The same input twice: two answers is a finding of its own.
    if second:
        differing = []
        for i, result in second.items():
            first = results[i]
            if result is None or first is None or result.status == "unavailable":
                continue
            if _answer(first) != _answer(result):
                differing.append((i, first, result))
        summary["repeated"] = sum(1 for r in second.values() if r is not None)
        if differing:
            i, first, result = differing[0]
            findings.append(
                Finding(
                    check="fuzz",
                    kind="nondeterministic",
                    summary=f"the same input gave two answers: {_show(_answer(first))} then {_show(_answer(result))}",
                    input=inputs[i],
                    detail={
                        "first": cap_value(_answer(first), _VALUE_CAP),
                        "second": cap_value(_answer(result), _VALUE_CAP),
                        "inputs": len(differing),
                    },
                )
            )
    return done(findings, time.monotonic() >= deadline or ran < len(inputs))


def _answer(result: Result) -> Any:
    """What a run answered, to compare two runs of one input."""
    if result.status == "ok":
        return {"result": result.result}
    return {"status": result.status, "error": result.error.type if result.error else None, "limit": result.limit}
