"""After a chat's first answer, the loaded model proposes a short title for it.

It never gets in the user's way: the request runs only when the backend is idle, without a cache
key (the engine keeps the chat's KV cache aside and brings it back for the next turn), and
`stop()` ends it within one token when the user asks for something or the model changes. A
failure or a reply with no usable title keeps the first-message title, silently.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from app.core.chat.titles import TITLE_PREFIX, TITLE_SAMPLING, clean_title, title_request
from app.core.conversations.conversation import Conversation, title_from
from app.core.conversations.store import ConversationStore, StoreError
from app.core.inference.backend import Backend, BackendBusy, Delta, Stream
from app.core.inference.types import EngineError, GenerationStats
from app.session import tasks

log = logging.getLogger(__name__)


class TitleMaker(QObject):
    titled = Signal(str, str)  # conversation id, the title the model proposed (saved)

    def __init__(self, backend: Backend, store: ConversationStore, enabled: bool = True,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.store = store
        self.enabled = enabled
        self._stream: Stream | None = None  # the title being written
        self._task = tasks.Latest("propose a title")

    @property
    def running(self) -> bool:
        return self._stream is not None

    def propose(self, conversation: Conversation, backend: Backend | None = None) -> bool:
        """Ask for a title if the conversation has just its first question and answer and still its
        first-message title (the user did not rename it, the model did not title it yet). backend:
        the engine that answered it (default: the one given at construction)."""
        backend = backend or self.backend
        thread = conversation.thread()
        if (not self.enabled or self.running or conversation.titled_by_user or len(thread) != 2
                or conversation.title != title_from(thread[0].text)
                or backend.model is None or backend.busy):
            return False
        try:
            stream = backend.stream(title_request(thread[0].text, thread[1].text), TITLE_SAMPLING, None,
                                         TITLE_PREFIX)
        except BackendBusy:
            return False
        self._stream = stream
        self._task.start(self._follow(stream, conversation))
        return True

    def stop(self) -> None:
        """Make way for the user: the title's stream ends within one token and is forgotten."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._task.cancel()
            stream.stop()

    async def _follow(self, stream: Stream, conversation: Conversation) -> None:
        parts: list[str] = []
        try:
            async for event in stream:
                if isinstance(event, Delta):
                    parts.append(event.text)
                elif isinstance(event, GenerationStats) and event.stop_reason == "user":
                    return
        except EngineError as error:
            log.info("no title proposed: %s", error.message)
            return
        finally:
            if self._stream is stream:
                self._stream = None
        title = clean_title("".join(parts))
        if title is None:
            log.info("no usable title in the model's reply %r", "".join(parts)[:200])
            return
        if self._save(conversation.id, title):
            self.titled.emit(conversation.id, title)

    def _save(self, conversation_id: str, title: str) -> bool:
        """As the store has it now: the user may have renamed it from the list meanwhile."""
        try:
            with self.store.transaction():
                stored = self.store.load(conversation_id)
                if stored.titled_by_user:
                    return False
                stored.title = title
                self.store.save_conversation(stored)
        except StoreError as error:
            log.warning("the proposed title was not saved: %s", error.message)
            return False
        return True
