"""A scripted Backend (app/core/inference/backend.py) for session tests that run in milliseconds.

Each answer follows a `Script`: the prompt it reports, the deltas it streams, then stats — or a
failure. It streams only as fast as the test lets it: `release(n)` hands out n more events, so a
test can act between any two tokens (Stop, a failing disk, closing the app).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from app.core.inference.backend import BackendBusy, Delta, PromptRead, StreamEvent
from app.core.inference.types import EngineError, GenerationStats, ModelInfo

MODEL = ModelInfo(path="/models/fake.gguf", name="fake", architecture="llama", n_ctx=2048, n_layers=4,
                  gpu_layers=0, backend="CPU", chat_template="model", llama_cpp_version="0.0-fake")


@dataclass
class Script:
    deltas: list[str] = field(default_factory=lambda: ["Hello", ", ", "world", "."])
    prompt_tokens: int = 12
    dropped: int = 0
    fail: EngineError | None = None  # raised after the deltas instead of stats
    stop_reason: str = "eos"


class FakeStream:
    def __init__(self, backend: FakeBackend, script: Script, request: dict) -> None:
        self.backend = backend
        self.request = request
        self._pending: collections.deque[StreamEvent | EngineError] = collections.deque(
            [PromptRead(script.prompt_tokens, script.dropped)] + [Delta(d, 1) for d in script.deltas])
        self._script = script
        self._released: collections.deque[StreamEvent | EngineError] = collections.deque()
        self._wake: asyncio.Future | None = None
        self.stopped = False
        self.ended = False

    def _final(self) -> StreamEvent | EngineError:
        if self._script.fail is not None and not self.stopped:
            return self._script.fail
        completion = sum(isinstance(e, Delta) for e in self.request["sent"])
        return GenerationStats(self._script.prompt_tokens, completion, 0.01, 100.0, 0.05,
                               "user" if self.stopped else self._script.stop_reason, seed=7)

    def release(self, n: int | None = None) -> None:
        """Hand out n more events (all, with None); the last one (stats or failure) follows the
        deltas."""
        while self._pending and (n is None or n > 0):
            event = self._pending.popleft()
            self.request["sent"].append(event)
            self._released.append(event)
            n = None if n is None else n - 1
        if not self._pending and (n is None or n > 0) and not self.ended:
            self._released.append(self._final())
            self.ended = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def stop(self) -> None:
        """Like llama.cpp: the answer ends after the token being made."""
        self.stopped = True
        self._pending.clear()
        self.release()

    def end(self) -> None:
        """The backend was closed: nothing more comes."""
        self._pending.clear()
        self.ended = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def take_arrived(self) -> list[StreamEvent]:
        events = [e for e in self._released if not isinstance(e, EngineError)]
        self._released.clear()
        return events

    async def __aiter__(self):
        while True:
            while self._released:
                event = self._released.popleft()
                if isinstance(event, EngineError):
                    raise event
                yield event
                if isinstance(event, GenerationStats):
                    return
            if self.ended and not self._released:
                return
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake


class FakeBackend:
    def __init__(self, model: ModelInfo | None = MODEL, auto: bool = True) -> None:
        """auto: every event is released at once (the answer streams as soon as the loop turns)."""
        self.model = model
        self.is_loading = False  # a test sets it: "a model is on its way"
        self.auto = auto
        self.scripts: list[Script] = []  # the next answers' scripts, in order (default: Script())
        self.requests: list[dict] = []
        self.streams: list[FakeStream] = []
        self.closed = False

    @property
    def busy(self) -> bool:
        return any(not s.ended for s in self.streams)

    @property
    def current(self) -> FakeStream:
        return self.streams[-1]

    def stream(self, messages, sampling, cache_key=None, continue_text="", policy="drop_oldest"
               ) -> FakeStream:
        if self.busy:
            raise BackendBusy("an answer is still running")
        request = {"messages": list(messages), "sampling": sampling, "cache_key": cache_key,
                   "continue_text": continue_text, "policy": str(policy), "sent": []}
        self.requests.append(request)
        stream = FakeStream(self, self.scripts.pop(0) if self.scripts else Script(), request)
        self.streams.append(stream)
        if self.auto:
            stream.release()
        return stream

    def stop(self) -> None:
        for stream in self.streams:
            if not stream.ended:
                stream.stop()

    async def count(self, messages) -> int | None:
        if self.model is None:
            return None
        return sum(len(m["content"].split()) + 4 for m in messages)

    def close(self) -> None:
        self.closed = True
        for stream in self.streams:
            stream.end()
