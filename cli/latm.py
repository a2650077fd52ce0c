"""The LATM loop's commands: make (the tool maker), use (the tool user),
dispatch (the dispatcher), and model (the registry's default model)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..latm import (
    MODEL_KEY,
    Answer,
    Example,
    MakeResult,
    Model,
    get_model,
    get_setting,
    load_task,
    set_setting,
)
from ..latm import (
    dispatch as dispatch_question,
)
from ..latm import (
    make as make_tool,
)
from ..latm import (
    use as use_tool,
)
from ..registry import Registry
from ..registry.comparators import TABLE as COMPARATOR_TABLE
from ..registry.comparators import describe
from ..registry.errors import NotFound
from ..sandbox import BACKEND_NAMES, Limits
from .common import (
    BACKEND_DEFAULT_HELP,
    CLIError,
    F,
    TableChoice,
    declared_limits,
    default_backend_name,
    echo_json,
    echo_progress,
    echo_text,
    json_option,
    limit_option,
    open_registry,
    parse_limits,
    read_text_argument,
)

__all__ = ["COMMANDS"]


def backend_option(fn: F) -> F:
    return click.option(
        "--backend",
        type=click.Choice(BACKEND_NAMES),
        callback=default_backend_name,
        envvar="TOOLCRIB_BACKEND",
        help="Sandbox backend for every run of model code ($TOOLCRIB_BACKEND). " + BACKEND_DEFAULT_HELP,
    )(fn)


def model_options(fn: F) -> F:
    fn = click.option(
        "--replay",
        metavar="FILE",
        help="A JSON list of reply strings that stand in for the model's replies, in order (offline, reproducible).",
    )(fn)
    return click.option(
        "--model",
        "model_id",
        metavar="ID",
        help="An llm model id (e.g. gpt-4o; 'llm models' lists them). Default: the registry's, see 'toolcrib model'.",
    )(fn)


def _model(reg: Registry, model_id: str | None, replay: str | None, *, required: bool) -> Model | None:
    if model_id is None and replay is None:
        model_id = get_setting(reg, MODEL_KEY)
    model = get_model(model_id, replay)
    if model is None and required:
        raise CLIError("no model: pass --model ID or --replay FILE, or set a default with 'toolcrib model ID'")
    return model


def _stage_progress(stage: str, attempt: int, message: str) -> None:
    echo_progress(f"{stage}: attempt {attempt}: {message}")


def _make(
    reg: Registry,
    task_path: str,
    model: Model,
    *,
    name: str | None,
    demos: int,
    validate: int,
    retries: int,
    transcript: str | None,
    backend: str,
    limits: Limits | None,
    comparator: str = "exact",
    holdout: int = 0,
    min_accuracy: float | None = None,
) -> MakeResult:
    return make_tool(
        reg,
        load_task(task_path),
        model,
        demos=demos,
        validate=validate,
        retries=retries,
        name=name,
        transcript_path=transcript,
        backend=backend,
        limits=limits,
        progress=_stage_progress,
        comparator=comparator,
        holdout=holdout,
        min_accuracy=min_accuracy,
    )


def _make_failure(result: MakeResult) -> CLIError:
    if result.failed_stage == "holdout":
        return CLIError.with_exit_code(f"make failed: {result.error}; transcript kept in {result.transcript}", 1)
    attempts = next((s.attempts for s in result.stages if s.stage == result.failed_stage), 0)
    where = f" ({result.tool} is stored, status {result.verification})" if result.tool else ""
    return CLIError.with_exit_code(
        f"make failed at the {result.failed_stage} stage after {attempts} attempt(s): {result.error}{where}; "
        f"transcript kept in {result.transcript}",
        1,
    )


@click.command()
@click.argument("task", metavar="TASK")
@model_options
@click.option("--name", help="Tool name. Default: the function's name.")
@click.option("--demos", default=3, show_default=True, help="Examples shown to the model as demos (the first ones).")
@click.option(
    "--validate", default=3, show_default=True, help="Examples after the demos the model writes unit tests for."
)
@click.option("--retries", default=3, show_default=True, help="Repair rounds per stage after a failure.")
@click.option(
    "--transcript", metavar="FILE", help="Where to keep the transcript. Default: transcripts/ beside the registry."
)
@click.option(
    "--comparator",
    type=TableChoice(COMPARATOR_TABLE),
    default="exact",
    show_default=True,
    help=f"How the stored tests compare an answer with the example's target. {describe()}.",
)
@click.option(
    "--holdout",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="K",
    help="Hold out the K examples after the validation ones: the finished tool answers them in the sandbox "
    "(as 'use' would) and the accuracy goes into the provenance and --json.",
)
@click.option(
    "--min-accuracy",
    type=click.FloatRange(min=0, max=1),
    default=None,
    metavar="X",
    help="With --holdout: below this held-out accuracy (0 to 1) the make fails and nothing is registered.",
)
@backend_option
@limit_option
@json_option
def make(
    task: str,
    model_id: str | None,
    replay: str | None,
    name: str | None,
    demos: int,
    validate: int,
    retries: int,
    transcript: str | None,
    comparator: str,
    holdout: int,
    min_accuracy: float | None,
    backend: str,
    limits: tuple[str, ...],
    json_output: bool,
) -> None:
    """Make a verified tool from a task's examples (the LATM tool maker).

    TASK is a JSON list of {"input", "target"} objects, the same under
    {"examples": [...]}, or JSONL. The model proposes a function from the
    first --demos examples, writes unit tests for the next --validate, and
    wraps the function with use cases. Every line it writes runs in the
    sandbox; errors go back to it (--retries times per stage). The tool is
    registered with the task's examples as tests (their own targets as
    expected values), the transcript as provenance, then verified.
    Progress goes to stderr. Exit 1 when a stage fails (the message names
    the stage, the last error and the transcript file). --holdout K checks
    the finished tool on K examples the model never saw; with
    --min-accuracy, a tool below it is a failed make (exit 1). Each example's
    CPU, wall time and memory are measured in the sandbox; when the heaviest
    comes near the limits (or over them: it is run again under 10x, within
    the registry's maxima), the version declares 10x its use, and where only
    the plain policy finishes and the jail permits it, plain (docs/latm.md).
    Without --limit only; --limit is kept as given.

    \b
    Examples:
        toolcrib make word_sorting.json --model gpt-4o
        toolcrib make word_sorting.json --replay replies.json --json
        toolcrib make word_sorting.json --model gpt-4o --holdout 3 --min-accuracy 0.66
    """
    reg = open_registry(create=True)
    model = _model(reg, model_id, replay, required=True)
    assert model is not None
    declared = declared_limits(limits)
    result = _make(
        reg,
        task,
        model,
        name=name,
        demos=demos,
        validate=validate,
        retries=retries,
        transcript=transcript,
        backend=backend,
        limits=declared,
        comparator=comparator,
        holdout=holdout,
        min_accuracy=min_accuracy,
    )
    if json_output:
        echo_json(result.model_dump(mode="json"))
    if result.status != "made":
        raise _make_failure(result)
    if not json_output:
        echo_text(
            f"{result.tool}: verified ({result.tests} tests from the task's examples); "
            f"transcript in {result.transcript}"
        )
        if result.holdout is not None:
            h = result.holdout
            echo_text(f"held-out accuracy: {h.accuracy} ({h.correct} of {h.examples} examples it never saw)")
        if result.measured is not None:
            for note in result.measured.notes:  # limits declared from the examples' costs, a policy switch
                echo_text(f"measured: {note}")


def _questions(question: str | None, questions_path: str | None) -> list[Example]:
    if (question is None) == (questions_path is None):
        raise click.UsageError("give a QUESTION (or - for stdin) or --questions FILE")
    if questions_path is not None:
        return load_task(questions_path).examples
    text = read_text_argument(question, "question") if question == "-" else question
    assert text is not None
    if not text.strip():
        raise CLIError("the question is empty")
    return [Example(text.strip())]


def _answer_line(answer: Answer) -> str:
    if answer.status == "ok":
        value = answer.answer
        return value if isinstance(value, str) else repr(value)
    return f"[{answer.status}] {answer.error or ''}".rstrip()


@click.command()
@click.argument("ref")
@click.argument("question", required=False)
@click.option("questions_path", "--questions", metavar="FILE", help="Questions in the TASK format (targets optional).")
@model_options
@backend_option
@limit_option
@json_option
def use(
    ref: str,
    question: str | None,
    questions_path: str | None,
    model_id: str | None,
    replay: str | None,
    backend: str,
    limits: tuple[str, ...],
    json_output: bool,
) -> None:
    """Answer questions with a tool (the LATM tool user).

    The model sees the tool's source and use cases and answers each question
    with a call snippet, which runs against the stored version in the
    sandbox like 'toolcrib call --snippet' (audited); `ans` is the answer.
    With targets (--questions) the accuracy is reported. A progress bar
    goes to stderr.

    \b
    Examples:
        toolcrib use sort_words "Sort the following words alphabetically: List: pear apple"
        echo "Sort ... List: fig date" | toolcrib use sort_words - --model gpt-4o-mini
        toolcrib use sort_words --questions test.jsonl --replay replies.json --json
    """
    examples = _questions(question, questions_path)
    reg = open_registry()
    model = _model(reg, model_id, replay, required=True)
    assert model is not None
    overrides = parse_limits(limits)
    if questions_path is not None:
        with click.progressbar(length=len(examples), label="answering", file=sys.stderr, show_pos=True) as bar:
            report = use_tool(
                reg, ref, examples, model, backend=backend, limits=overrides, on_answer=lambda _: bar.update(1)
            )
    else:
        report = use_tool(reg, ref, examples, model, backend=backend, limits=overrides)
    if json_output:
        echo_json(report.model_dump(mode="json"))
        return
    for answer in report.answers:
        mark = "" if answer.correct is None else ("  ✓" if answer.correct else f"  ✗ (target {answer.target!r})")
        echo_text(_answer_line(answer) + mark)
    if report.accuracy is not None:
        click.echo(f"accuracy: {report.correct}/{report.scored} = {report.accuracy:.2%}", err=True)


@click.command()
@click.argument("question")
@model_options
@click.option("--search-only", is_flag=True, help="Rank by search alone, even when a default model is set.")
@click.option("make_with", "--make-with", metavar="TASK", help="When no tool fits, make one from TASK (see 'make').")
@click.option("--then-use", is_flag=True, help="Answer the question with the chosen tool (see 'use').")
@click.option("--candidates", default=5, show_default=True, help="How many search hits the model chooses from.")
@backend_option
@json_option
def dispatch(
    question: str,
    model_id: str | None,
    replay: str | None,
    search_only: bool,
    make_with: str | None,
    then_use: bool,
    candidates: int,
    backend: str,
    json_output: bool,
) -> None:
    """Pick the tool that fits a question, or say none does (the LATM dispatcher).

    Candidates come from 'search' (verified tools); the model picks one by
    its task name and a use-case question, or answers unknown. Without a
    model the best search hit above the fit threshold wins. Prints the
    tool; exit 3 when none fits (unless --make-with makes one).
    QUESTION may be - to read it from stdin.

    \b
    Examples:
        toolcrib dispatch "Sort the following words alphabetically: List: pear apple"
        toolcrib dispatch "$QUESTION" --model gpt-4o-mini --then-use
        toolcrib dispatch "$QUESTION" --replay replies.json --make-with task.json --then-use --json
    """
    text = (read_text_argument(question, "question") if question == "-" else question).strip()
    if not text:
        raise CLIError("the question is empty")
    reg = open_registry(create=make_with is not None)
    model = None if search_only else _model(reg, model_id, replay, required=then_use or make_with is not None)
    routed = dispatch_question(reg, text, model, limit=candidates)
    output: dict[str, Any] = routed.model_dump(mode="json")
    choice = routed.choice
    if choice is None and make_with is not None:
        assert model is not None
        made = _make(
            reg,
            make_with,
            model,
            name=None,
            demos=3,
            validate=3,
            retries=3,
            transcript=None,
            backend=backend,
            limits=None,
        )
        output["made"] = made.model_dump(mode="json")
        if made.status != "made":
            if json_output:
                echo_json(output)
            raise _make_failure(made)
        choice = made.tool
    output["tool"] = choice
    answer: Answer | None = None
    if choice is not None and then_use:
        assert model is not None
        answer = use_tool(reg, choice, [Example(text)], model, backend=backend).answers[0]
        output["answer"] = answer.model_dump(mode="json")
    if json_output:
        echo_json(output)
    elif choice is not None:
        echo_text(choice)
        if answer is not None:
            echo_text(_answer_line(answer))
    if choice is None:
        raise CLIError.with_exit_code("no tool fits this question", NotFound.exit_code)


@click.command()
@click.argument("model_id", metavar="[ID]", required=False)
@click.option("--unset", is_flag=True, help="Remove the default.")
@json_option
def model(model_id: str | None, unset: bool, json_output: bool) -> None:
    """Show or set the registry's default model for make, use and dispatch.

    The id is an llm model id; keys come from llm's own key store
    ('llm keys set openai') or the provider's environment variable.

    \b
    Examples:
        toolcrib model gpt-4o
        toolcrib model --json
    """
    if model_id is not None and unset:
        raise click.UsageError("give an ID or --unset, not both")
    reg = open_registry(create=model_id is not None or unset)
    if model_id is not None or unset:
        set_setting(reg, MODEL_KEY, None if unset else model_id)
    current = get_setting(reg, MODEL_KEY)
    if json_output:
        echo_json({"model": current})
    else:
        echo_text(current if current is not None else "no default model (use --model ID, or 'toolcrib model ID')")


COMMANDS = [make, use, dispatch, model]
