"""The record of one run of the loop: every prompt and reply, in order, with
the stage it belongs to. Kept in a file (also on failure) and, for a tool
that is made, stored as its provenance."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry.store import utc_now
from .models import Chat, Reply
from .replies import for_record

__all__ = ["Transcript", "default_transcript_path"]


def default_transcript_path(registry_path: Path, task: str) -> Path:
    """Beside the registry: transcripts/make-TASK-TIME.json."""
    stamp = utc_now().replace(":", "").replace("-", "").replace(".", "")
    return registry_path.parent / "transcripts" / f"make-{task}-{stamp}.json"


@dataclass
class Transcript:
    model: str
    task: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_known: bool = True

    def ask(self, chat: Chat, stage: str, prompt: str) -> Reply:
        """Send a prompt, record it and the reply (the prompt is kept even when the model fails)."""
        self.messages.append({"role": "user", "stage": stage, "content": prompt})
        reply = chat.send(prompt)
        # Bounded: an over-long reply is refused by the stage, and kept only in part.
        self.messages.append({"role": "assistant", "stage": stage, "content": for_record(reply.text)})
        if reply.input_tokens is None or reply.output_tokens is None:
            self.tokens_known = False
        else:
            self.input_tokens += reply.input_tokens
            self.output_tokens += reply.output_tokens
        return reply

    def note(self, stage: str, text: str) -> None:
        """What toolcrib found (a sandbox error, a refusal), recorded between the turns."""
        self.messages.append({"role": "toolcrib", "stage": stage, "content": text})

    def tokens(self) -> dict[str, int] | None:
        if not self.tokens_known:
            return None
        return {"input": self.input_tokens, "output": self.output_tokens}

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "task": self.task, "tokens": self.tokens(), "messages": self.messages}

    def text(self) -> str:
        return json.dumps(self.as_json(), indent=1, ensure_ascii=False)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text() + "\n", encoding="utf-8")
        return path
