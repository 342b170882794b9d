"""The conversation as the user reads it.

Streaming appends plain text at the end of the document through one cursor: the cost of a
flush is the size of the new text, not of the message or the conversation. When the answer
ends, its text is replaced once by its rendered Markdown. Opening a conversation draws only its
last RECENT messages (a link at the top draws more), so a chat of thousands of messages opens
as fast as a short one.

Nothing is ever fetched: loadResource answers every image or stylesheet request with nothing,
and links open in the system browser only when clicked (http, https and mailto only).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import QTextBrowser, QTextEdit, QToolButton

from app.core.conversations.conversation import Conversation, Message
from app.ui.chat.message_footer import message_footer
from app.ui.shell.theme import LIGHT, Colors

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
RECENT = 60  # messages drawn when a conversation opens (30 turns); each click on "earlier" adds as many
_EARLIER = "llamadesk:earlier"
_OPENABLE = ("http", "https", "mailto")  # link schemes a click may hand to the system


class ChatView(QTextBrowser):
    action_requested = Signal(str, str)  # action ("regenerate", "edit", "copy", ...), message id
    link_opened = Signal(str)  # an outside link the user clicked, handed to the system browser

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setOpenLinks(False)  # links are never followed by the view itself
        self.setOpenExternalLinks(False)
        self.setReadOnly(True)
        self.resources_refused: list[str] = []  # what a message asked the view to load (nothing is)
        self._colors = LIGHT
        self._body_start = 0  # where the last message's text begins
        self._body_end: int | None = None  # where it ends; None while it grows
        self._starts: dict[str, int] = {}  # message id -> where it begins
        self._conversation: Conversation | None = None
        self._versions: dict[str | None, list[Message]] | None = None  # while a conversation is drawn
        self._shown = RECENT
        self._at_end = True  # follow the end as the text grows, unless the user scrolled up
        self._editing: str | None = None  # the message being edited in the composer, marked
        self._text_format = QTextCharFormat()
        self._role_format = QTextCharFormat()
        self._role_format.setFontWeight(QFont.Weight.Bold)
        self._set_formats()
        self.jump_button = QToolButton(self)
        self.jump_button.setObjectName("jumpToLatest")
        self.jump_button.setText("↓ Latest")
        self.jump_button.setToolTip("Jump to the latest message")
        self.jump_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.jump_button.clicked.connect(self._scroll_to_end)
        self.jump_button.hide()
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._remember_position)
        bar.rangeChanged.connect(self._keep_end)
        self.anchorClicked.connect(self._on_anchor)

    # -- look ---------------------------------------------------------------------------------------

    def _set_formats(self) -> None:
        self._footer_format = QTextCharFormat()
        self._footer_format.setForeground(QColor(self._colors.muted))
        self._footer_format.setProperty(QTextFormat.Property.FontSizeAdjustment, -1)  # follows text size
        self._notice_format = QTextCharFormat(self._footer_format)
        self._notice_format.setFontItalic(True)
        self._link_format = self._link(_EARLIER, small=False)

    def _link(self, href: str, small: bool = True) -> QTextCharFormat:
        link = QTextCharFormat()
        link.setAnchor(True)
        link.setAnchorHref(href)
        link.setForeground(QColor(self._colors.link))
        if small:
            link.setProperty(QTextFormat.Property.FontSizeAdjustment, -1)
        return link

    def set_colors(self, colors: Colors) -> None:
        """A new theme: formats and code highlighting follow; the conversation is drawn again."""
        self._colors = colors
        self._set_formats()
        if self._conversation is not None and self._body_end is not None:
            self.show_conversation(self._conversation, self._shown)

    def set_text_size(self, points: float) -> None:
        """Every part of the view scales with the document's font (footers are relative to it)."""
        font = self.document().defaultFont()
        font.setPointSizeF(points)
        self.document().setDefaultFont(font)

    def text_size(self) -> float:
        return self.document().defaultFont().pointSizeF()

    def loadResource(self, kind: int, url: QUrl):  # noqa: N802 - Qt's name
        """Images and stylesheets a message names are never loaded, local or remote."""
        self.resources_refused.append(url.toString())
        return None

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._place_jump_button()

    def _place_jump_button(self) -> None:
        """In the strip left free under the text while it shows: it never covers a line."""
        button, viewport = self.jump_button, self.viewport()
        button.adjustSize()
        button.move(viewport.x() + viewport.width() - button.width() - 12,
                    viewport.y() + viewport.height() + (self._jump_strip() - button.height()) // 2)

    def _jump_strip(self) -> int:
        return self.jump_button.sizeHint().height() + 8

    def follow(self, chat) -> None:
        """Draw what a ChatSession says happened; the session never calls the view."""
        chat.redrawn.connect(self._redraw)
        chat.scrolled_to.connect(self.scroll_to_message)
        chat.message_started.connect(self._start_message)
        chat.text_appended.connect(self.append_text)
        chat.message_finished.connect(self.end_message)
        chat.notice_inserted.connect(self.insert_notice_before)

    def _redraw(self, conversation: Conversation, open_last: bool) -> None:
        self.show_conversation(conversation, open_last=open_last)

    def _start_message(self, conversation: Conversation, role: str, message_id: str) -> None:
        self.set_conversation(conversation)
        self.begin_message(role, message_id)

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
        self._versions = {}  # each turn's versions, found once for the whole drawing
        for message in conversation.messages:
            self._versions.setdefault(message.parent_id, []).append(message)
        cursor.beginEditBlock()
        if hidden:
            cursor.insertText(f"Show {min(hidden, RECENT)} earlier messages ({hidden} hidden)",
                              self._link_format)
        for message in thread[hidden:]:
            self.begin_message(message.role, message.id, cursor)
            last_open = open_last and message is thread[-1]
            if message.role == "assistant" and not last_open:
                self._insert_markdown(cursor, message)
            else:
                cursor.insertText(message.text, self._text_format)
            if not last_open:
                self.end_message(message, cursor, rendered=True)
        cursor.endEditBlock()
        self._versions = None
        self._mark_editing()
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
        elif url.scheme().lower() in _OPENABLE:
            self.link_opened.emit(href)
            QDesktopServices.openUrl(url)

    def _insert_markdown(self, cursor: QTextCursor, message: Message) -> None:
        from app.core.chat.markdown_render import render_markdown  # markdown-it + Pygments: not at start

        if message.text:
            cursor.insertHtml(render_markdown(message.text, message.id, self._colors.dark).html)
            cursor.setCharFormat(self._text_format)

    def code_block(self, message_id: str, index: int) -> str:
        """The source of a message's index-th code block, as its Copy link promises."""
        from app.core.chat.markdown_render import render_markdown

        message = self._conversation.find(message_id) if self._conversation else None
        blocks = render_markdown(message.text, message_id).code_blocks if message else ()
        return blocks[index] if 0 <= index < len(blocks) else ""

    def insert_notice_before(self, message_id: str, text: str) -> None:
        """A line that is not a message, above one: e.g. that older turns were not sent with it."""
        start = self._starts.get(message_id)
        if start is None:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        before = self.document().characterCount()
        cursor.insertBlock(QTextBlockFormat())
        cursor.insertText(text, self._notice_format)
        grown = self.document().characterCount() - before
        self._starts = {k: v + grown if v > start or k == message_id else v for k, v in self._starts.items()}
        if self._body_start >= start:
            self._body_start += grown
        if self._body_end is not None and self._body_end >= start:
            self._body_end += grown

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

    def end_message(self, message: Message | None = None, cursor: QTextCursor | None = None,
                    rendered: bool = False) -> None:
        """Close the message with its footer: generation facts, versions and actions.

        A streamed assistant answer (rendered=False) is replaced once by its rendered Markdown.
        """
        cursor = cursor or self._end_cursor()
        if message is not None and message.role == "assistant" and not rendered:
            cursor.setPosition(self._body_start, QTextCursor.MoveMode.KeepAnchor)
            cursor.beginEditBlock()
            cursor.removeSelectedText()
            self._insert_markdown(cursor, message)
            cursor.endEditBlock()
            cursor = self._end_cursor()
        self._body_end = cursor.position()
        if message is None:
            return
        cursor.insertBlock(QTextBlockFormat())
        if self._versions is not None:
            versions = self._versions.get(message.parent_id, [message])
        else:
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

    def mark_editing(self, message_id: str | None) -> None:
        """Mark the message being edited in the composer with a band (None: no edit now)."""
        self._editing = message_id
        self._mark_editing()

    def editing_marked(self) -> tuple[int, int] | None:
        """Where the band is (start, end), if a message is marked."""
        marks = self.extraSelections()
        return (marks[0].cursor.selectionStart(), marks[0].cursor.selectionEnd()) if marks else None

    def _mark_editing(self) -> None:
        start = self._starts.get(self._editing) if self._editing else None
        if start is None:
            self.setExtraSelections([])
            return
        after = [p for p in self._starts.values() if p > start]
        cursor = QTextCursor(self.document())
        cursor.setPosition(start + 2 if start else 0)  # past the blank lines between messages
        end = min(after) + 1 if after else self.document().characterCount() - 1  # +1: the whole last line
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        band = QTextCharFormat()
        band.setBackground(QColor(self._colors.notice_bg))
        band.setProperty(QTextFormat.Property.FullWidthSelection, True)
        mark = QTextEdit.ExtraSelection()
        mark.cursor, mark.format = cursor, band
        self.setExtraSelections([mark])

    def set_conversation(self, conversation: Conversation) -> None:
        """The conversation the streamed messages belong to (for their version arrows)."""
        self._conversation = conversation

    def _insert_link(self, cursor: QTextCursor, text: str, action: str, message_id: str) -> None:
        cursor.insertText(text, self._link(f"action:{action}:{message_id}"))

    def scroll_to_message(self, message_id: str) -> None:
        """Bring a message's first line to the top of the view."""
        position = self._starts.get(message_id)
        if position is None and self._conversation is not None:  # behind "Show N earlier messages"
            thread = [m.id for m in self._conversation.thread()]
            if message_id in thread:
                self.show_conversation(self._conversation, shown=len(thread) - thread.index(message_id))
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
        self._show_jump_button()

    def _show_jump_button(self) -> None:
        show = not self._at_end
        if show == self.jump_button.isHidden():
            self.jump_button.setVisible(show)
            self.setViewportMargins(0, 0, 0, self._jump_strip() if show else 0)
            if show:
                self._place_jump_button()
                self.jump_button.raise_()

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
        self._show_jump_button()


_ACTIONS = {"user": ("edit", "copy", "delete"),
            "assistant": ("regenerate", "copy", "copy-plain", "delete"), "system": ("copy",)}
_ACTION_NAMES = {"edit": "Edit", "copy": "Copy", "copy-plain": "Copy text", "delete": "Delete",
                 "regenerate": "Regenerate", "continue": "Continue"}
