"""The local llama.cpp engine as a `Backend` (app/core/inference/backend.py).

It turns the inference thread's queued signals into per-answer streams that a chat session
iterates on the qasync loop, and keeps what the session needs to know about the model. The model
itself runs in the engine's own process, driven by the inference thread (inference_worker.py).

The one engine serves the window and the API server (app/session/server.py). Requests reach the
inference thread one at a time: when one ends, the next is sent: the window's answer first, then
API requests in the order they came. So a client of the API can never starve the window: at
most the API request already running delays it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal

from app.core.chat.context_window import OverflowPolicy
from app.core.chat.sampling import SamplingParams
from app.core.inference.backend import (
    BackendBusy,
    Delta,
    PromptProgress,
    PromptRead,
    QueueFull,
    StreamEvent,
    Waiting,
)
from app.core.inference.types import (
    API_CACHE_KEY,
    BuildInfo,
    ChatMessages,
    Embeddings,
    EngineError,
    GenerationStats,
    LoadOptions,
    ModelInfo,
    OutputFormat,
)
from app.session.inference_worker import InferenceClient
from app.session.local_requests import EmbeddingJob, LocalStream

log = logging.getLogger(__name__)

WAITING_FOR_API = "The model is finishing a request from the API server; your answer starts after it."
MODEL_CHANGED = "The model was changed in Llamadesk; send the request again."
NO_MODEL = "No model is loaded in Llamadesk: load one there, then send the request again."
STOPPED_WHILE_WAITING = GenerationStats(0, 0, 0.0, 0.0, 0.0, "user")


class LocalBackend(QObject):
    """llama.cpp on this machine: load, unload, stream (the window), serve (the API), count, stop."""

    loading = Signal(str)  # model path
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str, str, object)  # kind, message, the ModelInfo still loaded (or None)
    unloaded = Signal()
    queue_changed = Signal()  # api_running or api_waiting changed

    def __init__(self, client: InferenceClient | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client or InferenceClient(self)
        self.api_queue_limit = 32  # API requests that may wait; more are refused with QueueFull
        self._model: ModelInfo | None = None
        self._loading = False
        self._closed = False
        self._running: LocalStream | EmbeddingJob | None = None  # sent to the inference thread, not ended
        self._window_waiting: LocalStream | None = None
        self._api_waiting: collections.deque[LocalStream | EmbeddingJob] = collections.deque()
        self._api_seconds = 5.0  # how long an API request takes, roughly (for Retry-After)
        self._queue_seen = (False, 0)
        self._streams: dict[int, LocalStream] = {}
        self._counts: dict[int, asyncio.Future] = {}
        self._embeds: dict[int, EmbeddingJob] = {}
        worker = self.client.worker
        worker.loading.connect(self._on_loading)
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.unloaded.connect(self._on_unloaded)
        # Bound methods of this QObject, so the worker's signals arrive queued in the GUI thread
        # (after InferenceClient's own handlers, connected first).
        worker.prompt_ready.connect(self._on_prompt_ready)
        worker.prompt_progress.connect(self._on_prompt_progress)
        worker.token.connect(self._on_token)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.counted.connect(self._on_counted)
        worker.described.connect(self._on_counted)
        worker.embedded.connect(self._on_embedded)

    @property
    def model(self) -> ModelInfo | None:
        return self._model

    @property
    def busy(self) -> bool:
        """A window answer runs (not asked to stop) or waits; API requests never make it busy."""
        running = self._running
        return (running is not None and not running.api and not running.stopped) or (
            self._window_waiting is not None)

    @property
    def is_loading(self) -> bool:
        return self._loading

    @property
    def api_running(self) -> bool:
        return self._running is not None and self._running.api

    @property
    def api_waiting(self) -> int:
        return len(self._api_waiting)

    def load(self, path: str, options: LoadOptions) -> None:
        """Load a model (after the answer running now); API requests end: they asked another model."""
        self._loading = True
        self._end_api_requests()
        self.client.load(path, options)

    def unload(self) -> None:
        """Stop every answer and free the model."""
        self._end_api_requests()
        self.stop()
        self.client.unload()

    def keep_kv(self, conversation_ids: set[str]) -> None:
        self.client.keep_kv(conversation_ids)

    def stream(self, messages: ChatMessages, sampling: SamplingParams, cache_key: str | None = None,
               continue_text: str = "", policy: str = OverflowPolicy.DROP_OLDEST) -> LocalStream:
        """The window's answer: sent now when the engine is free, else next (before any waiting
        API request); BackendBusy while another window answer runs or waits."""
        if self.busy:
            raise BackendBusy("an answer is still running: check `busy` before asking for another")
        call = {"messages": messages, "sampling": sampling, "cache_key": cache_key,
                "continue_text": continue_text, "policy": policy}
        stream = LocalStream(call, api=False, stop=self._stop_stream)
        if self.api_running:
            stream.push(Waiting(WAITING_FOR_API))
        self._window_waiting = stream
        self._send_next()
        return stream

    def serve(self, messages: ChatMessages, sampling: SamplingParams, *,
              prompt: str | list[int] | None = None,
              output_format: OutputFormat | None = None) -> LocalStream:
        """An API request: it runs after the window's answers and the API requests before it.

        Raises QueueFull when api_queue_limit requests already wait, EngineError (NOT_LOADED)
        without a model; asked while a model loads, it runs after the load.
        """
        self._check_room()
        call = {"messages": messages, "sampling": sampling, "cache_key": API_CACHE_KEY, "prompt": prompt,
                "output_format": output_format}
        stream = LocalStream(call, api=True, stop=self._stop_stream)
        self._api_waiting.append(stream)
        self._send_next()
        self._note_queue()
        return stream

    def _check_room(self) -> None:
        """EngineError without a model (none loading); QueueFull when the API queue is full."""
        if self._model is None and not self._loading:
            raise EngineError(NO_MODEL, kind=EngineError.NOT_LOADED)
        must_wait = self._running is not None or self._window_waiting is not None or self._api_waiting
        if must_wait and len(self._api_waiting) >= self.api_queue_limit:
            retry = round(self._api_seconds * (len(self._api_waiting) + 1))
            raise QueueFull(f"{len(self._api_waiting)} requests already wait for the model: send this one "
                            f"again in about {max(1, retry)} s.", retry_after_s=retry)

    def stop(self) -> None:
        """Stop the window's answers (running or waiting). API requests go on: the API server
        stops its own (each stream's stop()), and a model change ends them (load, unload)."""
        if self._window_waiting is not None:
            self._stop_stream(self._window_waiting)
        if self._running is not None and not self._running.api:
            self._stop_stream(self._running)

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

    async def embed(self, inputs: list[str] | list[list[int]]) -> Embeddings:
        """Embeddings of the inputs: an API request, queued like serve()'s (nothing else reaches
        the engine while they are made). Raises EngineError, QueueFull; cancelled while it waits
        (its client left), it leaves the queue."""
        self._check_room()
        job = EmbeddingJob(inputs, asyncio.get_running_loop().create_future())
        self._api_waiting.append(job)
        self._send_next()
        self._note_queue()
        try:
            answer = await job.future
        except asyncio.CancelledError:
            if job in self._api_waiting:
                self._api_waiting.remove(job)
                self._note_queue()
            raise
        if isinstance(answer, EngineError):
            raise answer
        return answer

    def close(self) -> None:
        """End the engine; what the worker sent before it ended is delivered to the streams,
        which then end (waiting ones too)."""
        self._closed = True
        self.client.shutdown()
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        waiting = [self._window_waiting, *self._api_waiting]
        for stream in [*self._streams.values(), *(s for s in waiting if s is not None)]:
            stream.end()
        self._streams.clear()
        self._running, self._window_waiting = None, None
        self._api_waiting.clear()
        for job in self._embeds.values():
            job.end()
        self._embeds.clear()
        self._note_queue()

    # -- the queue ----------------------------------------------------------------------------------

    def _send_next(self) -> None:
        """When nothing runs: send the window's waiting answer, else the oldest API request."""
        if self._running is not None or self._closed:
            return
        if self._window_waiting is not None:
            stream, self._window_waiting = self._window_waiting, None
        elif self._api_waiting:
            stream = self._api_waiting.popleft()
        else:
            return
        if isinstance(stream, EmbeddingJob):
            stream.request_id, stream.sent_at = self.client.embed(stream.inputs), time.monotonic()
            self._running = self._embeds[stream.request_id] = stream
            self._note_queue()
            return
        request = self.client.generate(**stream._call)
        if request is None:  # something sent to the client directly still runs: next time
            log.warning("the inference thread is busy with a request sent around the queue")
            if stream.api:
                self._api_waiting.appendleft(stream)
            else:
                self._window_waiting = stream
            return
        stream.request_id, stream.sent_at = request, time.monotonic()
        self._running = self._streams[request] = stream
        self._note_queue()

    def _stop_stream(self, stream: LocalStream) -> None:
        """A waiting stream leaves the queue and ends at once; a running one ends within one token."""
        if stream is self._window_waiting:
            self._window_waiting = None
            stream.push(STOPPED_WHILE_WAITING)
        elif stream in self._api_waiting:
            self._api_waiting.remove(stream)
            stream.push(STOPPED_WHILE_WAITING)
            self._note_queue()
        elif isinstance(stream, EmbeddingJob):
            return  # made in one go (bounded: MAX_EMBEDDING_TOKENS): it ends by itself
        elif stream.request_id is not None and not stream.stopped:
            stream.stopped = True
            self.client.stop(stream.request_id)

    def _end_api_requests(self) -> None:
        """A model change: waiting API requests end, the running one stops (both say why)."""
        while self._api_waiting:
            self._api_waiting.popleft().push(EngineError(MODEL_CHANGED, kind=EngineError.NOT_LOADED))
        running = self._running
        if running is not None and running.api:
            running.model_changed = True
            self._stop_stream(running)
        self._note_queue()

    def _ended(self, request: int) -> None:
        self._finished(self._streams.pop(request, None))

    def _finished(self, stream: LocalStream | EmbeddingJob | None) -> None:
        if stream is not None and stream is self._running:
            self._running = None
            if stream.api and not stream.stopped:
                self._api_seconds = 0.7 * self._api_seconds + 0.3 * (time.monotonic() - stream.sent_at)
        self._send_next()
        self._note_queue()

    def _note_queue(self) -> None:
        now = (self.api_running, self.api_waiting)
        if now != self._queue_seen:
            self._queue_seen = now
            self.queue_changed.emit()

    # -- the inference thread's signals -------------------------------------------------------------

    def _on_prompt_ready(self, request: int, tokens: int, dropped: int) -> None:
        self._push(request, PromptRead(tokens, dropped))

    def _on_prompt_progress(self, request: int, done: int, total: int) -> None:
        self._push(request, PromptProgress(done, total))

    def _on_token(self, request: int, text: str, tokens: int) -> None:
        self._push(request, Delta(text, tokens))

    def _on_finished(self, request: int, stats: GenerationStats) -> None:
        stream = self._streams.get(request)
        if stream is not None and stream.model_changed and stats.stop_reason == "user":
            self._push(request, EngineError(MODEL_CHANGED, kind=EngineError.NOT_LOADED))
        else:
            self._push(request, stats)
        self._ended(request)

    def _on_failed(self, request: int, kind: str, message: str) -> None:
        self._push(request, EngineError(message, kind=kind))
        self._ended(request)

    def _push(self, request: int, event: StreamEvent | EngineError) -> None:
        stream = self._streams.get(request)
        if stream is not None:
            stream.push(event)

    def _on_counted(self, request: int, answer: object) -> None:
        """A count (tokens) or a build description: both answer a future by their request id."""
        future = self._counts.get(request)
        if future is not None and not future.done():
            future.set_result(answer)

    def _on_embedded(self, request: int, answer: object) -> None:
        job = self._embeds.pop(request, None)
        if job is None:
            return
        if not job.future.done():
            job.future.set_result(answer)
        self._finished(job)

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
