"""The conversation as the user reads it.

Streaming appends text at the end of the document through one cursor: the cost of a flush is
the size of the new text, not of the message or the conversation.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QFont, QTextBlockFormat, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextBrowser

from app.core.conversation import Conversation, Message

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


class ChatView(QTextBrowser):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setOpenLinks(False)  # links are never followed by the view itself
        self.setReadOnly(True)
        self._body_start = 0  # where the last message's text begins
        self._body_end: int | None = None  # where it ends; None while it grows
        self._starts: dict[str, int] = {}  # message id -> where it begins
        self._text_format = QTextCharFormat()
        self._role_format = QTextCharFormat()
        self._role_format.setFontWeight(QFont.Weight.Bold)
        self._footer_format = QTextCharFormat()
        self._footer_format.setForeground(QColor("#888888"))
        self._footer_format.setFontPointSize(max(self.font().pointSizeF() - 1.5, 7.0))

    def show_conversation(self, conversation: Conversation) -> None:
        self.clear()
        self._starts.clear()
        for message in conversation.thread():
            self.begin_message(message.role, message.id)
            self._end_cursor().insertText(message.text, self._text_format)
            self.end_message(message_footer(message))
        self._scroll_to_end()

    def begin_message(self, role: str, message_id: str = "") -> None:
        cursor = self._end_cursor()
        self._starts[message_id] = cursor.position()
        if not self.document().isEmpty():
            cursor.insertBlock(QTextBlockFormat())
            cursor.insertBlock(QTextBlockFormat())
        cursor.insertText(ROLE_NAMES.get(role, role), self._role_format)
        cursor.insertBlock(QTextBlockFormat(), self._text_format)
        self._body_start = cursor.position()
        self._body_end = None

    def append_text(self, text: str) -> None:
        """Add streamed text to the growing message, following the end unless scrolled up."""
        if not text:
            return
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        self._end_cursor().insertText(text, self._text_format)
        if at_end:
            bar.setValue(bar.maximum())

    def end_message(self, footer: str = "") -> None:
        cursor = self._end_cursor()
        self._body_end = cursor.position()
        if footer:
            bar = self.verticalScrollBar()
            at_end = bar.value() >= bar.maximum() - 4
            cursor.insertBlock(QTextBlockFormat())
            cursor.insertText(footer, self._footer_format)
            if at_end:
                bar.setValue(bar.maximum())

    def scroll_to_message(self, message_id: str) -> None:
        """Bring a message's first line to the top of the view."""
        position = self._starts.get(message_id)
        if position is None:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(position)
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())  # then back up: the message lands at the top
        self.setTextCursor(cursor)
        self.ensureCursorVisible()

    def last_message_text(self) -> str:
        cursor = self._end_cursor()
        if self._body_end is not None:
            cursor.setPosition(self._body_end)
        cursor.setPosition(self._body_start, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n")

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _scroll_to_end(self) -> None:
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())


def message_footer(message: Message) -> str:
    parts = []
    record = message.generation
    if record is not None:
        if record.model_file:
            parts.append(Path(record.model_file).stem)
        if record.completion_tokens:
            parts.append(f"{record.completion_tokens} tokens")
            parts.append(f"{record.tokens_per_s:.1f} tok/s")
            parts.append(f"first token {record.ttft_s:.2f} s")
    if message.incomplete:
        parts.append("stopped" if record and record.stop_reason == "user" else "incomplete")
    return " · ".join(parts)
