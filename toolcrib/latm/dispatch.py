"""`dispatch`: which tool, if any, fits a question.

Candidates come from `Registry.search` (verified tools only). With a model,
the paper's dispatcher prompt lists each candidate's task name and one of its
use-case questions, and the model replies ``Task: NAME`` or ``unknown`` (a
name that was not offered counts as unknown). Without a model the best
search hit above the search's own fit threshold wins.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from ..registry import Registry
from ..registry.search import SearchHit
from .models import Model
from .prompts import dispatch_prompt
from .replies import MAX_REPLY_CHARS, for_record
from .use import tool_use_cases

__all__ = ["Candidate", "Dispatch", "dispatch"]

_TASK_LINE = re.compile(r"Task:\s*(.+)")


class Candidate(BaseModel):
    tool: str = Field(description="name@version")
    task: str = Field(description="the task name the model sees")
    score: float
    example: str = Field(description="the use-case question shown to the model")


class Dispatch(BaseModel):
    """`--json` output of `toolcrib dispatch` (before any make or use)."""

    question: str
    by: Literal["model", "search"]
    model: str | None = None
    candidates: list[Candidate]
    choice: str | None = Field(None, description="name@version of the tool chosen; None: no tool fits")
    reply: str | None = Field(None, description="the model's reply")


def _candidate(hit: SearchHit) -> Candidate:
    cases = tool_use_cases(hit)
    example = cases[0].question if cases else (hit.signature.description or hit.name)
    task = hit.provenance.metadata.get("latm.task") or hit.name
    return Candidate(tool=f"{hit.name}@{hit.version}", task=task, score=round(hit.score, 4), example=example)


def _parse_choice(reply: str, candidates: list[Candidate]) -> str | None:
    found = _TASK_LINE.search(reply)
    named = (found.group(1) if found else reply).strip().strip("`*.'\"").strip()
    for candidate in candidates:
        if named.lower() in (candidate.task.lower(), candidate.tool.split("@")[0].lower(), candidate.tool.lower()):
            return candidate.tool
    return None


def dispatch(reg: Registry, question: str, model: Model | None, *, limit: int = 5) -> Dispatch:
    """Route a question to a tool (or to none)."""
    if model is None:
        hits = reg.search(question, limit=limit, verified_only=True)
        candidates = [_candidate(h) for h in hits]
        return Dispatch(
            question=question, by="search", candidates=candidates, choice=candidates[0].tool if candidates else None
        )
    # The model judges the fit, so any word in common makes a candidate.
    hits = reg.search(question, limit=limit, verified_only=True, min_score=0)
    candidates = [_candidate(h) for h in hits]
    if not candidates:
        return Dispatch(question=question, by="model", model=model.model_id, candidates=[])
    prompt = dispatch_prompt([(c.task, c.example) for c in candidates], question)
    reply = model.start().send(prompt).text
    if len(reply) > MAX_REPLY_CHARS:  # not read: a reply over the cap names no task
        return Dispatch(
            question=question, by="model", model=model.model_id, candidates=candidates, reply=for_record(reply)
        )
    return Dispatch(
        question=question,
        by="model",
        model=model.model_id,
        candidates=candidates,
        choice=_parse_choice(reply, candidates),
        reply=reply,
    )
