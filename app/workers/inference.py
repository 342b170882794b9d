"""The inference thread: one QObject worker in one QThread owns the Engine.

Requests reach the worker as queued signals, so they run one after another in its thread and
never two at once. Only the stop request crosses threads directly: it is a plain integer the
generation loop reads between tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app import paths
from app.core.context_window import ContextFullError, OverflowPolicy, answer_reserve, fit_messages
from app.core.engine_types import EngineError, GenerationStats, LoadOptions, Message
from app.core.sampling import SamplingParams

log = logging.getLogger(__name__)


class InferenceWorker(QObject):
    """Runs in the inference thread. Never touches a widget."""

    loading = Signal(str)  # model path
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str, str)  # kind, message
    unloaded = Signal()
    token = Signal(int, str)  # request id, text delta
    finished = Signal(int, object)  # request id, GenerationStats
    failed = Signal(int, str, str)  # request id, kind, message
    prompt_ready = Signal(int, int, int)  # request id, prompt tokens, earlier messages not sent
    counted = Signal(int, int)  # count id, tokens

    def __init__(self) -> None:
        super().__init__()
        self._engine_instance = None  # created in this thread at the first request
        self._stop_upto = 0  # requests with an id up to this one are to stop

    def request_stop(self, request_id: int) -> None:
        """Safe from any thread: the generation loop reads it after every token."""
        self._stop_upto = max(self._stop_upto, request_id)

    @property
    def _engine(self):
        """The Engine, and with it llama.cpp, loads on first use: the window opens sooner."""
        if self._engine_instance is None:
            from app.core.engine import Engine
            from app.core.kv_cache import KVCacheStore

            self._engine_instance = Engine(KVCacheStore(paths.cache_dir() / "kv"))
        return self._engine_instance

    def _stopped(self, request_id: int) -> bool:
        return request_id <= self._stop_upto

    @Slot(str, object)
    def load(self, path: str, options: LoadOptions) -> None:
        self.loading.emit(path)
        try:
            info = self._engine.load(path, options)
        except EngineError as error:
            self.load_failed.emit(error.kind, error.message)
        except Exception as error:  # noqa: BLE001 - the user must hear of any failure
            log.exception("loading %s failed", path)
            self.load_failed.emit(EngineError.LOAD_FAILED, f"Loading the model failed: {error}")
        else:
            self.loaded.emit(info)

    @Slot()
    def unload(self) -> None:
        if self._engine_instance is not None:
            self._engine_instance.unload()
        self.unloaded.emit()

    @Slot(int, object)
    def count(self, count_id: int, messages: Sequence[Message]) -> None:
        """How many tokens a chat is, as the model reads it (for the context meter)."""
        engine = self._engine
        if engine.is_loaded:
            self.counted.emit(count_id, len(engine.tokenize_chat(messages)))

    def _fit(self, request_id: int, messages: Sequence[Message], sampling: SamplingParams,
             continue_text: str, policy: str) -> list[Message]:
        """The part of the chat that fits the context, by the user's overflow policy."""
        engine = self._engine
        if engine.info is None:
            return list(messages)  # stream() says that no model is loaded
        n_ctx = engine.info.n_ctx
        reserve = answer_reserve(n_ctx, sampling.max_tokens)
        def count(chat: list[Message]) -> int:
            return len(engine.tokenize_chat(chat, continue_text))

        fit = fit_messages(list(messages), n_ctx, reserve, count, OverflowPolicy(policy))
        self.prompt_ready.emit(request_id, fit.prompt_tokens, fit.dropped)
        return fit.messages

    @Slot(int, object, object, object, str, str)
    def generate(self, request_id: int, messages: Sequence[Message], sampling: SamplingParams,
                 cache_key: str | None = None, continue_text: str = "",
                 policy: str = OverflowPolicy.DROP_OLDEST) -> None:
        if self._stopped(request_id):  # stopped while it waited in the queue
            self.finished.emit(request_id, GenerationStats(0, 0, 0.0, 0.0, 0.0, "user"))
            return
        try:
            messages = self._fit(request_id, messages, sampling, continue_text, policy)
            stream = self._engine.stream(messages, sampling, lambda: self._stopped(request_id), cache_key,
                                         continue_text=continue_text)
            for event in stream:
                if isinstance(event, str):
                    self.token.emit(request_id, event)
                else:
                    self.finished.emit(request_id, event)
        except EngineError as error:
            self.failed.emit(request_id, error.kind, error.message)
        except ContextFullError as error:
            self.failed.emit(request_id, EngineError.CONTEXT_TOO_SMALL, error.message)
        except Exception as error:  # noqa: BLE001
            log.exception("generation failed")
            self.failed.emit(request_id, EngineError.GENERATION_FAILED, f"Generation failed: {error}")
        self._engine.save_kv()  # after the answer: disk writes never delay a first token

    @Slot()
    def shutdown(self) -> None:
        if self._engine_instance is not None:
            self._engine_instance.unload()
        QThread.currentThread().quit()


class InferenceClient(QObject):
    """The GUI thread's handle on the inference thread: starts it, sends it work, stops it."""

    _load = Signal(str, object)
    _generate = Signal(int, object, object, object, str, str)
    _count = Signal(int, object)
    _unload = Signal()
    _shutdown = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inference")
        self.worker = InferenceWorker()
        self.worker.moveToThread(self._thread)
        self._load.connect(self.worker.load)
        self._generate.connect(self.worker.generate)
        self._count.connect(self.worker.count)
        self._unload.connect(self.worker.unload)
        self._shutdown.connect(self.worker.shutdown)
        self._thread.finished.connect(self.worker.deleteLater)
        self.worker.finished.connect(self._on_done)
        self.worker.failed.connect(self._on_done)
        self._last_id = 0
        self._last_count = 0
        self._running: int | None = None
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._running is not None

    def load(self, path: str, options: LoadOptions = LoadOptions()) -> None:
        self._load.emit(str(path), options)

    def generate(self, messages: Sequence[Message], sampling: SamplingParams,
                 cache_key: str | None = None, continue_text: str = "",
                 policy: str = OverflowPolicy.DROP_OLDEST) -> int | None:
        """Queue an answer; returns its request id, or None (refused) while one still runs.

        cache_key names the conversation, whose KV cache the engine keeps apart from others'.
        continue_text: the start of the answer, already written, for the model to carry on.
        policy: what to leave out when the chat does not fit the context (an OverflowPolicy).
        """
        if self._running is not None:
            return None
        self._last_id += 1
        self._running = self._last_id
        self._generate.emit(self._last_id, list(messages), sampling, cache_key, continue_text, str(policy))
        return self._last_id

    def unload(self) -> None:
        """Free the model (after any answer still running: requests run in order)."""
        self.stop()
        self._unload.emit()

    def count(self, messages: Sequence[Message]) -> int:
        """Queue a token count of a chat; `worker.counted` answers with the id returned."""
        self._last_count += 1
        self._count.emit(self._last_count, list(messages))
        return self._last_count

    def stop(self) -> None:
        if self._running is not None:
            self.worker.request_stop(self._running)

    def _on_done(self, request_id: int, *_: object) -> None:
        if request_id == self._running:
            self._running = None

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop any answer, free the model and end the thread; blocks until it has ended."""
        if not self._thread.isRunning():
            return
        self.worker.request_stop(self._last_id)
        self._shutdown.emit()
        if not self._thread.wait(timeout_ms):
            # Only a model load in progress takes this long; llama.cpp cannot be interrupted
            # mid-load, and destroying a running QThread crashes, so wait for it.
            log.warning("the inference thread is still busy; waiting for it to end")
            self._thread.wait()
