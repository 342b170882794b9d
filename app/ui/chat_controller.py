"""Between the widgets, the store and the inference thread.

The user's message is committed before generation starts; the answer is saved while it
streams (AnswerRecorder) and completed at the end. Tokens arrive as queued signals from the
worker; they are buffered and flushed to the view and the recorder every FLUSH_MS, so the
view does work proportional to new text only, at a bounded rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal

from app.core.context_window import OverflowPolicy
from app.core.conversation import Conversation, Message
from app.core.engine_types import EngineError, GenerationStats, LoadOptions, ModelInfo
from app.core.store import AnswerRecorder, ConversationStore, ConversationSummary
from app.ui.answer_records import AnswerRecords
from app.ui.chat_view import ChatView
from app.ui.sampling_panel import SamplingSettings
from app.workers.inference import InferenceClient

FLUSH_MS = 30
log = logging.getLogger(__name__)


@dataclass
class _Undo:
    """What a request changed before the model read its prompt: taken back if it is refused."""

    created: list[Message]  # the question and/or answer it added
    previous: Message | None  # the version that was current before a new one
    new_conversation: bool  # the conversation was saved by this request
    updated: float
    title: str
    draft: str  # the user's text, for the composer


class ChatController(QObject):
    status = Signal(str)  # a short state for the status bar: "Loading model…", "Ready", …
    error = Signal(str)  # a message the user must see
    model_loading = Signal(str)  # path
    model_loaded = Signal(object)  # ModelInfo
    model_failed = Signal(str)  # message
    model_unloaded = Signal()
    generating_changed = Signal(bool)
    answer_finished = Signal(object)  # GenerationStats
    conversations_changed = Signal()  # the list (titles, order, membership) changed
    conversation_shown = Signal(str)  # id of the conversation now in the view
    draft_returned = Signal(str)  # a question that was refused, back for the composer
    context_used = Signal(int, int)  # tokens the chat (with the draft or the growing answer) uses, n_ctx

    def __init__(self, view: ChatView, sampling: SamplingSettings, client: InferenceClient,
                 store: ConversationStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.sampling = sampling
        self.client = client
        self.store = store
        self.model: ModelInfo | None = None
        self.load_options = LoadOptions()  # what the model was (or is being) loaded with
        self.overflow_policy = OverflowPolicy.DROP_OLDEST
        self._prompt_tokens = 0  # of the answer being written
        self._streamed_tokens = 0
        self._dropped = 0  # earlier messages left out of the answer being written
        self._count_id = 0  # the context count whose answer is awaited
        self._undo: _Undo | None = None  # what the running request added, if it must be taken back
        self.records = AnswerRecords(store)
        self.summaries: list[ConversationSummary] = store.list_conversations()
        self.conversation = Conversation(sampling=sampling.params)  # unsaved until first message
        self._answer: Message | None = None
        self._answer_owner: Conversation | None = None  # the conversation being answered
        self._recorder: AnswerRecorder | None = None
        self._request: int | None = None
        self._request_sampling = sampling.params
        self._buffer: list[str] = []
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)
        worker = client.worker
        worker.loading.connect(self._on_loading)
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.unloaded.connect(self._on_unloaded)
        worker.token.connect(self._on_token)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.prompt_ready.connect(self._on_prompt_ready)
        worker.counted.connect(self._on_counted)
        sampling.changed.connect(self._on_sampling_changed)

    @property
    def generating(self) -> bool:
        return self._request is not None

    # -- intents from the widgets ------------------------------------------------------------

    def load_model(self, path: str, options: LoadOptions | None = None) -> None:
        if options is not None:
            self.load_options = options
        self.status.emit("Loading model…")
        self.client.load(path, self.load_options)

    def unload_model(self) -> None:
        self.client.unload()

    def reload_model(self, options: LoadOptions) -> bool:
        """Load the current model again with other load settings; False while busy or without one."""
        if self.generating or self.model is None:
            return False
        self.load_model(self.model.path, options)
        return True

    def set_system_prompt(self, text: str) -> None:
        """The conversation's instructions, saved with it (a new chat keeps them until its first message)."""
        self.conversation.system_prompt = text
        if any(s.id == self.conversation.id for s in self.summaries):
            self.store.save_conversation(self.conversation)

    def send(self, text: str) -> bool:
        """Save the user's message, then ask for an answer. False (nothing changes) while busy."""
        if self.generating:
            return False
        conversation = self.conversation
        chat = conversation.chat_messages() + [{"role": "user", "content": text}]
        request = self._ask(chat)
        if request is None:
            return False
        undo = self._undo_point(draft=text)
        question = conversation.append("user", text)
        undo.created.append(question)
        self.store.add_message(conversation, question)  # committed before the first token
        self.view.set_conversation(conversation)
        self.view.begin_message("user", question.id)
        self.view.append_text(text)
        self.view.end_message(question)
        self._begin_answer(request, Message("assistant", "", parent_id=question.id), undo=undo)
        return True

    def regenerate(self, message_id: str) -> bool:
        """A new version of an answer; the old one stays reachable through the version arrows."""
        conversation = self.conversation
        old = conversation.find(message_id)
        if self.generating or old is None or old.role != "assistant":
            return False
        chat = conversation.chat_messages(conversation.thread_before(old))
        request = self._ask(chat)
        if request is None:
            return False
        undo = self._undo_point(previous=old)
        answer = conversation.add_version(old, "assistant", "")
        self._redraw_before(answer)
        self._begin_answer(request, answer, new_version=True, undo=undo)
        return True

    def edit(self, message_id: str, text: str) -> bool:
        """Resend a question as a new version: the later messages of the old one stay in its branch."""
        conversation = self.conversation
        old = conversation.find(message_id)
        if self.generating or old is None or old.role != "user" or not text.strip():
            return False
        thread = conversation.thread_before(old)
        chat = conversation.chat_messages(thread) + [{"role": "user", "content": text}]
        request = self._ask(chat)
        if request is None:
            return False
        undo = self._undo_point(previous=old, draft=text)
        question = conversation.add_version(old, "user", text)
        undo.created.append(question)
        with self.store.transaction():
            self.store.add_message(conversation, question)
            self.store.set_current_version(question)
        self.view.show_conversation(conversation)
        self._begin_answer(request, Message("assistant", "", parent_id=question.id), undo=undo)
        return True

    def continue_answer(self, message_id: str) -> bool:
        """Carry on an answer that was stopped or cut off, in the same message."""
        conversation = self.conversation
        answer = conversation.find(message_id)
        thread = conversation.thread()
        if self.generating or answer is None or not thread or thread[-1] is not answer:
            return False
        chat = conversation.chat_messages(thread[:-1])
        request = self._ask(chat, continue_text=answer.text)
        if request is None:
            return False
        self.view.show_conversation(conversation, open_last=True)
        self._begin_answer(request, answer, resumed=True)
        return True

    def _ask(self, chat: list[dict[str, str]], continue_text: str = "") -> int | None:
        return self.client.generate(chat, self.sampling.params, self.conversation.id,
                                    continue_text=continue_text, policy=self.overflow_policy)

    def count_context(self, draft: str = "") -> None:
        """Ask how many tokens the conversation and the draft take; context_used answers."""
        if self.model is None or self.generating:
            return
        chat = self.conversation.chat_messages()
        if draft.strip():
            chat.append({"role": "user", "content": draft})
        self._count_id = self.client.count(chat)

    def show_version(self, message_id: str, step: int) -> None:
        """Switch to the previous (-1) or next (+1) version of a turn."""
        conversation = self.conversation
        message = conversation.find(message_id)
        if self.generating or message is None:
            return
        versions = conversation.versions(message)
        chosen = versions[(versions.index(message) + step) % len(versions)]
        conversation.make_current(chosen)
        self.store.set_current_version(chosen)
        self.view.show_conversation(conversation)
        self.view.scroll_to_message(chosen.id)

    def delete_message(self, message_id: str) -> None:
        """Remove a message and what follows from it; a sibling version takes its place."""
        conversation = self.conversation
        message = conversation.find(message_id)
        if self.generating or message is None:
            return
        self._remove(conversation, message, {m.id for m in conversation.subtree(message)})

    def _remove(self, conversation: Conversation, message: Message, ids: set[str]) -> None:
        """Remove messages (`message` among them) in memory and in the store; if `message`'s turn
        has other versions, one of them becomes the current one."""
        conversation.messages = [m for m in conversation.messages if m.id not in ids]
        siblings = conversation.versions(message)
        if siblings and not any(m.current for m in siblings):
            conversation.make_current(siblings[-1])
        with self.store.transaction():
            self.store.delete_messages(ids)
            if siblings:
                self.store.set_current_version(next(m for m in siblings if m.current))
        if conversation is self.conversation:
            self.view.show_conversation(conversation)
        self.reload_list()

    def message_text(self, message_id: str) -> str:
        message = self.conversation.find(message_id)
        return message.text if message else ""

    def stop(self) -> None:
        self.client.stop()

    def new_conversation(self) -> None:
        """Show an empty conversation; it is saved with its first message."""
        if self.generating:
            self.stop()
        if not self.conversation.messages:
            return
        self.conversation = Conversation(sampling=self.sampling.params,
                                         system_prompt=self.conversation.system_prompt)
        self._show(self.conversation)

    def open_conversation(self, conversation_id: str, message_id: str | None = None) -> None:
        if conversation_id != self.conversation.id:
            if self.generating:
                self.stop()
            if conversation_id == getattr(self._answer_owner, "id", None):
                conversation = self._answer_owner  # still streaming: keep the live object
            else:
                conversation = self.store.load(conversation_id)
            self.conversation = conversation
            self._show(conversation)
        if message_id:
            self.view.scroll_to_message(message_id)

    def rename(self, conversation_id: str, title: str) -> None:
        self.store.rename(conversation_id, title)
        if conversation_id == self.conversation.id:
            self.conversation.title = " ".join(title.split())
            self.conversation.titled_by_user = True
        self.reload_list()

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        self.store.set_pinned(conversation_id, pinned)
        if conversation_id == self.conversation.id:
            self.conversation.pinned = pinned
        self.reload_list()

    def duplicate(self, conversation_id: str) -> None:
        self.open_conversation(self.store.duplicate(conversation_id))
        self.reload_list()

    def delete(self, conversation_id: str) -> None:
        """Hidden at once; undo_delete brings it back until purge_deleted."""
        if conversation_id == getattr(self._answer_owner, "id", None):
            self.stop()
        self.store.delete(conversation_id)
        if conversation_id == self.conversation.id:
            self.conversation = Conversation(sampling=self.sampling.params)
            self._show(self.conversation)
        self.reload_list()

    def undo_delete(self, conversation_id: str) -> None:
        self.store.undelete(conversation_id)
        self.reload_list()
        self.open_conversation(conversation_id)

    def purge_deleted(self) -> None:
        self.store.purge_deleted()

    def shutdown(self) -> None:
        self._flush_timer.stop()
        self.client.shutdown()
        # Deliver what the worker sent before it ended: the last tokens and "finished".
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        self._flush()
        if self._recorder is not None:  # still streaming: keep what arrived, marked incomplete
            self._recorder.finish(None, incomplete=True)
        self.store.purge_deleted()

    # -- events from the inference thread -------------------------------------------------------

    def _on_loading(self, path: str) -> None:
        self.model_loading.emit(path)
        self.status.emit("Loading model…")

    def _on_loaded(self, info: ModelInfo) -> None:
        log.info("model loaded: %s (%s, context %d)", info.path, info.backend, info.n_ctx)
        self.model = info
        self.model_loaded.emit(info)
        self.status.emit("Generating…" if self.generating else "Ready")
        self.records.hash_model(Path(info.path))

    def _on_unloaded(self) -> None:
        self.model = None
        self.status.emit("No model")
        self.model_unloaded.emit()

    def _on_load_failed(self, kind: str, message: str) -> None:
        log.warning("model not loaded (%s): %s", kind, message)
        self.model = None
        self.status.emit("No model")
        self.model_failed.emit(message)
        self.error.emit(message)

    def _on_token(self, request: int, text: str) -> None:
        if request == self._request:
            self._buffer.append(text)
            self._streamed_tokens += 1

    def _on_prompt_ready(self, request: int, prompt_tokens: int, dropped: int) -> None:
        if request != self._request:
            return
        self._prompt_tokens, self._dropped = prompt_tokens, dropped
        if dropped and self._answer_owner is self.conversation and self._answer is not None:
            self.view.insert_notice_before(self._answer.id, dropped_notice(dropped, self.overflow_policy))
        self._report_context()

    def _on_counted(self, count_id: int, tokens: int) -> None:
        if count_id == self._count_id and self.model is not None and not self.generating:
            self.context_used.emit(tokens, self.model.n_ctx)

    def _report_context(self) -> None:
        if self.model is not None:
            self.context_used.emit(self._prompt_tokens + self._streamed_tokens, self.model.n_ctx)

    def _flush(self) -> None:
        if not self._buffer or self._recorder is None:
            return
        chunk = "".join(self._buffer)
        self._buffer.clear()
        self._recorder.feed(chunk)
        if self._answer_owner is self.conversation:
            self.view.append_text(chunk)
            self._report_context()

    def _on_finished(self, request: int, stats: GenerationStats) -> None:
        if request != self._request or self._recorder is None:
            return
        self._flush()
        record = self.records.record(self.model, self._request_sampling, stats, self._dropped)
        self._recorder.finish(record, incomplete=stats.stop_reason == "user")
        self._prompt_tokens, self._streamed_tokens = stats.prompt_tokens, stats.completion_tokens
        self._report_context()
        self._end_answer()
        self.status.emit("Ready")
        self.answer_finished.emit(stats)

    def _on_failed(self, request: int, kind: str, message: str) -> None:
        if request != self._request or self._recorder is None:
            return
        self._flush()
        self._recorder.finish(None, incomplete=True)
        refused = kind == EngineError.CONTEXT_TOO_SMALL and self._undo is not None
        undo, owner = self._undo, self._answer_owner
        self._end_answer()
        if refused:
            self._take_back(owner, undo)
        self.status.emit("Ready" if self.model else "No model")
        self.error.emit(message)

    def _undo_point(self, previous: Message | None = None, draft: str = "") -> _Undo:
        c = self.conversation
        return _Undo([], previous, not any(s.id == c.id for s in self.summaries), c.updated, c.title, draft)

    def _take_back(self, conversation: Conversation, undo: _Undo) -> None:
        """A request refused before the model read it changes nothing: what it added goes, the
        version shown before comes back, and the user's text returns to the composer."""
        ids = {m.id for m in undo.created}
        conversation.messages = [m for m in conversation.messages if m.id not in ids]
        if undo.previous is not None:
            conversation.make_current(undo.previous)
        conversation.updated, conversation.title = undo.updated, undo.title
        with self.store.transaction():
            self.store.delete_messages(ids)
            if undo.new_conversation:
                self.store.forget(conversation.id)
            else:
                if undo.previous is not None:
                    self.store.set_current_version(undo.previous)
                self.store.save_conversation(conversation)
        if conversation is self.conversation:
            self.view.show_conversation(conversation)
        if undo.draft:
            self.draft_returned.emit(undo.draft)
        self.reload_list()

    def _end_answer(self) -> None:
        answer = self._answer
        assert answer is not None
        if self._answer_owner is self.conversation:
            self.view.end_message(answer)
        self._flush_timer.stop()
        self._answer = self._answer_owner = self._recorder = self._request = self._undo = None
        self.generating_changed.emit(False)
        self.reload_list()

    # -- helpers ----------------------------------------------------------------------------------

    def _begin_answer(self, request: int, answer: Message, new_version: bool = False,
                      resumed: bool = False, undo: _Undo | None = None) -> None:
        conversation = self.conversation
        self._undo = undo
        if undo is not None and not resumed:
            undo.created.append(answer)
        if self.model:
            conversation.model = Path(self.model.path).name
        self._request = request
        self._request_sampling = self.sampling.params
        self._streamed_tokens = self._dropped = 0
        self._answer = answer
        self._answer_owner = conversation
        if not resumed and answer not in conversation.messages:
            conversation.messages.append(answer)
        self._recorder = AnswerRecorder(self.store, conversation, answer, resumed=resumed)
        if new_version:
            self.store.set_current_version(answer)
        if not resumed:
            self.view.set_conversation(conversation)
            self.view.begin_message("assistant", answer.id)
        self._flush_timer.start()
        self.status.emit("Generating…" if self.model else "Loading model… the answer follows")
        self.generating_changed.emit(True)
        self.reload_list()

    def _redraw_before(self, message: Message) -> None:
        """Show the conversation up to the turn that is about to be answered again."""
        conversation = self.conversation
        shown = Conversation(**{**conversation.__dict__,
                                "messages": conversation.thread_before(message)})
        self.view.show_conversation(shown)
        self.view.set_conversation(conversation)

    def _show(self, conversation: Conversation) -> None:
        self.sampling.set_params(conversation.sampling)
        self.view.show_conversation(conversation)
        self.conversation_shown.emit(conversation.id)

    def reload_list(self) -> None:
        self.summaries = self.store.list_conversations()
        self.conversations_changed.emit()

    def _on_sampling_changed(self, params) -> None:
        self.conversation.sampling = params
        if any(s.id == self.conversation.id for s in self.summaries):
            self.store.save_conversation(self.conversation)


def dropped_notice(dropped: int, policy: str) -> str:
    where = "from the middle" if policy == OverflowPolicy.KEEP_FIRST_LAST else "from the start"
    many = f"{dropped} earlier messages {where} of this chat were" if dropped != 1 else \
        f"1 earlier message {where} of this chat was"
    return f"✂ The context is full: {many} not sent to the model for this answer."

