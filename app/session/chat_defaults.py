"""The user's defaults for new chats, held in memory and saved off the GUI thread.

A new chat starts from these, not from the chat that was open; they change only when the user
says "save as default" in the sampling or system prompt panel.
"""

from __future__ import annotations

import dataclasses
import threading

from PySide6.QtCore import QObject, Signal

from app.core.chat.defaults import ChatDefaults, DefaultsError, DefaultsStore
from app.core.chat.sampling import SamplingParams
from app.core.conversations.conversation import Conversation
from app.session import tasks


class ChatDefaultsSession(QObject):
    saved = Signal(str)  # what was saved, in words
    failed = Signal(str)  # why it could not be saved

    def __init__(self, store: DefaultsStore | None = None, parent: QObject | None = None) -> None:
        """Reads the (small) file once, at start: a damaged one gives the built-in defaults and a notice."""
        super().__init__(parent)
        self.store = store or DefaultsStore()
        self.values: ChatDefaults = self.store.load()
        self._writing = threading.Lock()  # saves in order: the last one writes the newest values

    def save_sampling(self, params: SamplingParams) -> None:
        self._save(dataclasses.replace(self.values, sampling=params),
                   "New chats will start with these sampling settings.")

    def save_system_prompt(self, text: str) -> None:
        done = "New chats will start with this system prompt." if text.strip() else \
            "New chats will start without a system prompt."
        self._save(dataclasses.replace(self.values, system_prompt=text.strip()), done)

    def _save(self, values: ChatDefaults, done: str) -> None:
        """In memory at once (the next new chat has them), on disk in a worker thread."""
        self.values = values
        tasks.start(self._write(done), "save the defaults for new chats")

    async def _write(self, done: str) -> None:
        try:
            await tasks.in_thread(self._write_latest)
        except DefaultsError as error:
            self.failed.emit(f"{error.message} New chats use them until Llamadesk closes.")
            return
        self.saved.emit(done)

    def _write_latest(self) -> None:
        with self._writing:
            self.store.save(self.values)


def new_chat(defaults: ChatDefaultsSession | None) -> Conversation:
    """An empty chat with the user's defaults (the built-in ones without them), never the settings
    of the chat that was open."""
    if defaults is None:
        return Conversation(sampling=SamplingParams())
    values = defaults.values
    return Conversation(sampling=values.sampling, system_prompt=values.system_prompt)
