"""The inference thread: one QObject worker in one QThread drives the engine's own process.

Requests reach the worker as queued signals, so they run one after another in its thread and
never two at once. The model itself runs in a child process (app/core/inference/local/engine_process.py): a
model file or chat template that makes llama.cpp abort, hang or balloon ends that process only.
Only the stop request crosses threads directly: a shared integer the engine reads between tokens;
a Stop not honoured within STOP_GRACE_S ends the process.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from app import paths
from app.core.chat.context_window import OverflowPolicy
from app.core.chat.sampling import SamplingParams
from app.core.inference.local.engine_process import STOP_GRACE_S, EngineCrashed, EngineProcess
from app.core.inference.local.engine_server import ENGINE_NICENESS
from app.core.inference.types import (
    ChatMessages,
    EngineError,
    GenerationStats,
    LoadOptions,
    ModelInfo,
    OutputFormat,
)

log = logging.getLogger(__name__)


class InferenceWorker(QObject):
    """Runs in the inference thread. Never touches a widget."""

    loading = Signal(str)  # model path
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str, str, object)  # kind, message, the ModelInfo still loaded (or None)
    unloaded = Signal()
    token = Signal(int, str, int)  # request id, text delta, how many tokens it holds
    finished = Signal(int, object)  # request id, GenerationStats
    failed = Signal(int, str, str)  # request id, kind, message
    prompt_ready = Signal(int, int, int)  # request id, prompt tokens, earlier messages not sent
    prompt_progress = Signal(int, int, int)  # request id, prompt tokens read, of total (long prompts)
    counted = Signal(int, int)  # count id, tokens (-1: no model to count with)
    described = Signal(int, object)  # request id, BuildInfo (None: the engine could not say)
    embedded = Signal(int, object)  # request id, Embeddings (or the EngineError that stopped them)

    def __init__(self, niceness: int = ENGINE_NICENESS) -> None:
        super().__init__()
        self.process = EngineProcess(paths.log_dir() / "engine.log", niceness)
        self._model: tuple[str, LoadOptions] | None = None  # the model that works, to load again
        self._loaded_in: int | None = None  # which engine process has it (EngineProcess.restarts)

    def request_stop(self, request_id: int) -> None:
        """Safe from any thread: the engine reads it after every token."""
        self.process.request_stop(request_id)

    @Slot(str, object)
    def load(self, path: str, options: LoadOptions) -> None:
        self.loading.emit(path)
        try:
            info = self.process.load(path, options)
        except EngineError as error:
            kept = self._restore_previous(path, options)
            message = error.message
            if kept is not None:
                message += f" {kept.name} is still loaded."
            self.load_failed.emit(error.kind, message, kept)
        else:
            self._model, self._loaded_in = (path, options), self.process.restarts
            self.loaded.emit(info)

    def _restore_previous(self, failed_path: str, failed_options: LoadOptions) -> ModelInfo | None:
        """A file that failed to load (or crashed the engine) must not cost the model that works:
        the engine keeps it when the file fails its checks, else it is loaded again."""
        if self._model is None or self._model == (failed_path, failed_options):
            self._model = None
            return None
        try:
            kept = self.process.info() if self.process.running else None
            return kept if kept is not None else self._load_remembered()
        except EngineError as error:
            log.warning("the previous model could not be loaded again: %s", error.message)
            return None

    def _ensure_model(self) -> None:
        """After a crash the new process has no model (whichever command started it): load the
        one that was loaded."""
        if self._model is None or (self.process.running and self._loaded_in == self.process.restarts):
            return
        self.loading.emit(self._model[0])
        try:
            info = self._load_remembered()
        except EngineError as error:
            self.load_failed.emit(error.kind, error.message, None)
        else:
            self.loaded.emit(info)

    def _load_remembered(self) -> ModelInfo:
        """Load the model that worked again (a new engine process has none); forget it if it fails."""
        assert self._model is not None
        path, options = self._model
        log.info("loading %s again", path)
        try:
            info = self.process.load(path, options)
        except EngineError:
            self._model = None
            raise
        self._loaded_in = self.process.restarts
        return info

    @Slot(object)
    def keep_kv(self, keys: set[str]) -> None:
        try:
            self.process.keep_kv(keys)
        except EngineError as error:
            log.warning("removing the KV caches of deleted conversations: %s", error.message)

    @Slot()
    def unload(self) -> None:
        self._model = None
        try:
            self.process.unload()
        except EngineError as error:
            log.warning("unloading: %s", error.message)
        self.unloaded.emit()

    @Slot(int, object)
    def count(self, count_id: int, messages: ChatMessages) -> None:
        """How many tokens a chat is, as the model reads it (for the context meter); always
        answered, with -1 when there is no model to count with."""
        tokens = None
        if self._model is not None:
            try:
                self._ensure_model()
                tokens = self.process.count(messages)
            except EngineError as error:
                log.info("counting tokens failed: %s", error.message)
        self.counted.emit(count_id, -1 if tokens is None else tokens)

    @Slot(int)
    def describe(self, request_id: int) -> None:
        """What this llama.cpp build can run on, asked of the engine's process."""
        try:
            self._ensure_model()  # a process this starts gets the model back at once
            build = self.process.build()
        except EngineError as error:
            log.warning("asking the engine about its build: %s", error.message)
            build = None
        self.described.emit(request_id, build)

    @Slot(int, object, object, object, str, str, object, object)
    def generate(self, request_id: int, messages: ChatMessages, sampling: SamplingParams,
                 cache_key: str | None = None, continue_text: str = "",
                 policy: str = OverflowPolicy.DROP_OLDEST, prompt: str | list[int] | None = None,
                 output_format: OutputFormat | None = None) -> None:
        """Always ends with `finished` or `failed` for this request: the local backend sends the
        next request only then."""
        prompt_tokens = completion_tokens = 0
        try:
            self._ensure_model()
            for event in self.process.generate(request_id, messages, sampling, cache_key, continue_text,
                                               policy, prompt=prompt, output_format=output_format):
                kind = event[0]
                if kind == "token":
                    completion_tokens += event[2]
                    self.token.emit(request_id, event[1], event[2])
                elif kind == "finished":
                    self.finished.emit(request_id, event[1])
                elif kind == "prompt_ready":
                    prompt_tokens = event[1]
                    self.prompt_ready.emit(request_id, event[1], event[2])
                elif kind == "progress":
                    self.prompt_progress.emit(request_id, event[1], event[2])
        except EngineCrashed as error:
            if error.stopped:  # ended after a Stop it did not honour: an answer stopped by the user
                self.finished.emit(request_id, GenerationStats(prompt_tokens, completion_tokens, 0.0, 0.0,
                                                               0.0, "user"))
            else:
                self.failed.emit(request_id, error.kind, error.message)
        except EngineError as error:
            self.failed.emit(request_id, error.kind, error.message)
        except Exception as error:  # a bug here must not leave the queue waiting for ever
            log.exception("generating failed")
            self.failed.emit(request_id, EngineError.GENERATION_FAILED, f"The answer failed: {error}")

    @Slot(int, object)
    def embed(self, request_id: int, inputs: list[str] | list[list[int]]) -> None:
        """Always answered, with the vectors or the EngineError that stopped them."""
        try:
            self._ensure_model()
            answer: object = self.process.embed(inputs)
        except EngineError as error:
            answer = error
        except Exception as error:  # a bug here must not leave the caller waiting for ever
            log.exception("embedding failed")
            answer = EngineError(f"The embeddings failed: {error}", kind=EngineError.GENERATION_FAILED)
        self.embedded.emit(request_id, answer)

    @Slot()
    def shutdown(self) -> None:
        self.process.close()
        QThread.currentThread().quit()


class InferenceClient(QObject):
    """The GUI thread's handle on the inference thread: starts it, sends it work, stops it."""

    _load = Signal(str, object)
    _generate = Signal(int, object, object, object, str, str, object, object)
    _embed = Signal(int, object)
    _count = Signal(int, object)
    _describe = Signal(int)
    _unload = Signal()
    _keep_kv = Signal(object)
    _shutdown = Signal()

    def __init__(self, parent: QObject | None = None, niceness: int = ENGINE_NICENESS) -> None:
        """niceness: the engine's priority below the window's (0 without a window: `serve`)."""
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inference")
        self.worker = InferenceWorker(niceness)
        self.worker.moveToThread(self._thread)
        self._load.connect(self.worker.load)
        self._generate.connect(self.worker.generate)
        self._count.connect(self.worker.count)
        self._describe.connect(self.worker.describe)
        self._embed.connect(self.worker.embed)
        self._unload.connect(self.worker.unload)
        self._keep_kv.connect(self.worker.keep_kv)
        self._shutdown.connect(self.worker.shutdown)
        self._thread.finished.connect(self.worker.deleteLater)
        self.worker.finished.connect(self._on_done)
        self.worker.failed.connect(self._on_done)
        self._last_id = 0
        self._last_count = 0
        self._unfinished: set[int] = set()  # requests sent whose answer has not ended
        self._stopped: set[int] = set()  # of those, the ones asked to stop
        self._thread.start()

    @property
    def busy(self) -> bool:
        """An answer runs that was not asked to stop (a stopped one ends within one token, and
        a new request simply runs after it)."""
        return bool(self._unfinished - self._stopped)

    def load(self, path: str, options: LoadOptions = LoadOptions()) -> None:
        self._load.emit(str(path), options)

    def generate(self, messages: ChatMessages, sampling: SamplingParams,
                 cache_key: str | None = None, continue_text: str = "",
                 policy: str = OverflowPolicy.DROP_OLDEST, prompt: str | list[int] | None = None,
                 output_format: OutputFormat | None = None) -> int | None:
        """Queue an answer; returns its request id, or None (refused) while one still runs.

        cache_key names the conversation, whose KV cache the engine keeps apart from others'.
        continue_text: the start of the answer, already written, for the model to carry on.
        policy: what to leave out when the chat does not fit the context (an OverflowPolicy).
        prompt: the whole prompt as text or token ids, read without the chat template (an API
        completion); output_format: the shape the answer must have (JSON), enforced while sampling.
        """
        if self.busy:
            return None
        self._last_id += 1
        self._unfinished.add(self._last_id)
        self._generate.emit(self._last_id, list(messages), sampling, cache_key, continue_text, str(policy),
                            prompt, output_format)
        return self._last_id

    def unload(self) -> None:
        """Free the model (after any answer still running: requests run in order)."""
        self.stop()
        self._unload.emit()

    def keep_kv(self, conversation_ids: set[str]) -> None:
        """Delete the KV caches (snapshots of chat text) of every conversation but these."""
        self._keep_kv.emit(set(conversation_ids))

    def count(self, messages: ChatMessages) -> int:
        """Queue a token count of a chat; `worker.counted` answers with the id returned."""
        self._last_count += 1
        self._count.emit(self._last_count, list(messages))
        return self._last_count

    def describe(self) -> int:
        """Queue a question about the llama.cpp build; `worker.described` answers with this id."""
        self._last_count += 1
        self._describe.emit(self._last_count)
        return self._last_count

    def embed(self, inputs: list[str] | list[list[int]]) -> int:
        """Queue embeddings of the inputs (after any answer still running); `worker.embedded`
        answers with the id returned."""
        self._last_count += 1
        self._embed.emit(self._last_count, list(inputs))
        return self._last_count

    def stop(self, request_id: int | None = None) -> None:
        """Stop the running answer (or only this request) within one token; if the engine is stuck
        (in C code), its process is ended after STOP_GRACE_S and the answer so far is kept."""
        for running in self._unfinished - self._stopped:
            if request_id is not None and running != request_id:
                continue
            self._stopped.add(running)
            self.worker.request_stop(running)

            def end_if_stuck(request: int = running) -> None:
                if request in self._unfinished:
                    self.worker.process.kill("stop")

            QTimer.singleShot(int(STOP_GRACE_S * 1000), self, end_if_stuck)

    def _on_done(self, request_id: int, *_: object) -> None:
        self._unfinished.discard(request_id)
        self._stopped.discard(request_id)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop any answer, free the model and end the thread; blocks until it has ended."""
        if not self._thread.isRunning():
            return
        self.worker.request_stop(self._last_id)
        self._shutdown.emit()
        if not self._thread.wait(timeout_ms):
            # A load in progress or a request stuck in llama.cpp: end the engine's process, after
            # which the worker takes the shutdown request and its thread ends.
            log.warning("the engine is still busy after %d ms; ending its process", timeout_ms)
            self.worker.process.kill("shutdown")
            self._thread.wait()
