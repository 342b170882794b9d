"""Between the widgets, the store and the inference thread.

The user's message and the empty answer are committed before the model is asked; the answer
is saved while it streams (AnswerRecorder, also on the flush timer, so a stall loses nothing
shown) and completed at the end. Tokens arrive as queued signals from the worker; they are
buffered and flushed to the view and the recorder every FLUSH_MS, so the view does work
proportional to new text only, at a bounded rate.

A store write that fails (disk full, database locked, read-only or damaged) changes nothing in
memory either: the change is rolled back, a running answer stops and keeps what was saved, the
user's text stays in the composer, and the error banner says what happened and what to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal

from app.core.context_window import OverflowPolicy
from app.core.conversation import Conversation, Message
from app.core.engine_types import EngineError, GenerationStats, LoadOptions, ModelInfo
from app.core.store import AnswerRecorder, ConversationStore, ConversationSummary, StoreError
from app.ui.answer_records import AnswerRecords
from app.ui.chat_view import ChatView
from app.ui.sampling_panel import SamplingSettings
from app.workers.inference import InferenceClient

FLUSH_MS = 50  # 20 updates a second: each one costs the GUI thread CPU that llama.cpp competes for
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
        self.load_options = LoadOptions()  # what the model was loaded with
        self._requested_options = self.load_options
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
        worker.prompt_progress.connect(self._on_prompt_progress)
        worker.counted.connect(self._on_counted)
        sampling.changed.connect(self._on_sampling_changed)
        self._keep_only_live_kv()  # snapshots of chats deleted since: gone, with their text

    @property
    def generating(self) -> bool:
        return self._request is not None

    # -- intents from the widgets ------------------------------------------------------------

    def load_model(self, path: str, options: LoadOptions | None = None) -> None:
        self._requested_options = options or self.load_options  # load_options once it has loaded
        self.status.emit("Loading model…")
        self.client.load(path, self._requested_options)

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
        before, self.conversation.system_prompt = self.conversation.system_prompt, text
        if not self._save_fields("The system prompt"):
            self.conversation.system_prompt = before

    def send(self, text: str) -> bool:
        """Save the user's message, then ask for an answer. False (nothing changes) while busy."""
        if self.generating or self.client.busy:
            return False
        conversation = self.conversation
        chat = conversation.chat_messages() + [{"role": "user", "content": text}]
        undo = self._undo_point(draft=text)
        question = conversation.append("user", text)
        undo.created.append(question)
        answer = Message("assistant", "", parent_id=question.id)
        if not self._save_request(conversation, undo, answer, lambda: self.store.add_message(conversation,
                                                                                           question)):
            return False
        self.view.set_conversation(conversation)
        self.view.begin_message("user", question.id)
        self.view.append_text(text)
        self.view.end_message(question)
        return self._begin_answer(self._ask(chat), answer, undo=undo)

    def regenerate(self, message_id: str) -> bool:
        """A new version of an answer; the old one stays reachable through the version arrows."""
        conversation = self.conversation
        old = conversation.find(message_id)
        if self.generating or self.client.busy or old is None or old.role != "assistant":
            return False
        chat = conversation.chat_messages(conversation.thread_before(old))
        undo = self._undo_point(previous=old)
        answer = conversation.add_version(old, "assistant", "")
        if not self._save_request(conversation, undo, answer, new_version=True):
            return False
        self._redraw_before(answer)
        return self._begin_answer(self._ask(chat), answer, undo=undo)

    def edit(self, message_id: str, text: str) -> bool:
        """Resend a question as a new version: the later messages of the old one stay in its branch."""
        conversation = self.conversation
        old = conversation.find(message_id)
        if self.generating or self.client.busy or old is None or old.role != "user" or not text.strip():
            return False
        thread = conversation.thread_before(old)
        chat = conversation.chat_messages(thread) + [{"role": "user", "content": text}]
        undo = self._undo_point(previous=old, draft=text)
        question = conversation.add_version(old, "user", text)
        undo.created.append(question)
        answer = Message("assistant", "", parent_id=question.id)

        def save_question() -> None:
            self.store.add_message(conversation, question)
            self.store.set_current_version(question)

        if not self._save_request(conversation, undo, answer, save_question):
            return False
        self.view.show_conversation(conversation)
        return self._begin_answer(self._ask(chat), answer, undo=undo)

    def continue_answer(self, message_id: str) -> bool:
        """Carry on an answer that was stopped or cut off, in the same message."""
        conversation = self.conversation
        answer = conversation.find(message_id)
        thread = conversation.thread()
        if self.generating or self.client.busy or answer is None or not thread or thread[-1] is not answer:
            return False
        chat = conversation.chat_messages(thread[:-1])
        if not self._save_request(conversation, None, answer, resumed=True):
            return False
        self.view.show_conversation(conversation, open_last=True)
        return self._begin_answer(self._ask(chat, continue_text=answer.text), answer, resumed=True)

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
        if not self._write("The version shown", lambda: self.store.set_current_version(chosen)):
            return
        conversation.make_current(chosen)
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
        siblings = [m for m in conversation.versions(message) if m.id not in ids]
        successor = next((m for m in siblings if m.current), siblings[-1] if siblings else None)

        def remove() -> None:
            with self.store.transaction():
                self.store.delete_messages(ids)
                if successor is not None:
                    self.store.set_current_version(successor)

        if not self._write("The deletion", remove):
            return
        conversation.messages = [m for m in conversation.messages if m.id not in ids]
        if successor is not None:
            conversation.make_current(successor)
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
                try:
                    conversation = self.store.load(conversation_id)
                except StoreError as error:
                    self.error.emit(f"The conversation could not be opened. {error.message}")
                    return
            self.conversation = conversation
            self._show(conversation)
        if message_id:
            self.view.scroll_to_message(message_id)

    def rename(self, conversation_id: str, title: str) -> None:
        if not self._write("The new title", lambda: self.store.rename(conversation_id, title)):
            return
        if conversation_id == self.conversation.id:
            self.conversation.title = " ".join(title.split())
            self.conversation.titled_by_user = True
        self.reload_list()

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        if not self._write("The pin", lambda: self.store.set_pinned(conversation_id, pinned)):
            return
        if conversation_id == self.conversation.id:
            self.conversation.pinned = pinned
        self.reload_list()

    def duplicate(self, conversation_id: str) -> None:
        copy: list[str] = []
        if not self._write("The copy", lambda: copy.append(self.store.duplicate(conversation_id))):
            return
        self.open_conversation(copy[0])
        self.reload_list()

    def delete(self, conversation_id: str) -> None:
        """Hidden at once; undo_delete brings it back until purge_deleted."""
        if conversation_id == getattr(self._answer_owner, "id", None):
            self.stop()
        if not self._write("The deletion", lambda: self.store.delete(conversation_id)):
            return
        if conversation_id == self.conversation.id:
            self.conversation = Conversation(sampling=self.sampling.params)
            self._show(self.conversation)
        self.reload_list()

    def undo_delete(self, conversation_id: str) -> None:
        if not self._write("Undoing the deletion", lambda: self.store.undelete(conversation_id)):
            return
        self.reload_list()
        self.open_conversation(conversation_id)

    def purge_deleted(self) -> None:
        if self._write("Removing deleted conversations", self.store.purge_deleted):
            self._keep_only_live_kv()

    def _keep_only_live_kv(self) -> None:
        """A KV snapshot holds a chat's text: it goes when the chat is purged."""
        try:
            self.client.keep_kv(self.store.conversation_ids())
        except StoreError as error:
            log.warning("not removing stale KV snapshots: %s", error.message)

    def shutdown(self) -> None:
        self._flush_timer.stop()
        self.purge_deleted()  # before the engine ends: it deletes the purged chats' KV snapshots
        self.client.shutdown()
        # Deliver what the worker sent before it ended: the last tokens and "finished".
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        self._flush()
        if self._recorder is not None:  # still streaming: keep what arrived, marked incomplete
            self._finish_recorder(self._recorder, None, incomplete=True)

    # -- events from the inference thread -------------------------------------------------------

    def _on_loading(self, path: str) -> None:
        self.model_loading.emit(path)
        self.status.emit("Loading model…")

    def _on_loaded(self, info: ModelInfo) -> None:
        log.info("model loaded: %s (%s, context %d)", info.path, info.backend, info.n_ctx)
        self.model = info
        self.load_options = self._requested_options
        self.model_loaded.emit(info)
        self.status.emit("Generating…" if self.generating else "Ready")
        self.records.hash_model(Path(info.path))

    def _on_unloaded(self) -> None:
        self.model = None
        self.status.emit("No model")
        self.model_unloaded.emit()

    def _on_load_failed(self, kind: str, message: str, kept: ModelInfo | None = None) -> None:
        """kept: the model that was loaded before, still (or again) loaded."""
        log.warning("model not loaded (%s): %s", kind, message)
        self.model = kept
        self.status.emit("Ready" if kept else "No model")
        self.model_failed.emit(message)
        self.error.emit(message)

    def _on_token(self, request: int, text: str, tokens: int) -> None:
        if request == self._request:
            self._buffer.append(text)
            self._streamed_tokens += tokens

    def _on_prompt_ready(self, request: int, prompt_tokens: int, dropped: int) -> None:
        if request != self._request:
            return
        self._prompt_tokens, self._dropped = prompt_tokens, dropped
        if dropped and self._answer_owner is self.conversation and self._answer is not None:
            self.view.insert_notice_before(self._answer.id, dropped_notice(dropped, self.overflow_policy))
        self._report_context()

    def _on_prompt_progress(self, request: int, done: int, total: int) -> None:
        """A long prompt is read batch by batch (Stop works between batches): say how far."""
        if request == self._request:
            self.status.emit(f"Reading {total:,} tokens — {100 * done // max(total, 1)} %" if done < total
                             else "Generating…")

    def _on_counted(self, count_id: int, tokens: int) -> None:
        if count_id == self._count_id and self.model is not None and not self.generating:
            self.context_used.emit(tokens, self.model.n_ctx)

    def _report_context(self) -> None:
        if self.model is not None:
            self.context_used.emit(self._prompt_tokens + self._streamed_tokens, self.model.n_ctx)

    def _flush(self) -> None:
        """Show and record what arrived; with nothing new, still save what is due (a stall in
        the middle of an answer must not leave shown text unsaved)."""
        if self._recorder is None:
            return
        chunk = "".join(self._buffer)
        self._buffer.clear()
        try:
            self._recorder.feed(chunk)
        except StoreError as error:
            self._save_failed(error)
            return
        if chunk and self._answer_owner is self.conversation:
            self.view.append_text(chunk)
            self._report_context()

    def _save_failed(self, error: StoreError) -> None:
        """Saving the answer failed: stop the model, and keep exactly what the store holds."""
        self.client.stop()
        recorder, answer = self._recorder, self._answer
        assert recorder is not None and answer is not None
        answer.text, answer.incomplete = recorder.saved_text, True
        self._buffer.clear()
        self._end_answer()
        self.status.emit("Ready" if self.model else "No model")
        self.error.emit(f"The answer was stopped because it could not be saved. {error.message} "
                        "What was saved is kept; send again once this is solved.")

    def _finish_recorder(self, recorder: AnswerRecorder, record, incomplete: bool) -> bool:
        try:
            recorder.finish(record, incomplete=incomplete)
        except StoreError as error:
            answer = recorder.message
            answer.text, answer.incomplete, answer.generation = recorder.saved_text, True, None
            self.error.emit(f"The end of the answer could not be saved. {error.message}")
            return False
        return True

    def _on_finished(self, request: int, stats: GenerationStats) -> None:
        if request != self._request or self._recorder is None:
            return
        self._flush()
        if self._recorder is None:  # saving failed in that flush: the answer has ended
            return
        record = self.records.record(self.model, self._request_sampling, stats, self._dropped)
        self._finish_recorder(self._recorder, record, incomplete=stats.stop_reason == "user")
        self._prompt_tokens, self._streamed_tokens = stats.prompt_tokens, stats.completion_tokens
        self._report_context()
        self._end_answer()
        self.status.emit("Ready")
        self.answer_finished.emit(stats)

    def _on_failed(self, request: int, kind: str, message: str) -> None:
        if request != self._request or self._recorder is None:
            return
        self._flush()
        if self._recorder is None:
            return
        self._finish_recorder(self._recorder, None, incomplete=True)
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
        kept_updated, kept_title = conversation.updated, conversation.title
        conversation.updated, conversation.title = undo.updated, undo.title
        try:
            with self.store.transaction():
                self.store.delete_messages(ids)
                if undo.new_conversation:
                    self.store.forget(conversation.id)
                else:
                    if undo.previous is not None:
                        self.store.set_current_version(undo.previous)
                    self.store.save_conversation(conversation)
        except StoreError as error:  # the store still holds them: so does memory
            conversation.updated, conversation.title = kept_updated, kept_title
            self.error.emit(f"The refused message could not be removed. {error.message}")
            return
        self._forget_in_memory(conversation, undo)
        if conversation is self.conversation:
            self.view.show_conversation(conversation)
        if undo.draft:
            self.draft_returned.emit(undo.draft)
        self.reload_list()

    @staticmethod
    def _forget_in_memory(conversation: Conversation, undo: _Undo) -> None:
        ids = {m.id for m in undo.created}
        conversation.messages = [m for m in conversation.messages if m.id not in ids]
        if undo.previous is not None:
            conversation.make_current(undo.previous)
        conversation.updated, conversation.title = undo.updated, undo.title

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

    def _save_request(self, conversation: Conversation, undo: _Undo | None, answer: Message,
                      write_question=None, new_version: bool = False, resumed: bool = False) -> bool:
        """Commit what a request adds (its question, the empty answer) in ONE transaction before
        the model is asked; if that fails, nothing of it stays, in memory or on disk."""
        model_before, incomplete_before = conversation.model, answer.incomplete
        if not resumed:
            if answer not in conversation.messages:
                conversation.messages.append(answer)
            if undo is not None:
                undo.created.append(answer)
        if self.model:
            conversation.model = Path(self.model.path).name
        try:
            with self.store.transaction():
                if write_question is not None:
                    write_question()
                recorder = AnswerRecorder(self.store, conversation, answer, resumed=resumed)
                if new_version:
                    self.store.set_current_version(answer)
        except StoreError as error:
            conversation.model, answer.incomplete = model_before, incomplete_before
            if undo is not None:
                self._forget_in_memory(conversation, undo)
            self.error.emit(f"Your message was not sent: it could not be saved. {error.message}")
            return False
        self._recorder = recorder
        return True

    def _begin_answer(self, request: int | None, answer: Message, resumed: bool = False,
                      undo: _Undo | None = None) -> bool:
        conversation = self.conversation
        if request is None:  # the engine refused (still busy): take back what was saved
            recorder, self._recorder = self._recorder, None
            if undo is not None:
                self._take_back(conversation, undo)
            elif recorder is not None:
                self._finish_recorder(recorder, answer.generation, incomplete=answer.incomplete)
            return False
        self._undo = undo
        self._request = request
        self._request_sampling = self.sampling.params
        self._streamed_tokens = self._dropped = 0
        self._answer = answer
        self._answer_owner = conversation
        if not resumed:
            self.view.set_conversation(conversation)
            self.view.begin_message("assistant", answer.id)
        self._flush_timer.start()
        self.status.emit("Generating…" if self.model else "Loading model… the answer follows")
        self.generating_changed.emit(True)
        self.reload_list()
        return True

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

    def _save_fields(self, what: str) -> bool:
        """Save the shown conversation's own fields, once it is stored (False: the save failed)."""
        if not any(s.id == self.conversation.id for s in self.summaries):
            return True
        return self._write(what, lambda: self.store.save_conversation(self.conversation))

    def _write(self, what: str, write) -> bool:
        """Run a store write; if it fails, say so (the caller then leaves memory unchanged)."""
        try:
            write()
        except StoreError as error:
            self.error.emit(f"{what} could not be saved. {error.message}")
            return False
        return True

    def reload_list(self) -> None:
        try:
            self.summaries = self.store.list_conversations()
        except StoreError as error:
            self.error.emit(f"The list of conversations could not be read. {error.message}")
            return
        self.conversations_changed.emit()

    def _on_sampling_changed(self, params) -> None:
        before, self.conversation.sampling = self.conversation.sampling, params
        if not self._save_fields("The sampling settings"):
            self.conversation.sampling = before


def dropped_notice(dropped: int, policy: str) -> str:
    where = "from the middle" if policy == OverflowPolicy.KEEP_FIRST_LAST else "from the start"
    many = f"{dropped} earlier messages {where} of this chat were" if dropped != 1 else \
        f"1 earlier message {where} of this chat was"
    return f"✂ The context is full: {many} not sent to the model for this answer."

