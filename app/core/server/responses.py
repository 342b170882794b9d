"""OpenAI's response shapes: completions (whole and as chunks), embeddings, the model list.

Kept apart from the parsing (protocol.py) so that each reads as one page. A chat stream is: a first
chunk with the role, one chunk per piece of text (nothing coalesced), a last chunk with the
finish_reason, then, when the client asked for usage, a chunk with no choices and the usage.
"""

from __future__ import annotations

import array
import base64
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from app import __version__
from app.core.inference.types import Embeddings, GenerationStats

SYSTEM_FINGERPRINT = f"llamadesk-{__version__}"
_FINISH = {"eos": "stop", "length": "length", "context_full": "length", "user": "stop"}


@dataclass(frozen=True)
class ServedModel:
    id: str  # what clients send as "model"
    created: int  # unix seconds (the file's time)
    loaded: bool  # the model that answers now
    name: str = ""  # another name a client may use for it (the library's display name); "" if none


def finish_reason(stats: GenerationStats | None) -> str:
    """eos → "stop", length/context_full → "length", user (stopped) → "stop"."""
    return _FINISH.get(stats.stop_reason, "stop") if stats is not None else "stop"


def usage(stats: GenerationStats | None) -> dict[str, int]:
    prompt = stats.prompt_tokens if stats else 0
    completion = stats.completion_tokens if stats else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Completion:
    """The ids and times one answer's response and chunks share."""

    def __init__(self, kind: str, model: str, include_usage: bool = False) -> None:
        self.kind = kind  # "chat" | "completion"
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": SYSTEM_FINGERPRINT}

    def whole(self, text: str, stats: GenerationStats | None) -> dict[str, Any]:
        """The non-streaming response."""
        if self.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish_reason(stats)}
            return {**self._head("chat.completion"), "choices": [choice], "usage": usage(stats)}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason(stats)}
        return {**self._head("text_completion"), "choices": [choice], "usage": usage(stats)}

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        chunk = {**self._head(obj), "choices": [{"index": 0, **choice, "logprobs": None}]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def first_chunk(self) -> dict[str, Any] | None:
        """A chat stream opens with the role (a completion stream has no such chunk)."""
        if self.kind != "chat":
            return None
        return self._chunk({"delta": {"role": "assistant", "content": ""}, "finish_reason": None})

    def text_chunk(self, text: str) -> dict[str, Any]:
        if self.kind == "chat":
            return self._chunk({"delta": {"content": text}, "finish_reason": None})
        return self._chunk({"text": text, "finish_reason": None})

    def last_chunk(self, stats: GenerationStats | None) -> dict[str, Any]:
        if self.kind == "chat":
            return self._chunk({"delta": {}, "finish_reason": finish_reason(stats)})
        return self._chunk({"text": "", "finish_reason": finish_reason(stats)})

    def usage_chunk(self, stats: GenerationStats | None) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._head(obj), "choices": [], "usage": usage(stats)}


def embeddings_response(model: str, embeddings: Embeddings, encoding_format: str = "float") -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": _encoded(vector, encoding_format)}
            for i, vector in enumerate(embeddings.vectors)]
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": embeddings.tokens, "total_tokens": embeddings.tokens}}


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    """The vector as floats, or base64 of little-endian float32 (what OpenAI's clients decode)."""
    if encoding_format != "base64":
        return [float(v) for v in vector]
    values = array.array("f", vector)
    if sys.byteorder != "little":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def models_response(models: list[ServedModel], loaded: ServedModel | None) -> dict[str, Any]:
    """The library's models, the loaded one marked (listed even if it is not in the library)."""
    listed = list(models)
    if loaded is not None and all(m.id != loaded.id for m in listed):
        listed.insert(0, loaded)
    data = [{"id": m.id, "object": "model", "created": m.created, "owned_by": "llamadesk",
             "loaded": loaded is not None and m.id == loaded.id} for m in listed]
    return {"object": "list", "data": data}
