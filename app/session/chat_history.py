"""What the user does to the history of the shown chat: show another version of a turn, open it at
a message in whichever version holds it (a search hit), delete a message (undo brings it back).

A part of ChatSession (its signals, its store writes), kept apart so each file holds one concern.
Like every ChatSession change, a store write that fails changes nothing in memory.
"""

from __future__ import annotations

from app.core.conversations.store import StoreError
from app.session.conversations import DeletedMessages


class ChatHistory:
    """Mixed into ChatSession, which provides conversation, store, generating, live_conversation,
    _write, _show, open_conversation and the signals used here."""

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
        self.redrawn.emit(conversation, False)
        self.scrolled_to.emit(chosen.id)

    def show_message(self, message_id: str) -> None:
        """Bring a message of the shown chat into view, switching to the versions that hold it (a
        search hit in an answer that is not the version shown)."""
        conversation = self.conversation
        message = conversation.find(message_id)
        if message is None:
            return
        chosen = conversation.versions_to_show(message)
        if chosen and self.live_conversation(conversation.id) is None:  # never under a streaming answer

            def save() -> None:
                with self.store.transaction():
                    for version in chosen:
                        self.store.set_current_version(version)

            if not self._write("The version shown", save):
                return
            for version in chosen:
                conversation.make_current(version)
            self.redrawn.emit(conversation, False)
        self.scrolled_to.emit(message_id)

    def delete_message(self, message_id: str) -> None:
        """Remove a message and what follows from it; a sibling version takes its place. They are
        hidden, not gone: `messages_deleted` offers them back until the offer ends."""
        conversation = self.conversation
        message = conversation.find(message_id)
        if self.generating or message is None:
            return
        ids, successor = conversation.removal(message)
        held: list[str] = []
        if not self._write("The deletion", lambda: held.append(
                self.store.hide_messages(conversation.id, ids, successor))):
            return
        conversation.messages = [m for m in conversation.messages if m.id not in ids]
        if successor is not None:
            conversation.make_current(successor)
        self.redrawn.emit(conversation, False)
        self.list_changed.emit()
        self.messages_deleted.emit(DeletedMessages(conversation.id, held[0], message.id, len(ids)))

    def on_messages_restored(self, conversation_id: str, message_id: str) -> None:
        """Deleted messages are back in the store: show their chat as it now is, at the first of them."""
        if conversation_id == self.conversation.id and not self.generating:
            try:
                conversation = self.store.load(conversation_id)
            except StoreError as error:
                self.error.emit(f"The conversation could not be read again. {error.message}")
                return
            self._show(conversation)
        self.open_conversation(conversation_id, message_id)
