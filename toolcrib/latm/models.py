"""The models the LATM loop talks to: any `llm` model, or a replay of recorded replies.

Both satisfy one small protocol, `Model`: ``start()`` opens a conversation
(`Chat`) whose ``send(prompt)`` returns a `Reply`. A tool maker's stages are
one conversation (the model sees its earlier code and the sandbox's errors);
each tool-user question and each dispatch is a fresh one.

`llm` is imported only inside `LLMModel`, so commands that never talk to a
model (and ``toolcrib --help``) do not pay for importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..registry.errors import InvalidInput, ToolcribError
from ..registry.versions import sha256_text

__all__ = ["Chat", "LLMModel", "Model", "ModelFailed", "Reply", "ReplayModel", "get_model"]


class ModelFailed(ToolcribError):
    """The model could not give a reply (a provider error, or a replay that ran out).
    Exit 1: the loop stops at the stage it was in and says so."""


@dataclass(frozen=True)
class Reply:
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class Chat(Protocol):
    def send(self, prompt: str) -> Reply: ...


class Model(Protocol):
    model_id: str

    def start(self) -> Chat: ...


class _ReplayChat:
    def __init__(self, model: ReplayModel) -> None:
        self._model = model

    def send(self, prompt: str) -> Reply:
        return self._model.next_reply()


class ReplayModel:
    """Stands in for a model with a JSON list of reply strings, used in order
    across every conversation (make, then use, then dispatch share one list)."""

    def __init__(self, replies: list[str], *, name: str = "replay") -> None:
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise InvalidInput("a replay file must be a JSON list of reply strings")
        self.replies = list(replies)
        self.used = 0
        self.model_id = name

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayModel:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"replay file not found: {file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read replay file {file}: {exc}") from None
        from ..sandbox.inside.wire import ProtocolError, read_json  # the host's one bounded JSON reader

        try:
            data = read_json(text, f"replay file {file}")
        except ProtocolError as exc:
            raise InvalidInput(str(exc)) from None
        # The id names the exact replies, so provenance says which recording made a tool.
        return cls(data, name=f"replay:{file.name}:sha256:{sha256_text(text)[:16]}")

    @property
    def remaining(self) -> int:
        return len(self.replies) - self.used

    def next_reply(self) -> Reply:
        if self.used >= len(self.replies):
            raise ModelFailed(f"the replay has no reply left (all {len(self.replies)} were used)")
        text = self.replies[self.used]
        self.used += 1
        return Reply(text)

    def start(self) -> Chat:
        return _ReplayChat(self)


class _LLMChat:
    def __init__(self, conversation: Any, model_id: str) -> None:
        self._conversation = conversation
        self._model_id = model_id

    def send(self, prompt: str) -> Reply:
        import llm

        try:
            response = self._conversation.prompt(prompt)
            text = response.text()
            usage = response.usage()
        except llm.errors.ModelError as exc:  # includes a missing key
            raise ModelFailed(f"{self._model_id}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - provider plugins raise their own (HTTP, auth) errors
            raise ModelFailed(f"{self._model_id}: {type(exc).__name__}: {exc}") from None
        return Reply(str(text), usage.input, usage.output)


class LLMModel:
    """A model from the `llm` package: any provider its plugins add, keys from
    llm's own key store (``llm keys set openai``) or the provider's variable."""

    def __init__(self, model_id: str) -> None:
        import llm

        try:
            self._model = llm.get_model(model_id)
        except llm.UnknownModelError:
            raise InvalidInput(
                f"unknown model {model_id!r}: 'llm models' lists the installed ones "
                "(a provider plugin adds more, e.g. 'llm install llm-anthropic')"
            ) from None
        self.model_id: str = str(self._model.model_id)
        try:  # a missing key is a setup problem: say so before any stage starts
            self._model.get_key()
        except llm.errors.NeedsKeyException as exc:
            raise InvalidInput(f"{self.model_id}: {exc}") from None

    def start(self) -> Chat:
        return _LLMChat(self._model.conversation(), self.model_id)


def get_model(model_id: str | None, replay: str | Path | None) -> Model | None:
    """The model a command asked for: a replay file, else an `llm` model id, else None."""
    if replay is not None and model_id is not None:
        raise InvalidInput("give --model or --replay, not both")
    if replay is not None:
        return ReplayModel.from_file(replay)
    if model_id is not None:
        return LLMModel(model_id)
    return None
