"""One chat: send, stop, regenerate, edit, continue, versions, and the answer as it streams.

The user's message and the empty answer are committed before the backend is asked; the answer
is saved while it streams and completed at the end (answer_writer.py). The view observes the
signals below; nothing here knows a widget.

A store write that fails (disk full, database locked, read-only or damaged) changes nothing in
memory either: the change is rolled back, a running answer stops and keeps what was saved, the
user's text goes back to the composer, and `error` says what happened and what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core.chat.context_window import OverflowPolicy
from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import AnswerRecorder, ConversationStore, StoreError
from app.core.inference.backend import Backend, BackendBusy
from app.core.inference.types import ChatMessages, EngineError, GenerationStats, ModelInfo
from app.session import tasks
from app.session.answer_records import AnswerRecords
from app.session.answer_writer import AnswerWriter, finish_recorder
from app.session.chat_defaults import ChatDefaultsSession, new_chat
from app.session.chat_history import ChatHistory
from app.session.chat_requests import NO_MODEL, Rollback, dropped_notice, reading_status, save_request
from app.session.sampling import SamplingSettings
from app.session.titles import TitleMaker

log = logging.getLogger(__name__)


class ChatSession(QObject, ChatHistory):
    status = Signal(str)  # a short state for the status bar: "Generating…", "Ready", …
    error = Signal(str)  # a message the user must see
    generating_changed = Signal(bool)
    answer_finished = Signal(object)  # GenerationStats
    conversation_shown = Signal(str)  # id of the conversation now shown
    list_changed = Signal()  # a request saved or took back a conversation: the list must refresh
    retitled = Signal(str, str)  # conversation id, the title the model proposed for it (saved)
    messages_deleted = Signal(object)  # DeletedMessages: hidden, for the undo offer
    draft_returned = Signal(str)  # a question that was refused, back for the composer
    context_used = Signal(int, int)  # tokens the chat (with the draft or the growing answer) uses, n_ctx
    # What the chat view draws:
    redrawn = Signal(object, bool)  # the conversation to draw whole; leave its last message open
    scrolled_to = Signal(str)  # a message to bring into view
    message_started = Signal(object, str, str)  # the conversation, role, message id
    text_appended = Signal(str)  # text for the message being written
    thought_appended = Signal(str)  # a reasoning model's thought for the message being written
    message_finished = Signal(object)  # the Message, complete
    notice_inserted = Signal(str, str)  # above this message id: a line of text

    def __init__(self, backend: Backend, store: ConversationStore, sampling: SamplingSettings,
                 is_saved=None, parent: QObject | None = None, defaults: ChatDefaultsSession | None = None,
                 propose_titles: bool = False) -> None:
        """is_saved(conversation_id): whether the conversation is in the store's list (a new chat
        is saved with its first message). defaults: what a new chat starts from (None: the built-in
        ones). propose_titles: the model titles a chat after its first answer."""
        super().__init__(parent)
        self.backend = backend
        self.store = store
        self.sampling = sampling
        self.is_saved = is_saved or (lambda conversation_id: conversation_id in store.conversation_ids())
        self.overflow_policy = OverflowPolicy.DROP_OLDEST
        self.save_interval_s = 0.5  # a streaming answer is saved at least this often (bounds a kill's loss)
        self.records = AnswerRecords(store)
        self.defaults = defaults
        self.titles = TitleMaker(backend, store, enabled=propose_titles, parent=self)
        self.titles.titled.connect(self._on_titled)
        self.conversation = Conversation(sampling=sampling.params,  # unsaved until first message
                                         system_prompt=defaults.values.system_prompt if defaults else "")
        self._rollback: Rollback | None = None  # what the running request added, if it is refused
        self._counting = tasks.Latest("count the context")
        self.writer = AnswerWriter(backend, self.records, self)
        self.writer.text_arrived.connect(self._on_text_arrived)
        self.writer.thought_arrived.connect(self._on_thought_arrived)
        self.writer.prompt_read.connect(self._on_prompt_read)
        self.writer.progress.connect(self._on_progress)
        self.writer.context.connect(self._on_context)
        self.writer.ended.connect(self._on_ended)
        sampling.changed.connect(self._on_sampling_changed)

    @property
    def generating(self) -> bool:
        return self.writer.running

    @property
    def model(self) -> ModelInfo | None:
        return self.backend.model

    # -- intents -----------------------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Save the user's message, then ask for an answer. False (nothing changes) while busy or
        without a model (the text stays in the composer)."""
        self.titles.stop()  # a title being made yields to the user's request at once
        if self.generating or self.backend.busy or self._without_model():
            return False
        conversation = self.conversation
        chat = conversation.chat_messages() + [{"role": "user", "content": text}]
        rollback = self._rollback_point(draft=text)
        question = conversation.append("user", text)
        rollback.created.append(question)
        answer = Message("assistant", "", parent_id=question.id)
        recorder = self._save_request(conversation, rollback, answer,
                                      lambda: self.store.add_message(conversation, question))
        if recorder is None:
            return False
        self.message_started.emit(conversation, "user", question.id)
        self.text_appended.emit(text)
        self.message_finished.emit(question)
        return self._begin_answer(chat, recorder, rollback=rollback)

    def regenerate(self, message_id: str) -> bool:
        """A new version of an answer; the old one stays reachable through the version arrows."""
        self.titles.stop()
        conversation = self.conversation
        old = conversation.find(message_id)
        if self.generating or self.backend.busy or old is None or old.role != "assistant":
            return False
        chat = conversation.chat_messages(conversation.thread_before(old))
        rollback = self._rollback_point(previous=old)
        answer = conversation.add_version(old, "assistant", "")
        recorder = self._save_request(conversation, rollback, answer, new_version=True)
        if recorder is None:
            return False
        shown = Conversation(**{**conversation.__dict__, "messages": conversation.thread_before(answer)})
        self.redrawn.emit(shown, False)  # up to the turn that is answered again
        return self._begin_answer(chat, recorder, rollback=rollback)

    def edit(self, message_id: str, text: str) -> bool:
        """Resend a question as a new version: the later messages of the old one stay in its branch."""
        self.titles.stop()
        conversation = self.conversation
        old = conversation.find(message_id)
        if self.generating or self.backend.busy or old is None or old.role != "user" or not text.strip():
            return False
        chat = conversation.chat_messages(conversation.thread_before(old))
        chat.append({"role": "user", "content": text})
        rollback = self._rollback_point(previous=old, draft=text)
        question = conversation.add_version(old, "user", text)
        rollback.created.append(question)
        answer = Message("assistant", "", parent_id=question.id)

        def save_question() -> None:
            self.store.add_message(conversation, question)
            self.store.set_current_version(question)

        recorder = self._save_request(conversation, rollback, answer, save_question)
        if recorder is None:
            return False
        self.redrawn.emit(conversation, False)
        return self._begin_answer(chat, recorder, rollback=rollback)

    def continue_answer(self, message_id: str) -> bool:
        """Carry on an answer that was stopped or cut off, in the same message."""
        self.titles.stop()
        conversation = self.conversation
        answer = conversation.find(message_id)
        thread = conversation.thread()
        if self.generating or self.backend.busy or answer is None or not thread or thread[-1] is not answer:
            return False
        chat = conversation.chat_messages(thread[:-1])
        recorder = self._save_request(conversation, None, answer, resumed=True)
        if recorder is None:
            return False
        self.redrawn.emit(conversation, True)
        return self._begin_answer(chat, recorder, resumed=True)

    def _without_model(self) -> bool:  # and none on its way: an answer would be an empty failure
        if self.model is not None or self.backend.is_loading:
            return False
        self.error.emit(NO_MODEL)
        return True

    def stop(self) -> None:
        self.backend.stop()

    def set_system_prompt(self, text: str) -> None:
        """The conversation's instructions, saved with it (a new chat keeps them until its first message)."""
        before, self.conversation.system_prompt = self.conversation.system_prompt, text
        if not self._save_fields("The system prompt"):
            self.conversation.system_prompt = before

    def count_context(self, draft: str = "") -> None:
        """How many tokens the conversation and the draft take: context_used answers. A newer
        count cancels an older one."""
        if self.model is None or self.generating:
            return
        chat = self.conversation.chat_messages()
        if draft.strip():
            chat.append({"role": "user", "content": draft})
        self._counting.start(self._count(chat))

    async def _count(self, chat: ChatMessages) -> None:
        tokens = await self.backend.count(chat)
        if tokens is not None and self.model is not None and not self.generating:
            self.context_used.emit(tokens, self.model.n_ctx)

    def message_text(self, message_id: str) -> str:
        message = self.conversation.find(message_id)
        return message.text if message else ""

    def new_conversation(self) -> None:
        """Show an empty conversation; it is saved with its first message."""
        if self.generating:
            self.stop()
        if not self.conversation.messages:
            return
        self._show(new_chat(self.defaults))

    def open_conversation(self, conversation_id: str, message_id: str | None = None) -> None:
        if conversation_id != self.conversation.id:
            if self.generating:
                self.stop()
            if conversation_id == getattr(self.writer.owner, "id", None):
                conversation = self.writer.owner  # still streaming: keep the live object
            else:
                try:
                    conversation = self.store.load(conversation_id)
                except StoreError as error:
                    self.error.emit(f"The conversation could not be opened. {error.message}")
                    return
            self._show(conversation)
        if message_id:
            self.show_message(message_id)  # in whichever version holds it

    # -- what other sessions tell it ---------------------------------------------------------------

    def on_renamed(self, conversation_id: str, title: str) -> None:
        if conversation_id == self.conversation.id:
            self.conversation.title = " ".join(title.split())
            self.conversation.titled_by_user = True

    def on_pinned(self, conversation_id: str, pinned: bool) -> None:
        if conversation_id == self.conversation.id:
            self.conversation.pinned = pinned

    def on_deleted(self, conversation_id: str, next_id: str = "") -> None:
        """A deleted conversation is hidden (undo can bring it back): leave it for `next_id`, the
        one the list shows in its place (a new chat if none)."""
        if conversation_id == getattr(self.writer.owner, "id", None):
            self.stop()
        if conversation_id == self.conversation.id and next_id:
            self.open_conversation(next_id)
        if conversation_id == self.conversation.id:  # none to show instead, or it could not be read
            self._show(new_chat(self.defaults))

    def shutdown(self) -> None:
        """End the backend; keep what arrived of a running answer, marked incomplete."""
        self._counting.cancel()
        self.titles.stop()
        self.backend.close()
        self.writer.take_arrived()

    # -- the answer as it streams ------------------------------------------------------------------

    def _begin_answer(self, chat: ChatMessages, recorder: AnswerRecorder, resumed: bool = False,
                      rollback: Rollback | None = None) -> bool:
        conversation, answer = self.conversation, recorder.message
        continue_text = answer.text if resumed else ""
        if resumed and answer.thought and not answer.text:  # stopped mid-thought: it thinks on
            continue_text = f"<think>\n{answer.thought}"
        try:
            stream = self.backend.stream(chat, self.sampling.params, conversation.id, continue_text,
                                         self.overflow_policy)
        except BackendBusy:  # the backend refused (still busy): take back what was saved
            if rollback is not None:
                self._roll_back(conversation, rollback)
            else:
                self._report(finish_recorder(recorder, answer.generation, answer.incomplete))
            return False
        self._rollback = rollback
        self.writer.start(stream, recorder, conversation, self.sampling.params)
        if not resumed:
            self.message_started.emit(conversation, "assistant", answer.id)
        self.status.emit("Generating…" if self.model else "Loading model… the answer follows")
        self.generating_changed.emit(True)
        self.list_changed.emit()
        return True

    def _on_text_arrived(self, text: str) -> None:
        if self.writer.owner is self.conversation:
            self.text_appended.emit(text)

    def _on_thought_arrived(self, thought: str) -> None:
        if self.writer.owner is self.conversation:
            self.thought_appended.emit(thought)

    def _on_prompt_read(self, dropped: int) -> None:
        answer = self.writer.answer
        if dropped and self.writer.owner is self.conversation and answer is not None:
            self.notice_inserted.emit(answer.id, dropped_notice(dropped, self.overflow_policy))

    def _on_progress(self, done: int, total: int) -> None:
        self.status.emit(reading_status(done, total))

    def _on_context(self, used: int) -> None:
        if self.model is not None and self.writer.owner is self.conversation:
            self.context_used.emit(used, self.model.n_ctx)

    def _on_ended(self, outcome: GenerationStats | EngineError | None, problem: StoreError | None,
                  answer: Message | None, owner: Conversation | None) -> None:
        rollback = self._rollback
        self._rollback = None
        if owner is self.conversation and answer is not None:
            self.message_finished.emit(answer)
        self.generating_changed.emit(False)
        self.list_changed.emit()
        if isinstance(outcome, GenerationStats):
            self._report(problem)
            self.status.emit("Ready")
            self.answer_finished.emit(outcome)
            if outcome.stop_reason != "user" and problem is None and owner is not None:
                self.titles.propose(owner)
            return
        self.status.emit("Ready" if self.model else "No model")
        if isinstance(outcome, EngineError):
            self._report(problem)
            if outcome.kind == EngineError.CONTEXT_TOO_SMALL and rollback is not None and owner is not None:
                self._roll_back(owner, rollback)
            self.error.emit(outcome.message)
        elif problem is not None:
            self.error.emit(f"The answer was stopped because it could not be saved. {problem.message} "
                            "What was saved is kept; send again once this is solved.")

    def _report(self, problem: StoreError | None) -> None:
        if problem is not None:
            self.error.emit(f"The end of the answer could not be saved. {problem.message}")

    # -- requests that are saved first, and taken back if refused ----------------------------------

    def _rollback_point(self, previous: Message | None = None, draft: str = "") -> Rollback:
        c = self.conversation
        return Rollback.at(c, previous, new_conversation=not self.is_saved(c.id), draft=draft)

    def _roll_back(self, conversation: Conversation, rollback: Rollback) -> None:
        """A request refused before the model read it changes nothing: what it added goes, the
        version shown before comes back, and the user's text returns to the composer."""
        try:
            rollback.revert_store(self.store, conversation)
        except StoreError as error:  # the store still holds them: so does memory
            self.error.emit(f"The refused message could not be removed. {error.message}")
            return
        rollback.revert_memory(conversation)
        if conversation is self.conversation:
            self.redrawn.emit(conversation, False)
        if rollback.draft:
            self.draft_returned.emit(rollback.draft)
        self.list_changed.emit()

    def _save_request(self, conversation: Conversation, rollback: Rollback | None, answer: Message,
                      write_question=None, new_version: bool = False,
                      resumed: bool = False) -> AnswerRecorder | None:
        try:
            return save_request(self.store, conversation, rollback, answer, write_question, new_version,
                                resumed, model_file=Path(self.model.path).name if self.model else "",
                                interval_s=self.save_interval_s)
        except StoreError as error:
            self.error.emit(f"Your message was not sent: it could not be saved. {error.message}")
            return None

    # -- helpers -----------------------------------------------------------------------------------

    def _on_titled(self, conversation_id: str, title: str) -> None:
        if conversation_id == self.conversation.id:
            self.conversation.title = title
        self.retitled.emit(conversation_id, title)
        self.list_changed.emit()

    def _show(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.sampling.set_params(conversation.sampling)
        self.redrawn.emit(conversation, False)
        self.conversation_shown.emit(conversation.id)

    def _save_fields(self, what: str) -> bool:
        """Save the shown conversation's own fields, once it is stored (False: the save failed)."""
        if not self.is_saved(self.conversation.id):
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

    def _on_sampling_changed(self, params) -> None:
        before, self.conversation.sampling = self.conversation.sampling, params
        if not self._save_fields("The sampling settings"):
            self.conversation.sampling = before
