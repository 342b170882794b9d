"""The conversation as the user reads it.

Streaming appends text at the end of the document through one cursor: the cost of a flush is
the size of the new text, not of the message or the conversation. Opening a conversation draws
only its last RECENT messages (a link at the top draws more), so a chat of thousands of messages
opens as fast as a short one.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QColor, QFont, QTextBlockFormat, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextBrowser

from app.core.conversation import Conversation, Message

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
RECENT = 200  # messages drawn when a conversation opens; each click on "earlier" adds as many
_EARLIER = "llamadesk:earlier"


class ChatView(QTextBrowser):
    action_requested = Signal(str, str)  # action ("regenerate", "edit", "copy", ...), message id

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setOpenLinks(False)  # links are never followed by the view itself
        self.setReadOnly(True)
        self._body_start = 0  # where the last message's text begins
        self._body_end: int | None = None  # where it ends; None while it grows
        self._starts: dict[str, int] = {}  # message id -> where it begins
        self._conversation: Conversation | None = None
        self._shown = RECENT
        self._at_end = True  # follow the end as the text grows, unless the user scrolled up
        self._text_format = QTextCharFormat()
        self._role_format = QTextCharFormat()
        self._role_format.setFontWeight(QFont.Weight.Bold)
        self._footer_format = QTextCharFormat()
        self._footer_format.setForeground(QColor("#888888"))
        self._footer_format.setFontPointSize(max(self.font().pointSizeF() - 1.5, 7.0))
        self._link_format = _link_format(_EARLIER, self.font().pointSizeF())
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._remember_position)
        bar.rangeChanged.connect(self._keep_end)
        self.anchorClicked.connect(self._on_anchor)

    # -- whole conversations ----------------------------------------------------------------------

    def show_conversation(self, conversation: Conversation, shown: int = RECENT,
                          open_last: bool = False) -> None:
        """Draw the conversation's last `shown` messages, in one edit, and rest at its end.

        open_last leaves the last message without its footer, for text to stream into it.
        """
        self._conversation, self._shown = conversation, shown
        thread = conversation.thread()
        hidden = max(0, len(thread) - shown)
        self.clear()
        self._starts.clear()
        self._at_end = True
        cursor = self._end_cursor()
        cursor.beginEditBlock()
        if hidden:
            cursor.insertText(f"Show {min(hidden, RECENT)} earlier messages ({hidden} hidden)",
                              self._link_format)
        for message in thread[hidden:]:
            self.begin_message(message.role, message.id, cursor)
            cursor.insertText(message.text, self._text_format)
            if not (open_last and message is thread[-1]):
                self.end_message(message, cursor)
        cursor.endEditBlock()
        self._scroll_to_end()

    def _on_anchor(self, url: QUrl) -> None:
        href = url.toString()
        if href.startswith("action:"):
            _, action, message_id = href.split(":", 2)
            self.action_requested.emit(action, message_id)
        elif href == _EARLIER and self._conversation is not None:
            thread = self._conversation.thread()
            first_shown = thread[max(0, len(thread) - self._shown)].id
            self.show_conversation(self._conversation, self._shown + RECENT)
            self.scroll_to_message(first_shown)  # keep the reader's place

    # -- one growing message ----------------------------------------------------------------------

    def begin_message(self, role: str, message_id: str = "", cursor: QTextCursor | None = None) -> None:
        cursor = cursor or self._end_cursor()
        self._starts[message_id] = cursor.position()
        if not self.document().isEmpty():
            cursor.insertBlock(QTextBlockFormat())
            cursor.insertBlock(QTextBlockFormat())
        cursor.insertText(ROLE_NAMES.get(role, role), self._role_format)
        cursor.insertBlock(QTextBlockFormat(), self._text_format)
        self._body_start = cursor.position()
        self._body_end = None

    def append_text(self, text: str) -> None:
        """Add streamed text to the growing message."""
        if text:
            self._end_cursor().insertText(text, self._text_format)

    def end_message(self, message: Message | None = None, cursor: QTextCursor | None = None) -> None:
        """Close the message with its footer: generation facts, versions and actions."""
        cursor = cursor or self._end_cursor()
        self._body_end = cursor.position()
        if message is None:
            return
        cursor.insertBlock(QTextBlockFormat())
        versions = self._conversation.versions(message) if self._conversation else [message]
        if len(versions) > 1:
            index = next(i for i, m in enumerate(versions) if m is message or m.id == message.id)
            self._insert_link(cursor, "‹", "previous", message.id)
            cursor.insertText(f" {index + 1}/{len(versions)} ", self._footer_format)
            self._insert_link(cursor, "›", "next", message.id)
            cursor.insertText("   ", self._footer_format)
        actions = _ACTIONS[message.role]
        if message.role == "assistant" and message.incomplete:
            actions = ("continue", *actions)
        for action in actions:
            self._insert_link(cursor, _ACTION_NAMES[action], action, message.id)
            cursor.insertText("  ", self._footer_format)
        facts = message_footer(message)
        if facts:
            cursor.insertText("  " + facts, self._footer_format)

    def set_conversation(self, conversation: Conversation) -> None:
        """The conversation the streamed messages belong to (for their version arrows)."""
        self._conversation = conversation

    def _insert_link(self, cursor: QTextCursor, text: str, action: str, message_id: str) -> None:
        cursor.insertText(text, _link_format(f"action:{action}:{message_id}",
                                             self._footer_format.fontPointSize()))

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
        self._remember_position(bar.value())

    def last_message_text(self) -> str:
        cursor = self._end_cursor()
        if self._body_end is not None:
            cursor.setPosition(self._body_end)
        cursor.setPosition(self._body_start, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n")

    # -- following the end ------------------------------------------------------------------------

    def _remember_position(self, value: int) -> None:
        self._at_end = value >= self.verticalScrollBar().maximum() - 4

    def _keep_end(self, _minimum: int, maximum: int) -> None:
        """The text grew (or its layout finished): stay at the end if the reader was there."""
        if self._at_end:
            self.verticalScrollBar().setValue(maximum)

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _scroll_to_end(self) -> None:
        self._at_end = True
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())


_ACTIONS = {"user": ("edit", "copy", "delete"), "assistant": ("regenerate", "copy", "delete"),
            "system": ("copy",)}
_ACTION_NAMES = {"edit": "Edit", "copy": "Copy", "delete": "Delete", "regenerate": "Regenerate",
                 "continue": "Continue"}


def _link_format(href: str, point_size: float) -> QTextCharFormat:
    link = QTextCharFormat()
    link.setAnchor(True)
    link.setAnchorHref(href)
    link.setForeground(QColor("#2a6fdb"))
    if point_size > 0:
        link.setFontPointSize(point_size)
    return link


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
