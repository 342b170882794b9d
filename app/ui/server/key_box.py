"""The API key, shown once: right after Llamadesk generated it, with a Copy button. The key is not
kept by the panel: closing the box (or the panel) forgets it; only the key store holds it."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout

SHOWN_ONCE = "Shown once: copy it now. Clients send it as 'Authorization: Bearer …'."


class KeyBox(QFrame):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("apiKeyBox")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.key_field = QLineEdit()
        self.key_field.setObjectName("apiKeyField")
        self.key_field.setReadOnly(True)
        self.key_field.setAccessibleName("The new API key")
        self.key_field.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy the API key")
        self.copy_button.clicked.connect(self.copy)
        self.forget_button = QPushButton("Done")
        self.forget_button.setAccessibleName("Hide the API key")
        self.forget_button.setToolTip("Hide the key: it cannot be shown again")
        self.forget_button.clicked.connect(self.forget)
        self.note = QLabel(SHOWN_ONCE)
        self.note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.key_field, 1)
        row.addWidget(self.copy_button)
        row.addWidget(self.forget_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 6, 8, 6)
        column.addLayout(row)
        column.addWidget(self.note)
        self.hide()

    def show_key(self, key: str) -> None:
        self.key_field.setText(key)
        self.key_field.setCursorPosition(0)
        self.note.setText(SHOWN_ONCE)
        self.show()
        self.key_field.setFocus()
        self.key_field.selectAll()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.key_field.text())
        self.note.setText("Copied. " + SHOWN_ONCE)

    def forget(self) -> None:
        self.key_field.clear()
        self.hide()
