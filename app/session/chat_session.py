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
from app.core.common.errors import UserFacingError
from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import AnswerRecorder, ConversationStore, StoreError
from app.core.inference.backend import Backend
from app.core.inference.types import ChatMessages, ModelInfo
from app.session import tasks
from app.session.answer_records import AnswerRecords
from app.session.chat_answers import ChatAnswers
from app.session.chat_defaults import ChatDefaultsSession, new_chat
from app.session.chat_history import ChatHistory
from app.session.chat_requests import NO_MODEL, Rollback, save_request
from app.session.sampling import SamplingSettings
from app.session.titles import TitleMaker

log = logging.getLogger(__name__)


class ChatSession(QObject, ChatHistory, ChatAnswers):
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
    engine_changed = Signal(object)  # the ModelInfo that answers the shown chat (None: none yet)

    def __init__(self, backend: Backend, store: ConversationStore, sampling: SamplingSettings,
                 is_saved=None, parent: QObject | None = None, defaults: ChatDefaultsSession | None = None,
                 propose_titles: bool = False, engines=None) -> None:
        """backend: the local engine. is_saved(conversation_id): whether the conversation is in the
        store's list (a new chat is saved with its first message). defaults: what a new chat starts
        from (None: the built-in ones). propose_titles: the model titles a chat after its first
        answer. engines: the remote engines (app/session/engines.py; None: the local one only)."""
        super().__init__(parent)
        self.local = backend
        self.engines = engines
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
        self._counting = tasks.Latest("count the context")
        self._init_answers()
        sampling.changed.connect(self._on_sampling_changed)

    def backend_for(self, conversation: Conversation) -> Backend:
        """What answers a conversation: its remote engine, or the local one."""
        if conversation.connection and self.engines is not None:
            return self.engines.remote(conversation.connection, conversation.model)
        return self.local

    @property
    def backend(self) -> Backend:
        """What answers the shown conversation."""
        return self.backend_for(self.conversation)

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

    def choose_engine(self, connection: str = "", model_id: str = "") -> None:
        """Answer the shown chat, and new ones, with a remote model (connection, model id), or with
        the local engine (no arguments). The conversation remembers it."""
        conversation = self.conversation
        before = conversation.connection, conversation.model
        conversation.connection = connection
        if connection or before[0]:  # a local chat keeps the file it was last answered with
            conversation.model = model_id
        if not self._save_fields("The model choice"):
            conversation.connection, conversation.model = before
            return
        self.announce_engine()

    def announce_engine(self) -> None:
        """Tell the window which engine answers the shown chat; a remote one is asked what it is
        first (its context size, the sampling fields it takes)."""
        backend = self.backend
        self.engine_changed.emit(backend.model)
        if backend.model is None and hasattr(backend, "ensure_connected"):
            tasks.start(self._connect(backend), "connect to the remote engine")

    async def _connect(self, backend) -> None:
        """Connect; the window recounts the context once told (engine_changed)."""
        try:
            await backend.ensure_connected()
        except UserFacingError as error:
            if backend is self.backend:
                self.error.emit(error.message)
            return
        if backend is self.backend:
            self.engine_changed.emit(backend.model)

    def message_text(self, message_id: str) -> str:
        message = self.conversation.find(message_id)
        return message.text if message else ""

    def new_conversation(self) -> None:
        """Show an empty conversation; it is saved with its first message."""
        self._stop_unless_side_by_side()
        if not self.conversation.messages:
            return
        self._show(self._new_chat())

    def _new_chat(self) -> Conversation:
        """From the defaults, answered by the engine of the chat shown (the one the picker shows)."""
        conversation = new_chat(self.defaults)
        shown = self.conversation
        if shown.connection:
            conversation.connection, conversation.model = shown.connection, shown.model
        return conversation

    def open_conversation(self, conversation_id: str, message_id: str | None = None) -> None:
        if conversation_id != self.conversation.id:
            self._stop_unless_side_by_side()
            if (live := self.live_conversation(conversation_id)) is not None:
                conversation = live  # still streaming: keep the live object
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
        self.stop_answer(conversation_id)
        if conversation_id == self.conversation.id and next_id:
            self.open_conversation(next_id)
        if conversation_id == self.conversation.id:  # none to show instead, or it could not be read
            self._show(self._new_chat())

    def shutdown(self) -> None:
        """End the backend; keep what arrived of a running answer, marked incomplete."""
        self._counting.cancel()
        self.titles.stop()
        self.local.close()
        if self.engines is not None:
            self.engines.close()
        self._take_all_arrived()

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
                                resumed, model_file=_model_name(self.model),
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
        was_generating, self.conversation = self.generating, conversation
        self.sampling.set_params(conversation.sampling)
        self.redrawn.emit(conversation, self.generating)
        self.conversation_shown.emit(conversation.id)
        if self.generating != was_generating:
            self.generating_changed.emit(self.generating)
        self.announce_engine()

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


def _model_name(info: ModelInfo | None) -> str:
    """What a conversation remembers: the model file's name, or a remote model's id."""
    if info is None:
        return ""
    return info.name if info.remote else Path(info.path).name
