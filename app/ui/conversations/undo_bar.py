"""The bar that offers to bring back a deleted conversation (or deleted messages) while the undo
offer lasts."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from app.session.conversations import Conversations
from app.ui.shell.theme import Colors


class UndoBar(QWidget):
    """Shown on `undo_offered`; hidden when the offer ends, taken or not (`undo_available`)."""

    def __init__(self, conversations: Conversations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("undoBar")
        self.label = QLabel()
        self.button = QPushButton("Undo")
        self.button.setToolTip("Bring it back (Ctrl+Z)")
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 2, 8, 2)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self.hide()
        self.button.clicked.connect(conversations.undo_delete)
        conversations.undo_offered.connect(self._offer)
        conversations.undo_available.connect(lambda available: available or self.hide())

    def _offer(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def set_colors(self, colors: Colors) -> None:
        self.setStyleSheet(f"QWidget#undoBar {{ background: {colors.notice_bg}; border-radius: 4px; }}"
                           f" QLabel {{ color: {colors.notice_fg}; }}")
