"""The bar above the chat, as in LM Studio and Jan: the chat list's toggle, the model picker, a hint
when the open chat was written with another model, and the side panels' toggle.

A chat remembers the file name of the model it last used (Conversation.model). When that model is
in the library but not the one loaded, a button offers it ("This chat used X — Load"); nothing
loads by itself, since a big model takes minutes. A chat answered by a remote engine needs no load:
the picker names its engine, and no hint shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QSizePolicy, QToolButton, QWidget

from app.session.chat_session import ChatSession
from app.session.model_library import LibrarySession
from app.session.models import ModelSession
from app.ui.chat.model_picker import ModelPicker

if TYPE_CHECKING:
    from app.session.connections import ConnectionsSession
    from app.session.engines import Engines

HINT_MIN_WIDTH = 70  # px: "This chat used X — Load" squeezed on a narrow window


class TopBar(QWidget):
    load_requested = Signal(str)  # the path of a model to load (chosen, or the chat's own)

    def __init__(self, chat: ChatSession, models: ModelSession, library: LibrarySession,
                 parent: QWidget | None = None, engines: Engines | None = None,
                 connections: ConnectionsSession | None = None) -> None:
        """engines, connections: the remote engines the picker lists (None: local models only)."""
        super().__init__(parent)
        self.setObjectName("topBar")
        self.chat = chat
        self.list_button = _toggle("Chats", "listToggle")
        self.picker = ModelPicker(models, library, chat=chat, engines=engines, connections=connections)
        self.chat_model_button = QPushButton()
        self.chat_model_button.setObjectName("chatModelHint")
        # its text may be long: it shrinks before it widens the window (the tooltip says it whole)
        self.chat_model_button.setMinimumWidth(HINT_MIN_WIDTH)
        self.chat_model_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.chat_model_button.hide()
        self.side_button = _toggle("Settings", "sideToggle")
        self._chat_model_path: str | None = None  # what the hint would load
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.list_button)
        row.addWidget(self.picker, 1)
        row.addWidget(self.chat_model_button)
        row.addWidget(self.side_button)
        self.picker.load_requested.connect(self.load_requested)
        self.chat_model_button.clicked.connect(self._load_chat_model)
        for signal in (chat.conversation_shown, chat.engine_changed, models.loading, models.loaded,
                       models.failed, models.unloaded, self.picker.listed):
            signal.connect(self.update_hint)

    def bind(self, button: QToolButton, action: QAction) -> None:
        """The button shows and changes what the (checkable) View action does."""
        button.setChecked(action.isChecked())
        button.setToolTip(f"{action.iconText()} ({action.shortcut().toString()})")
        action.toggled.connect(button.setChecked)
        button.clicked.connect(lambda _checked: action.trigger())

    def update_hint(self, *_: object) -> None:
        """Offer the open chat's own model when it is in the library and not the one loaded (a remote
        engine's chat: never)."""
        used = "" if self.chat.conversation.connection else self.chat.conversation.model
        current = self.picker.current_path
        path = self.picker.path_of(used) if used and (current is None or Path(current).name != used) else None
        self._chat_model_path = path
        if path is not None:
            self.chat_model_button.setText(f"This chat used {Path(used).stem} — Load")
            self.chat_model_button.setToolTip(f"This chat used {Path(used).stem}. Load {path}")
        self.chat_model_button.setVisible(path is not None)

    def _load_chat_model(self) -> None:
        if self._chat_model_path is not None:
            self.load_requested.emit(self._chat_model_path)


def _toggle(text: str, name: str) -> QToolButton:
    button = QToolButton()
    button.setObjectName(name)
    button.setText(text)
    button.setCheckable(True)
    button.setAutoRaise(True)
    return button
