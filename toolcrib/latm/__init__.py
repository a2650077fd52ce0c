"""toolcrib.latm: the LATM loop (Large Language Models as Tool Makers) run on
the registry: make a tool from demos, use it, dispatch questions to it.

    from toolcrib import Registry
    from toolcrib.latm import ReplayModel, load_task, make, use
    with Registry("tools.db") as reg:
        made = make(reg, load_task("word_sorting.json"), ReplayModel([...]))
        report = use(reg, made.tool, load_task("questions.jsonl").examples, model)

The loop is a client of `Registry` like any tool maker: every line a model
writes runs in the sandbox, never on the host. See docs/latm.md.
"""

from .dispatch import Candidate, Dispatch, dispatch
from .make import MakeResult, StageReport, make
from .models import Chat, LLMModel, Model, ModelFailed, ReplayModel, Reply, get_model
from .settings import MODEL_KEY, get_setting, set_setting
from .tasks import Example, Task, load_task, parse_task
from .use import Answer, UseReport, use

__all__ = [
    "Answer",
    "Candidate",
    "Chat",
    "Dispatch",
    "Example",
    "LLMModel",
    "MODEL_KEY",
    "MakeResult",
    "Model",
    "ModelFailed",
    "Reply",
    "ReplayModel",
    "StageReport",
    "Task",
    "UseReport",
    "dispatch",
    "get_model",
    "get_setting",
    "load_task",
    "make",
    "parse_task",
    "set_setting",
    "use",
]
