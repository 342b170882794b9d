"""The chunks of an OpenAI-compatible streamed answer read into Pieces and one Finished, and the small
readers of untrusted JSON they need (a field of the wrong type counts as absent, never as an error).
Kept apart from client.py, which does the requests and their failures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Piece:
    text: str = ""
    reasoning: str = ""  # delta.reasoning_content: kept apart from the answer


@dataclass(frozen=True)
class Finished:
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str
    system_fingerprint: str
    predicted_per_second: float | None
    prompt_ms: float | None
    cached_tokens: int | None


class ChunkReader:
    """The state of one streamed answer: what the chunks said, and the prefill's echo dropped
    (llama-server repeats the start it was given in its first delta; vLLM does not)."""

    def __init__(self, prefill: str | None) -> None:
        self._echo, self._held = prefill, ""
        self.started = False
        self.finish_reason: str | None = None
        self.model = self.fingerprint = ""
        self.usage: dict = {}
        self.timings: dict = {}

    def feed(self, chunk: dict) -> list[Piece]:
        self.model = str(chunk.get("model") or self.model)
        self.fingerprint = str(chunk.get("system_fingerprint") or self.fingerprint)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), dict):
            self.timings = chunk["timings"]
        choices = chunk.get("choices") or []
        choice = choices[0] if isinstance(choices, list) and choices else {}
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            delta = {}
        text, reasoning = as_str(delta.get("content")), as_str(delta.get("reasoning_content"))
        if isinstance(choice, dict) and choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        text = self._unecho(text) + (self._flush() if self.finish_reason else "")
        self.started = self.started or bool(text or reasoning)
        return [Piece(text, reasoning)] if text or reasoning else []

    def _unecho(self, text: str) -> str:
        if self._echo is None:
            return text
        self._held += text
        if len(self._held) < len(self._echo) and self._echo.startswith(self._held):
            return ""  # may still be the echo: wait for more
        echo, self._echo = self._echo, None
        return self._flush().removeprefix(echo)

    def _flush(self) -> str:
        held, self._held, self._echo = self._held, "", None
        return held

    def finished(self) -> Finished:
        details = self.usage.get("prompt_tokens_details")
        cached = as_int(self.timings.get("cache_n"))
        if cached is None and isinstance(details, dict):
            cached = as_int(details.get("cached_tokens"))
        return Finished(self.finish_reason or "stop", as_int(self.usage.get("prompt_tokens")),
                        as_int(self.usage.get("completion_tokens")), self.model, self.fingerprint,
                        as_float(self.timings.get("predicted_per_second")),
                        as_float(self.timings.get("prompt_ms")), cached)


def loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def server_message(body: Any, text: str) -> str:
    """The server's own words about a failure: {"error": {"message"}}, {"error": "…"}, {"message"},
    {"detail"}, or a short plain-text body; never an HTML page."""
    said: Any = ""
    if isinstance(body, dict):
        error = body.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        said = said or body.get("message") or body.get("detail")
    elif text and "<" not in text[:200]:
        said = text
    said = " ".join(str(said or "").split())
    return said[:300] + "…" if len(said) > 300 else said
