"""Between the widgets and the inference thread: conversations in, batched text out.

Tokens arrive as queued signals from the worker; they are buffered and flushed to the view
every FLUSH_MS, so the view does work proportional to new text only, at a bounded rate.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.conversation import Conversation, Message
from app.core.engine import GenerationStats, LoadOptions, ModelInfo
from app.ui.chat_view import ChatView, message_footer
from app.ui.sampling_panel import SamplingSettings
from app.workers.inference import InferenceClient

FLUSH_MS = 30
log = logging.getLogger(__name__)


class ChatController(QObject):
    status = Signal(str)  # a short state for the status bar: "Loading model…", "Ready", …
    error = Signal(str)  # a message the user must see
    model_loading = Signal(str)  # path
    model_loaded = Signal(object)  # ModelInfo
    model_failed = Signal(str)  # message
    generating_changed = Signal(bool)
    answer_finished = Signal(object)  # GenerationStats
    conversations_changed = Signal()

    def __init__(self, view: ChatView, sampling: SamplingSettings, client: InferenceClient,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.sampling = sampling
        self.client = client
        self.model: ModelInfo | None = None
        self.conversations: list[Conversation] = [Conversation()]
        self.current = 0
        self._answer: Message | None = None
        self._answer_owner: Conversation | None = None  # the conversation being answered
        self._request: int | None = None
        self._buffer: list[str] = []
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)
        worker = client.worker
        worker.loading.connect(self.model_loading)
        worker.loading.connect(lambda path: self.status.emit("Loading model…"))
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.token.connect(self._on_token)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        sampling.changed.connect(self._on_sampling_changed)

    @property
    def conversation(self) -> Conversation:
        return self.conversations[self.current]

    @property
    def generating(self) -> bool:
        return self._request is not None

    # -- intents from the widgets ------------------------------------------------------------

    def load_model(self, path: str, options: LoadOptions = LoadOptions()) -> None:
        self.status.emit("Loading model…")
        self.client.load(path, options)

    def send(self, text: str) -> bool:
        """Add the user's message and ask for an answer. False (nothing changes) while busy."""
        if self.generating:
            return False
        conversation = self.conversation
        conversation.add_user_message(text)
        request = self.client.generate(conversation.chat_messages(), self.sampling.params)
        if request is None:
            conversation.messages.pop()
            return False
        self._request = request
        self._answer = Message("assistant", "", model=self.model.name if self.model else "")
        self._answer_owner = conversation
        conversation.messages.append(self._answer)
        self.view.begin_message("user")
        self.view.append_text(text)
        self.view.end_message()
        self.view.begin_message("assistant")
        self._flush_timer.start()
        self.status.emit("Generating…" if self.model else "Loading model… the answer follows")
        self.generating_changed.emit(True)
        self.conversations_changed.emit()
        return True

    def stop(self) -> None:
        self.client.stop()

    def new_conversation(self) -> None:
        self.stop()
        if self.conversation.messages or len(self.conversations) == 0:
            self.conversations.insert(0, Conversation(sampling=self.sampling.params))
        self.select(0)

    def select(self, index: int) -> None:
        if self.generating and index != self.current:
            self.stop()
        self.current = index
        self.sampling.set_params(self.conversation.sampling)
        self.view.show_conversation(self.conversation)
        self.conversations_changed.emit()

    def shutdown(self) -> None:
        self._flush_timer.stop()
        self.client.shutdown()

    # -- events from the inference thread -------------------------------------------------------

    def _on_loaded(self, info: ModelInfo) -> None:
        log.info("model loaded: %s (%s, context %d)", info.path, info.backend, info.n_ctx)
        self.model = info
        if self._answer is not None and not self._answer.model:
            self._answer.model = info.name
        self.model_loaded.emit(info)
        self.status.emit("Generating…" if self.generating else "Ready")

    def _on_load_failed(self, kind: str, message: str) -> None:
        log.warning("model not loaded (%s): %s", kind, message)
        self.model = None
        self.status.emit("No model")
        self.model_failed.emit(message)
        self.error.emit(message)

    def _on_token(self, request: int, text: str) -> None:
        if request == self._request:
            self._buffer.append(text)

    def _flush(self) -> None:
        if not self._buffer or self._answer is None:
            return
        chunk = "".join(self._buffer)
        self._buffer.clear()
        self._answer.text += chunk
        if self._answer_owner is self.conversation:
            self.view.append_text(chunk)

    def _on_finished(self, request: int, stats: GenerationStats) -> None:
        if request != self._request or self._answer is None:
            return
        self._flush()
        self._answer.stats = stats
        self._answer.incomplete = stats.stop_reason == "user"
        self._end_answer()
        self.status.emit("Ready")
        self.answer_finished.emit(stats)

    def _on_failed(self, request: int, kind: str, message: str) -> None:
        if request != self._request or self._answer is None:
            return
        self._flush()
        self._answer.incomplete = True
        self._end_answer()
        self.status.emit("Ready" if self.model else "No model")
        self.error.emit(message)

    def _end_answer(self) -> None:
        answer = self._answer
        assert answer is not None
        if self._answer_owner is self.conversation:
            self.view.end_message(message_footer(answer))
        self._flush_timer.stop()
        self._answer = None
        self._answer_owner = None
        self._request = None
        self.generating_changed.emit(False)

    def _on_sampling_changed(self, params) -> None:
        self.conversation.sampling = params
