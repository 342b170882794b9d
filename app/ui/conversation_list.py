"""The list of conversations on the left."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from app.core.conversation import Conversation


class ConversationList(QWidget):
    new_requested = Signal()
    selected = Signal(int)  # index into the conversations shown

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.new_button = QPushButton("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.list = QListWidget()
        self.list.setObjectName("conversationList")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 0, 6)
        layout.addWidget(self.new_button)
        layout.addWidget(self.list)
        self.new_button.clicked.connect(self.new_requested)
        self.list.currentRowChanged.connect(self._on_row_changed)

    def set_conversations(self, conversations: list[Conversation], current: int) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for conversation in conversations:
            QListWidgetItem(conversation.title, self.list)
        self.list.setCurrentRow(current)
        self.list.blockSignals(False)

    def _on_row_changed(self, row: int) -> None:
        if row >= 0:
            self.selected.emit(row)
