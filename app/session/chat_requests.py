"""What a chat request changed before the model read it, so it can be rolled back if refused.

Rollback (of a refused request) is not undo (of a deleted conversation, app/session/conversations.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.chat.context_window import OverflowPolicy
from app.core.conversations.answer_recorder import AnswerRecorder
from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import ConversationStore, StoreError


@dataclass
class Rollback:
    previous: Message | None  # the version that was current before a new one
    new_conversation: bool  # the conversation was saved by this request
    updated: float
    title: str
    draft: str  # the user's text, for the composer
    created: list[Message] = field(default_factory=list)  # the question and/or answer it added

    @classmethod
    def at(cls, conversation: Conversation, previous: Message | None, new_conversation: bool,
           draft: str = "") -> Rollback:
        return cls(previous, new_conversation, conversation.updated, conversation.title, draft)

    def revert_store(self, store: ConversationStore, conversation: Conversation) -> None:
        """One transaction; raises StoreError (then the store, and so memory, keep everything)."""
        kept_updated, kept_title = conversation.updated, conversation.title
        conversation.updated, conversation.title = self.updated, self.title
        try:
            with store.transaction():
                store.delete_messages({m.id for m in self.created})
                if self.new_conversation:
                    store.forget(conversation.id)
                else:
                    if self.previous is not None:
                        store.set_current_version(self.previous)
                    store.save_conversation(conversation)
        except BaseException:
            conversation.updated, conversation.title = kept_updated, kept_title
            raise

    def revert_memory(self, conversation: Conversation) -> None:
        ids = {m.id for m in self.created}
        conversation.messages = [m for m in conversation.messages if m.id not in ids]
        if self.previous is not None:
            conversation.make_current(self.previous)
        conversation.updated, conversation.title = self.updated, self.title


def save_request(store: ConversationStore, conversation: Conversation, rollback: Rollback | None,
                 answer: Message, write_question=None, new_version: bool = False, resumed: bool = False,
                 model_file: str = "", interval_s: float = 0.5) -> AnswerRecorder:
    """Commit what a request adds (its question, the empty answer) in ONE transaction before the
    backend is asked. If that fails (StoreError), nothing of it stays, in memory or on disk."""
    model_before, incomplete_before = conversation.model, answer.incomplete
    if not resumed:
        if answer not in conversation.messages:
            conversation.messages.append(answer)
        if rollback is not None:
            rollback.created.append(answer)
    if model_file:
        conversation.model = model_file
    try:
        with store.transaction():
            if write_question is not None:
                write_question()
            recorder = AnswerRecorder(store, conversation, answer, resumed=resumed, interval_s=interval_s)
            if new_version:
                store.set_current_version(answer)
    except StoreError:
        conversation.model, answer.incomplete = model_before, incomplete_before
        if rollback is not None:
            rollback.revert_memory(conversation)
        raise
    return recorder


NO_MODEL = ("No model is loaded, so nothing was sent; your message is still in the box. Load one "
            "(Model ▸ Models…, or Open GGUF file…) or download one (Model ▸ Download models…).")


def dropped_notice(dropped: int, policy: str) -> str:
    where = "from the middle" if policy == OverflowPolicy.KEEP_FIRST_LAST else "from the start"
    many = f"{dropped} earlier messages {where} of this chat were" if dropped != 1 else \
        f"1 earlier message {where} of this chat was"
    return f"✂ The context is full: {many} not sent to the model for this answer."


def reading_status(done: int, total: int) -> str:
    """A long prompt is read batch by batch (Stop works between batches): how far, for the status bar."""
    return f"Reading {total:,} tokens — {100 * done // max(total, 1)} %" if done < total else "Generating…"
