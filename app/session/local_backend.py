"""The local llama.cpp engine as a `Backend` (app/core/inference/backend.py).

It turns the inference thread's queued signals into per-answer streams that a chat session
iterates on the qasync loop, and keeps what the session needs to know about the model. The model
itself runs in the engine's own process, driven by the inference thread (inference_worker.py).
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal

from app.core.chat.context_window import OverflowPolicy
from app.core.chat.sampling import SamplingParams
from app.core.inference.backend import (
    BackendBusy,
    Delta,
    PromptProgress,
    PromptRead,
    QueuedStream,
    StreamEvent,
)
from app.core.inference.types import (
    BuildInfo,
    ChatMessages,
    EngineError,
    GenerationStats,
    LoadOptions,
    ModelInfo,
)
from app.session.inference_worker import InferenceClient

log = logging.getLogger(__name__)


class LocalStream(QueuedStream):
    """The events of one answer, in order, as the inference thread sent them."""

    def __init__(self, request_id: int, stop_engine=None) -> None:
        super().__init__()
        self.request_id = request_id
        self._stop_engine = stop_engine  # the engine answers one request at a time: it stops this one

    def stop(self) -> None:
        if not self.ended and self._stop_engine is not None:
            self._stop_engine()


class LocalBackend(QObject):
    """llama.cpp on this machine: load, unload, stream, count, stop."""

    loading = Signal(str)  # model path
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str, str, object)  # kind, message, the ModelInfo still loaded (or None)
    unloaded = Signal()

    def __init__(self, client: InferenceClient | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client or InferenceClient(self)
        self._model: ModelInfo | None = None
        self._loading = False
        self._streams: dict[int, LocalStream] = {}
        self._counts: dict[int, asyncio.Future] = {}
        worker = self.client.worker
        worker.loading.connect(self._on_loading)
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.unloaded.connect(self._on_unloaded)
        # Bound methods of this QObject, so the worker's signals arrive queued in the GUI thread.
        worker.prompt_ready.connect(self._on_prompt_ready)
        worker.prompt_progress.connect(self._on_prompt_progress)
        worker.token.connect(self._on_token)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.counted.connect(self._on_counted)
        worker.described.connect(self._on_counted)

    @property
    def model(self) -> ModelInfo | None:
        return self._model

    @property
    def busy(self) -> bool:
        return self.client.busy

    @property
    def is_loading(self) -> bool:
        return self._loading

    def load(self, path: str, options: LoadOptions) -> None:
        self._loading = True
        self.client.load(path, options)

    def unload(self) -> None:
        self.client.unload()

    def keep_kv(self, conversation_ids: set[str]) -> None:
        self.client.keep_kv(conversation_ids)

    def stream(self, messages: ChatMessages, sampling: SamplingParams, cache_key: str | None = None,
               continue_text: str = "", policy: str = OverflowPolicy.DROP_OLDEST) -> LocalStream:
        request = self.client.generate(messages, sampling, cache_key, continue_text, policy)
        if request is None:
            raise BackendBusy("an answer is still running: check `busy` before asking for another")
        stream = self._streams[request] = LocalStream(request, self.client.stop)
        return stream

    def stop(self) -> None:
        self.client.stop()

    async def count(self, messages: ChatMessages) -> int | None:
        count_id = self.client.count(messages)
        future = self._counts[count_id] = asyncio.get_running_loop().create_future()
        try:
            tokens = await future
        finally:
            self._counts.pop(count_id, None)
        return None if tokens < 0 else tokens

    async def build(self) -> BuildInfo | None:
        """What this llama.cpp build can run on, asked of the engine's process (which starts if
        no model was loaded yet): the window's process never loads llama.cpp."""
        request = self.client.describe()
        future = self._counts[request] = asyncio.get_running_loop().create_future()
        try:
            return await future
        finally:
            self._counts.pop(request, None)

    def close(self) -> None:
        """End the engine; what the worker sent before it ended is delivered to the streams,
        which then end."""
        self.client.shutdown()
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        for stream in self._streams.values():
            stream.end()
        self._streams.clear()

    def _on_prompt_ready(self, request: int, tokens: int, dropped: int) -> None:
        self._push(request, PromptRead(tokens, dropped))

    def _on_prompt_progress(self, request: int, done: int, total: int) -> None:
        self._push(request, PromptProgress(done, total))

    def _on_token(self, request: int, text: str, tokens: int) -> None:
        self._push(request, Delta(text, tokens))

    def _on_finished(self, request: int, stats: GenerationStats) -> None:
        self._push(request, stats)

    def _on_failed(self, request: int, kind: str, message: str) -> None:
        self._push(request, EngineError(message, kind=kind))

    def _push(self, request: int, event: StreamEvent | EngineError) -> None:
        stream = self._streams.get(request)
        if stream is None:
            return
        stream.push(event)
        if isinstance(event, GenerationStats | EngineError):
            del self._streams[request]

    def _on_counted(self, request: int, answer: object) -> None:
        """A count (tokens) or a build description: both answer a future by their request id."""
        future = self._counts.get(request)
        if future is not None and not future.done():
            future.set_result(answer)

    def _on_loading(self, path: str) -> None:
        self.loading.emit(path)

    def _on_loaded(self, info: ModelInfo) -> None:
        self._model, self._loading = info, False
        self.loaded.emit(info)

    def _on_load_failed(self, kind: str, message: str, kept: ModelInfo | None) -> None:
        self._model, self._loading = kept, False
        self.load_failed.emit(kind, message, kept)

    def _on_unloaded(self) -> None:
        self._model, self._loading = None, False
        self.unloaded.emit()
