"""The conversation's system prompt, with saved prompts to pick from and to save to.

The panel edits text; the chat session owns the conversation. An edit is reported once the user
pauses typing (or leaves the field), not on every key.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.system_prompts import SystemPromptError, SystemPromptStore
from app.session.chat_defaults import ChatDefaultsSession
from app.ui.chat.defaults_buttons import DefaultsButtons

PAUSE_MS = 600
_PICK = "Insert a saved prompt…"


class _PromptEdit(QPlainTextEdit):
    left = Signal()

    def focusOutEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().focusOutEvent(event)
        self.left.emit()


class SystemPromptPanel(QWidget):
    changed = Signal(str)  # the conversation's new system prompt

    def __init__(self, store: SystemPromptStore | None = None, parent=None,
                 defaults: ChatDefaultsSession | None = None) -> None:
        """defaults: what new chats start from (None: no system prompt, and no "save as default")."""
        super().__init__(parent)
        self._defaults = defaults
        self.setObjectName("systemPromptPanel")
        self.store = store or SystemPromptStore()
        self._shown = ""
        self.editor = _PromptEdit()
        self.editor.setObjectName("systemPromptEditor")
        self.editor.setPlaceholderText("No system prompt: the model's default behaviour.")
        self.editor.setToolTip("Instructions the model reads before this conversation. "
                               "Saved with the conversation; the next answer uses it.")
        self.saved = QComboBox()
        self.saved.setObjectName("savedPrompts")
        self.save_button = QPushButton("Save as…")
        self.delete_button = QPushButton("Delete saved")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 6, 4, 6)
        column.addWidget(QLabel("Instructions for this conversation:"))
        column.addWidget(self.editor, 1)
        column.addWidget(self.saved)
        row = QHBoxLayout()
        row.addWidget(self.save_button)
        row.addWidget(self.delete_button)
        column.addLayout(row)
        self.defaults_buttons = DefaultsButtons(
            defaults, lambda: defaults and defaults.save_system_prompt(self.prompt()), self.reset_to_default,
            "this system prompt")
        column.addWidget(self.defaults_buttons)
        column.addWidget(self.hint)
        self._pause = QTimer(self, singleShot=True, interval=PAUSE_MS)
        self._pause.timeout.connect(self.commit)
        self.editor.textChanged.connect(self._pause.start)
        self.editor.left.connect(self.commit)
        self.saved.activated.connect(self._pick)
        self.save_button.clicked.connect(self.save_as)
        self.delete_button.clicked.connect(self.delete_saved)
        self._reload()

    def set_prompt(self, text: str) -> None:
        """Show a conversation's prompt (without reporting it as an edit)."""
        self._pause.stop()
        self._shown = text
        if self.editor.toPlainText() != text:
            self.editor.setPlainText(text)
            self._pause.stop()

    def prompt(self) -> str:
        return self.editor.toPlainText().strip()

    def commit(self) -> None:
        self._pause.stop()
        text = self.prompt()
        if text != self._shown:
            self._shown = text
            self.changed.emit(text)

    def _reload(self) -> None:
        self.saved.clear()
        self.saved.addItem(_PICK)
        for prompt in self.store.all():
            self.saved.addItem(prompt.name + ("" if prompt.builtin else "  (yours)"), prompt.name)
            self.saved.setItemData(self.saved.count() - 1, prompt.text, 3)  # ToolTipRole

    def _pick(self, index: int) -> None:
        name = self.saved.itemData(index)
        chosen = next((p for p in self.store.all() if p.name == name), None)
        self.saved.setCurrentIndex(0)
        if chosen is not None:
            self.insert_at_cursor(chosen.text)
            self.commit()
            self.hint.setText(f"Inserted “{chosen.name}” at the cursor (Ctrl+Z takes it out again).")

    def insert_at_cursor(self, text: str) -> None:
        """Add a saved prompt where the cursor is, keeping what was typed: one step to undo, as a
        paste is. Next to other text it goes on lines of its own."""
        cursor = self.editor.textCursor()
        cursor.beginEditBlock()
        cursor.removeSelectedText()  # like typing or pasting over a selection
        before = "\n" if cursor.positionInBlock() > 0 else ""
        after = "\n" if cursor.positionInBlock() < cursor.block().length() - 1 else ""
        cursor.insertText(before + text + after)
        cursor.endEditBlock()
        self.editor.setTextCursor(cursor)
        self.editor.setFocus()

    def reset_to_default(self) -> None:
        """The default prompt in place of this chat's, in one step that Ctrl+Z takes back."""
        cursor = self.editor.textCursor()
        cursor.beginEditBlock()
        cursor.select(cursor.SelectionType.Document)
        cursor.insertText(self._defaults.values.system_prompt if self._defaults else "")
        cursor.endEditBlock()
        self.commit()

    def save_as(self) -> None:
        if not self.prompt():
            self.hint.setText("Write a prompt first.")
            return
        name, ok = QInputDialog.getText(self, "Save system prompt", "Name:")
        if ok:
            self.save_named(name)

    def save_named(self, name: str) -> None:
        try:
            stored = self.store.save(name, self.prompt())
        except SystemPromptError as error:
            self.hint.setText(error.message)
            return
        self._reload()
        self.hint.setText(f"Saved as “{stored}”.")

    def delete_saved(self) -> None:
        user = [p.name for p in self.store.all() if not p.builtin]
        if not user:
            self.hint.setText("You have no saved prompts to delete.")
            return
        name, ok = QInputDialog.getItem(self, "Delete a saved prompt", "Prompt:", user, 0, False)
        if ok:
            self.store.delete(name)
            self._reload()
            self.hint.setText(f"Deleted “{name}”.")
