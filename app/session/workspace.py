"""Every session of one window, made and wired to each other in one place.

The window only draws them; how a rename reaches the open chat, or a purge the KV snapshots, is
decided here, without widgets.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject

from app.core.conversations.store import ConversationStore, StoreError, default_store_path
from app.session import tasks
from app.session.chat_defaults import ChatDefaultsSession
from app.session.chat_session import ChatSession
from app.session.connections import ConnectionsSession
from app.session.conversations import Conversations
from app.session.engines import Engines
from app.session.local_backend import LocalBackend
from app.session.model_library import LibrarySession
from app.session.models import ModelSession
from app.session.sampling import SamplingSettings
from app.session.server import ApiServer

log = logging.getLogger(__name__)
PROPOSE_TITLES = True  # the model titles a chat after its first answer (tests of other things turn it off)


class Workspace(QObject):
    def __init__(self, store: ConversationStore | None = None, backend: LocalBackend | None = None,
                 parent: QObject | None = None, propose_titles: bool | None = None) -> None:
        """store: the conversations' database (default: the user's); backend: what writes the answers;
        propose_titles: the model titles a chat after its first answer (None: PROPOSE_TITLES)."""
        super().__init__(parent)
        tasks.the_loop()  # before any thread starts: without the loop, say so at once
        self.store = store or ConversationStore(default_store_path())
        self.backend = backend or LocalBackend(parent=self)
        self.models = ModelSession(self.backend, self)
        self.library = LibrarySession(describe_build=self.backend.build, parent=self)
        self.conversations = Conversations(self.store, self)
        self.defaults = ChatDefaultsSession(parent=self)  # what a new chat starts from
        self.sampling = SamplingSettings(self.defaults.values.sampling, parent=self)
        self.connections = ConnectionsSession(parent=self)  # the remote engines' endpoints and keys
        self.engines = Engines(self.connections.file, parent=self)  # remote models on those connections
        self.chat = ChatSession(self.backend, self.store, self.sampling, self.conversations.is_saved, self,
                                defaults=self.defaults, engines=self.engines,
                                propose_titles=PROPOSE_TITLES if propose_titles is None else propose_titles)
        chat, conversations = self.chat, self.conversations
        self.models.loaded.connect(chat.records.on_model_loaded)  # the model's hash, for answer records
        self.models.changing.connect(chat.titles.stop)  # a model change does not wait for a title
        chat.list_changed.connect(conversations.refresh)
        conversations.renamed.connect(chat.on_renamed)
        conversations.pinned.connect(chat.on_pinned)
        conversations.deleted.connect(chat.on_deleted)
        conversations.restored.connect(chat.open_conversation)
        chat.messages_deleted.connect(conversations.offer_messages_undo)
        conversations.messages_restored.connect(chat.on_messages_restored)
        chat.generating_changed.connect(lambda running: running and conversations.end_messages_undo())
        conversations.duplicated.connect(chat.open_conversation)
        conversations.imported.connect(lambda ids: ids and chat.open_conversation(ids[0]))
        conversations.purged.connect(self.keep_only_live_kv)
        self.connections.changed.connect(self._connections_changed)
        # The loaded model served to other programs (View ▸ Server): its answers queue behind the window's.
        self.server = ApiServer(self.backend, self.library, lambda: self.defaults.values.sampling,
                                parent=self)
        if self.server.settings.start_with_app:
            self.server.start()
        self.keep_only_live_kv()  # snapshots of chats deleted since: gone, with their text
        tasks.start(tasks.in_thread(_warm_up_rendering), "warm up the renderer")

    def _connections_changed(self) -> None:
        """An edited endpoint or key is used from now on: the shown chat's engine is asked again."""
        self.engines.forget()
        self.chat.announce_engine()

    def keep_only_live_kv(self) -> None:
        """A KV snapshot holds a chat's text: it goes when the chat is purged."""
        try:
            self.backend.keep_kv(self.store.conversation_ids())
        except StoreError as error:
            log.warning("not removing stale KV snapshots: %s", error.message)

    def close(self) -> None:
        """Before the window goes: deleted chats are purged (their KV snapshots with them, so
        before the engine ends), then the backend ends, keeping what arrived of an answer."""
        self.conversations.purge_deleted()
        self.server.close()
        self.chat.shutdown()


def _warm_up_rendering() -> None:
    """In a worker thread: Markdown and the highlighters load there, not when a chat first opens."""
    from app.core.chat import markdown_render  # markdown-it and Pygments: not on the window's path

    markdown_render.warm_up()
