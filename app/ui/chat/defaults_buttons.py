""""Save as default for new chats" and "Reset to defaults", under the sampling and system prompt panels.

A panel edits this chat only; its values become what new chats start from only when the user
says so here, and a chat that drifted goes back to the defaults in one step.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.session.chat_defaults import ChatDefaultsSession


class DefaultsButtons(QWidget):
    def __init__(self, defaults: ChatDefaultsSession | None, save: Callable[[], object],
                 reset: Callable[[], object], what: str, parent: QWidget | None = None) -> None:
        """save, reset: what the buttons do; what: "these settings", "this system prompt".
        Without `defaults` (a panel on its own) there is only Reset, to the built-in values."""
        super().__init__(parent)
        self._asked = False  # the message after a save is said where the user asked for it
        self.save_button = QPushButton("Save as default")
        self.save_button.setToolTip(f"New chats will start with {what}. Your chats keep their own.")
        self.save_button.setVisible(defaults is not None)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip(f"Reset to defaults: replace {what} with your defaults for new chats.")
        self.hint = QLabel()
        self.hint.setObjectName("defaultsHint")
        self.hint.setWordWrap(True)
        self.hint.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.save_button)
        row.addWidget(self.reset_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.hint)
        self.save_button.clicked.connect(lambda: self._save(save))
        self.reset_button.clicked.connect(lambda: self._reset(reset))
        if defaults is not None:
            defaults.saved.connect(self._answered)
            defaults.failed.connect(self._answered)

    def _save(self, save: Callable[[], object]) -> None:
        self._asked = True
        save()

    def _reset(self, reset: Callable[[], object]) -> None:
        reset()
        self.say("Back to your defaults for new chats.")

    def _answered(self, message: str) -> None:
        if self._asked:
            self._asked = False
            self.say(message)

    def say(self, message: str) -> None:
        self.hint.setText(message)
        self.hint.setVisible(bool(message))
