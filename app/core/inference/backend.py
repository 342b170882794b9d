"""The one seam between a chat session and whatever writes the answers.

A `Backend` streams an answer as events: how the prompt was read (`PromptRead`, and
`PromptProgress` for long prompts), text as it comes (`Delta`), then exactly one
`GenerationStats`; a failure raises `EngineError` from the iteration instead. `stop()` ends the
running answer within one token (the stream then ends with stats whose stop_reason is "user").

The local llama.cpp engine (app/session/local_backend.py, its process driven by the inference
thread) is one implementation; a remote OpenAI-compatible server is another; tests script a
third (tests/fakes/fake_backend.py).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from app.core.chat.context_window import OverflowPolicy
from app.core.chat.sampling import SamplingParams
from app.core.inference.types import ChatMessages, EngineError, GenerationStats, LoadOptions, ModelInfo


@dataclass(frozen=True)
class PromptRead:
    """The prompt the model reads: its size, and how many earlier messages did not fit."""

    tokens: int
    dropped: int


@dataclass(frozen=True)
class PromptProgress:
    """A long prompt is read batch by batch (Stop works between batches)."""

    done: int
    total: int


@dataclass(frozen=True)
class Delta:
    """New answer text and the number of tokens it holds."""

    text: str
    tokens: int


@dataclass(frozen=True)
class Waiting:
    """The answer waits, and why (a busy server, retried after a pause): said to the user."""

    reason: str


StreamEvent = PromptRead | PromptProgress | Delta | Waiting | GenerationStats


class BackendBusy(Exception):
    """An answer still runs: `stream` refuses another (check `busy` first)."""


class QueueFull(Exception):
    """Too many API requests already wait for the model: the caller may send this one again after
    about retry_after_s seconds (the API server answers 503 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = max(1, int(retry_after_s))


class Stream(Protocol):
    """One answer being written: iterate it on the event loop; `take_arrived` hands over, without
    waiting, what has arrived so far (used when the app closes mid-answer)."""

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    def take_arrived(self) -> list[StreamEvent]: ...

    def stop(self) -> None:
        """End this answer within one token (its stats then say stop_reason "user")."""


class QueuedStream:
    """A Stream whose events are pushed as they arrive (by an engine's thread, an HTTP reader) and
    iterated on the event loop. It ends with its stats or a failure (raised from the iteration);
    nothing pushed after that counts."""

    def __init__(self) -> None:
        self._arrived: collections.deque[StreamEvent | EngineError] = collections.deque()
        self._ended = False
        self._wake: asyncio.Future | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def push(self, event: StreamEvent | EngineError) -> None:
        if self._ended:
            return
        self._arrived.append(event)
        self._ended = isinstance(event, GenerationStats | EngineError)
        self._wake_up()

    def end(self) -> None:
        """No more events will come (the backend was closed)."""
        self._ended = True
        self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def take_arrived(self) -> list[StreamEvent]:
        """What has arrived and was not iterated yet (a failure is left out: the answer simply
        ends incomplete)."""
        events = [e for e in self._arrived if not isinstance(e, EngineError)]
        self._arrived.clear()
        return events

    async def __aiter__(self):
        while True:
            while self._arrived:
                event = self._arrived.popleft()
                if isinstance(event, EngineError):
                    raise event
                yield event
                if isinstance(event, GenerationStats):
                    return
            if self._ended:
                return
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake


class Backend(Protocol):
    """Loading and its outcome are announced by each implementation's own events (the local one's
    Qt signals loading / loaded / load_failed / unloaded), which ModelSession observes."""

    def load(self, source: str, options: LoadOptions) -> None:
        """Load a model file (local) or connect to an endpoint (remote); returns at once."""

    def unload(self) -> None: ...

    @property
    def model(self) -> ModelInfo | None:
        """What answers now (None: nothing loaded or connected)."""

    @property
    def is_loading(self) -> bool:
        """A model is being loaded (or an endpoint connected): an answer asked now follows it."""

    @property
    def busy(self) -> bool:
        """An answer runs that was not asked to stop: a new one is refused until it ends."""

    def stream(self, messages: ChatMessages, sampling: SamplingParams, cache_key: str | None = None,
               continue_text: str = "", policy: str = OverflowPolicy.DROP_OLDEST) -> Stream:
        """Start an answer now (the request is sent before the first await); BackendBusy while
        another runs.

        cache_key names the conversation (its KV cache is kept apart from others');
        continue_text is the start of the answer, already written, for the model to carry on.
        """

    def stop(self) -> None:
        """Stop every answer it is writing (the app closes, the model changes)."""

    async def count(self, messages: ChatMessages) -> int | None:
        """How many tokens the chat is, as the model reads it (None: no model to ask)."""

    def close(self) -> None:
        """End it (the app closes): no answer runs after; what was already sent is in the
        streams (`take_arrived`), which then end."""
