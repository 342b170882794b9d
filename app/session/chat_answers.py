"""The answers being written, one AnswerWriter each, and what they tell the shown chat.

Several answers may run at once: a remote engine's answer keeps streaming into its conversation
while another chat is shown and answered (by the local engine, or by the same server, whose
parallel slots batch them). Only the shown conversation's answer reaches the view and the status
bar; each is saved as it streams, whichever chat is shown.

A part of ChatSession (its signals, its store, its titles), kept apart so each file holds one concern.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import AnswerRecorder, StoreError
from app.core.inference.backend import Backend, BackendBusy
from app.core.inference.types import ChatMessages, EngineError, GenerationStats
from app.session.answer_writer import AnswerWriter, finish_recorder
from app.session.chat_requests import Rollback, dropped_notice, reading_status


class ChatAnswers:
    """Mixed into ChatSession, which provides conversation, backend_for, records, sampling, titles,
    overflow_policy, _roll_back, _report and the signals used here."""

    writer_clock: Callable[[], float] = time.monotonic  # how writers time a thought (a test gives its own)

    def _init_answers(self) -> None:
        self._writers: dict[str, AnswerWriter] = {}  # conversation id -> the answer being written in it

    @property
    def writer(self) -> AnswerWriter | None:
        """The answer being written in the shown conversation (None: none)."""
        return self._writers.get(self.conversation.id)

    @property
    def generating(self) -> bool:
        """The shown conversation is being answered."""
        return self.conversation.id in self._writers

    @property
    def answering(self) -> list[Conversation]:
        """Every conversation being answered now (a remote answer goes on while another chat is shown)."""
        return [w.owner for w in self._writers.values() if w.owner is not None]

    def live_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation as its running answer holds it (not stale, as the store's may be)."""
        writer = self._writers.get(conversation_id)
        return writer.owner if writer else None

    def stop(self) -> None:
        """Stop the shown conversation's answer within one token."""
        self.stop_answer(self.conversation.id)

    def stop_answer(self, conversation_id: str) -> None:
        """Stop the answer being written in this conversation, if one is."""
        if (writer := self._writers.get(conversation_id)) is not None and writer.stream is not None:
            writer.stream.stop()

    def stop_all(self) -> None:
        for conversation_id in list(self._writers):
            self.stop_answer(conversation_id)

    def _stop_unless_side_by_side(self) -> None:
        """Leaving a chat: its local answer stops (the local engine answers one request at a
        time); a remote engine's answer goes on."""
        writer = self.writer
        if writer is not None and not getattr(writer.backend, "side_by_side", False):
            self.stop()

    def _take_all_arrived(self) -> None:
        for writer in list(self._writers.values()):
            writer.take_arrived()

    def _begin_answer(self, chat: ChatMessages, recorder: AnswerRecorder, resumed: bool = False,
                      rollback: Rollback | None = None) -> bool:
        conversation, answer = self.conversation, recorder.message
        backend = self.backend_for(conversation)
        continue_text = answer.text if resumed else ""
        if resumed and answer.thought and not answer.text:  # stopped mid-thought: it thinks on
            continue_text = f"<think>\n{answer.thought}"
        try:
            stream = backend.stream(chat, self.sampling.params, conversation.id, continue_text,
                                    self.overflow_policy)
        except BackendBusy:  # the backend refused (still busy): take back what was saved
            if rollback is not None:
                self._roll_back(conversation, rollback)
            else:
                self._report(finish_recorder(recorder, answer.generation, answer.incomplete))
            return False
        writer = self._new_writer(backend)
        writer.rollback = rollback
        self._writers[conversation.id] = writer
        writer.start(stream, recorder, conversation, self.sampling.params)
        if not resumed:
            self.message_started.emit(conversation, "assistant", answer.id)
        self.status.emit(_starting(backend))
        self.generating_changed.emit(True)
        self.list_changed.emit()
        return True

    def _new_writer(self, backend: Backend) -> AnswerWriter:
        writer = AnswerWriter(backend, self.records, self)
        writer.clock = self.writer_clock
        writer.rollback = None
        shown = self._shown_writer(writer)
        writer.text_arrived.connect(lambda text: shown() and self.text_appended.emit(text))
        writer.thought_arrived.connect(lambda thought: shown() and self.thought_appended.emit(thought))
        writer.prompt_read.connect(lambda dropped: self._on_prompt_read(writer, dropped))
        writer.progress.connect(lambda done, total: shown() and self.status.emit(reading_status(done, total)))
        writer.waiting.connect(lambda reason: shown() and self.status.emit(reason))
        writer.context.connect(lambda used: self._on_context(writer, used))
        writer.ended.connect(lambda *outcome: self._on_ended(writer, *outcome))
        return writer

    def _shown_writer(self, writer: AnswerWriter) -> Callable[[], bool]:
        return lambda: writer.owner is not None and writer.owner is self.conversation

    def _on_prompt_read(self, writer: AnswerWriter, dropped: int) -> None:
        answer = writer.answer
        if dropped and writer.owner is self.conversation and answer is not None:
            self.notice_inserted.emit(answer.id, dropped_notice(dropped, self.overflow_policy))

    def _on_context(self, writer: AnswerWriter, used: int) -> None:
        model = writer.backend.model
        if model is not None and writer.owner is self.conversation:
            self.context_used.emit(used, model.n_ctx)

    def _on_ended(self, writer: AnswerWriter, outcome: GenerationStats | EngineError | None,
                  problem: StoreError | None, answer: Message | None, owner: Conversation | None) -> None:
        rollback = writer.rollback
        if owner is not None and self._writers.get(owner.id) is writer:
            del self._writers[owner.id]
        writer.setParent(None)  # goes with its last reference (deleteLater crashed Qt in nested loops)
        shown = owner is not None and owner is self.conversation
        if shown and answer is not None:
            self.message_finished.emit(answer)
        if shown:
            self.generating_changed.emit(False)
        self.list_changed.emit()
        model = writer.backend.model
        if isinstance(outcome, GenerationStats):
            self._report(problem)
            if shown:
                self.status.emit("Ready")
            self.answer_finished.emit(outcome)
            if outcome.stop_reason != "user" and problem is None and owner is not None:
                self.titles.propose(owner, writer.backend)
            return
        if shown:
            self.status.emit("Ready" if model else "No model")
        where = "" if shown or owner is None else f"In “{owner.title}”: "
        if isinstance(outcome, EngineError):
            self._report(problem)
            if outcome.kind == EngineError.CONTEXT_TOO_SMALL and rollback is not None and owner is not None:
                self._roll_back(owner, rollback)
            self.error.emit(where + outcome.message)
        elif problem is not None:
            self.error.emit(f"{where}The answer was stopped because it could not be saved. {problem.message} "
                            "What was saved is kept; send again once this is solved.")


def _starting(backend: Backend) -> str:
    if backend.model is not None:
        return "Generating…"
    if connection := getattr(backend, "connection", None):  # a remote engine not asked yet
        return f"Connecting to {connection.name}… the answer follows"
    return "Loading model… the answer follows"
