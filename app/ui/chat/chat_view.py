"""The conversation as the user reads it.

Each message is a name line ("You", "Assistant"), its text (the user's in a tinted band, the
model's on the page) and a footer; the actions of the message under the mouse float over its name
line (message_actions_bar.py). Streaming appends plain text through one cursor: the cost of a
flush is the size of the new text, not of the message or the conversation. When the answer
ends, its text is replaced once by its rendered Markdown. Opening a conversation draws only its
last RECENT messages (a link at the top draws more), so a chat of thousands of messages opens
as fast as a short one.

Nothing is ever fetched: loadResource answers every image or stylesheet request with nothing,
and links open in the system browser only when clicked (http, https and mailto only).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QDesktopServices,
    QFont,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
    QTextFrameFormat,
)
from PySide6.QtWidgets import QMenu, QTextBrowser

from app.core.conversations.conversation import Conversation, Message
from app.ui.chat import thought_block
from app.ui.chat.editing_band import editing_band
from app.ui.chat.follow_end import FollowEnd
from app.ui.chat.message_actions_bar import MessageActions
from app.ui.chat.message_footer import insert_footer
from app.ui.shell.theme import LIGHT, Colors

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
USER_INDENT = 48  # px: the user's turns stand in from the left, in their tinted band
TURN_GAP = 18  # px above each message's name line
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
        self._editing: str | None = None  # the message being edited in the composer, marked
        self._opened_thoughts: set[str] = set()  # messages whose thought the reader opened
        self._thought = thought_block.GrowingThought()  # the streaming message's thought
        self._growing = QTextCursor(self.document())  # where streamed text goes (inside a user's band)
        self.writing: str | None = None  # the id of the message being written: no actions for it yet
        self._text_format = QTextCharFormat()
        self._set_formats()
        self.actions = MessageActions(self)  # the bar over the hovered message
        self.actions_bar = self.actions.bar
        self.follow_end = FollowEnd(self)
        self.jump_button = self.follow_end.button
        self.anchorClicked.connect(self._on_anchor)

    # -- look ---------------------------------------------------------------------------------------

    def _set_formats(self) -> None:
        self._footer_format = QTextCharFormat()
        self._footer_format.setForeground(QColor(self._colors.muted))
        self._footer_format.setProperty(QTextFormat.Property.FontSizeAdjustment, -1)  # follows text size
        self._notice_format = QTextCharFormat(self._footer_format)
        self._notice_format.setFontItalic(True)
        self._link_format = self._link(_EARLIER, small=False)
        self._label_format = QTextCharFormat(self._footer_format)  # "You", "Assistant": small, quiet
        self._label_format.setFontWeight(QFont.Weight.Bold)
        self._user_band = QTextFrameFormat()
        self._user_band.setBackground(QColor(self._colors.user_bg))
        self._user_band.setBorder(0)
        self._user_band.setPadding(10)
        self._user_band.setLeftMargin(USER_INDENT)

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
        self.follow_end.place_button()

    def follow(self, chat) -> None:
        """Draw what a ChatSession says happened; the session never calls the view."""
        chat.redrawn.connect(self._redraw)
        chat.scrolled_to.connect(self.scroll_to_message)
        chat.message_started.connect(self._start_message)
        chat.text_appended.connect(self.append_text)
        chat.thought_appended.connect(self.append_thought)
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
        root = self.document().rootFrame()  # room above the first name line for its actions bar
        page = root.frameFormat()
        page.setTopMargin(TURN_GAP // 2)
        root.setFrameFormat(page)
        self._starts.clear()
        self.follow_end.at_end = True
        cursor = self._end_cursor()
        self._growing, self.writing = QTextCursor(cursor), None
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
                if last_open and message.thought:  # an answer being continued
                    thought_block.insert_continued(cursor, message, self._colors,
                                                   message.id in self._opened_thoughts, self._thought)
                cursor.insertText(message.text, self._text_format)
            if not last_open:
                self.end_message(message, cursor, rendered=True)
        cursor.endEditBlock()
        self._versions = None
        self.setTextCursor(self._end_cursor())  # left in the first band, showing the view would go there
        self._mark_editing()
        self.follow_end.scroll_to_end()
        self.actions.place()

    def _on_anchor(self, url: QUrl) -> None:
        href = url.toString()
        if (thought_of := thought_block.message_of(href)) is not None:
            self.toggle_thought(thought_of)
        elif href.startswith("action:"):
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

    def toggle_thought(self, message_id: str) -> None:
        """Open or fold a message's thought: the conversation is drawn again (not while an answer
        streams: then at its next drawing), with that message at the top."""
        self._opened_thoughts ^= {message_id}
        if self._conversation is not None and self._body_end is not None:
            self.show_conversation(self._conversation, self._shown)
            self.scroll_to_message(message_id)

    def _insert_markdown(self, cursor: QTextCursor, message: Message) -> None:
        from app.core.chat.markdown_render import render_markdown  # markdown-it + Pygments: not at start

        thought_block.insert(cursor, message, self._colors, message.id in self._opened_thoughts)
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
        """A message's name line, then its body: the user's in a tinted band, the model's on the page."""
        cursor = cursor or self._end_cursor()
        self._starts[message_id] = cursor.position()
        name_line = QTextBlockFormat()  # its margins leave room for the actions bar
        name_line.setTopMargin(TURN_GAP)
        name_line.setBottomMargin(4)
        if role == "user":
            name_line.setLeftMargin(USER_INDENT)
        if self.document().isEmpty():
            cursor.setBlockFormat(name_line)
        else:
            cursor.insertBlock(name_line)
        cursor.insertText(ROLE_NAMES.get(role, role), self._label_format)
        if role == "user":
            cursor.insertFrame(self._user_band)
            cursor.setBlockFormat(QTextBlockFormat())
        else:
            cursor.insertBlock(QTextBlockFormat(), self._text_format)
        cursor.setCharFormat(self._text_format)
        self._body_start = cursor.position()
        self._body_end = None
        self._growing, self.writing = QTextCursor(cursor), message_id
        self._thought = thought_block.GrowingThought()
        if self._versions is None:  # streamed, not part of drawing a whole conversation
            self.actions.place()

    def append_thought(self, text: str) -> None:
        """Add a streamed thought to the growing message, open under "Thinking…"."""
        self._thought.append(self._growing, text, self._colors)

    def append_text(self, text: str) -> None:
        """Add streamed text to the growing message (after its thought, if it streamed one)."""
        if text:
            self._thought.close(self._growing)
            self._growing.insertText(text, self._text_format)

    def end_message(self, message: Message | None = None, cursor: QTextCursor | None = None,
                    rendered: bool = False) -> None:
        """Close the message with its footer: versions, Continue and how the answer was made.

        A streamed assistant answer (rendered=False) is replaced once by its rendered Markdown. The
        other actions are on the bar over the hovered message and in the context menu.
        """
        streamed = cursor is None
        cursor = cursor or QTextCursor(self._growing)
        if message is not None and message.role == "assistant" and not rendered:
            cursor.setPosition(self._body_start, QTextCursor.MoveMode.KeepAnchor)
            cursor.beginEditBlock()
            cursor.removeSelectedText()
            self._insert_markdown(cursor, message)
            cursor.endEditBlock()
            cursor = self._end_cursor()
        self._body_end = cursor.position()
        self.writing = None
        band = cursor.currentFrame()
        if band is not self.document().rootFrame():  # a user's band: its footer goes under it
            cursor.setPosition(band.lastPosition() + 1)
        if message is None:
            return
        footer = QTextBlockFormat()
        footer.setTopMargin(2)
        if message.role == "user":
            footer.setLeftMargin(USER_INDENT)
        if band is self.document().rootFrame():
            cursor.insertBlock(footer, self._footer_format)
        else:
            cursor.setBlockFormat(footer)
            cursor.setBlockCharFormat(self._footer_format)
        insert_footer(cursor, message, self.version_of(message), self._footer_format, self._link)
        if streamed:
            self.actions.place()

    def version_of(self, message: Message) -> tuple[int, int] | None:
        """(its number, how many) when the message has other versions."""
        if self._versions is not None:
            versions = self._versions.get(message.parent_id, [message])
        else:
            versions = self._conversation.versions(message) if self._conversation else [message]
        if len(versions) < 2:
            return None
        number = next(i for i, m in enumerate(versions) if m is message or m.id == message.id) + 1
        return number, len(versions)

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
        self.setExtraSelections(editing_band(self.document(), start, self._starts.values(),
                                             self._colors.notice_bg))

    def set_conversation(self, conversation: Conversation) -> None:
        """The conversation the streamed messages belong to (for their version arrows)."""
        self._conversation = conversation

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
        self.follow_end.remember_position(bar.value())

    def last_message_text(self) -> str:
        cursor = QTextCursor(self._growing)
        if self._body_end is not None:
            cursor.setPosition(self._body_end)
        cursor.setPosition(self._body_start, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n")

    # -- the actions of the hovered message --------------------------------------------------------

    def message_at(self, point: QPoint) -> str | None:
        """The id of the message drawn at a point of the viewport."""
        return self._message_at(self.cursorForPosition(point).position())

    def _message_at(self, position: int) -> str | None:
        owner, owner_start = None, -1
        for message_id, start in self._starts.items():
            if owner_start < start and (start < position or start == 0):
                owner, owner_start = message_id, start
        return owner

    def shown_message(self, message_id: str | None) -> Message | None:
        """The message, if it is drawn now."""
        if message_id is None or message_id not in self._starts or self._conversation is None:
            return None
        return self._conversation.find(message_id)

    def last_shown(self) -> Message | None:
        return self.shown_message(next(reversed(self._starts), None))

    def name_line(self, message_id: str) -> tuple[float, float]:
        """Where a message's name line is, top and bottom with its margins, in viewport pixels."""
        start = self._starts[message_id]
        block = self.document().findBlock(start)
        if start:
            block = block.next()
        line, margins = self.document().documentLayout().blockBoundingRect(block), block.blockFormat()
        scrolled = self.verticalScrollBar().value()
        top = max(0.0, line.top() - margins.topMargin())  # a document's first line has no top margin
        return top - scrolled, line.bottom() + margins.bottomMargin() - scrolled

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt's name
        menu = self.context_menu(event.pos(), event.reason() == QContextMenuEvent.Reason.Keyboard)
        menu.exec(event.globalPos())
        menu.deleteLater()

    def context_menu(self, point: QPoint, keyboard: bool = False) -> QMenu:
        """Copy and Select all, then the actions of the message at the point (or, from the keyboard,
        at the text cursor, which Tab moves from link to link): the actions without a mouse."""
        offset = QPoint(self.horizontalScrollBar().value(), self.verticalScrollBar().value())
        menu = self.createStandardContextMenu(point + offset)
        position = self.textCursor().position() if keyboard else self.cursorForPosition(point).position()
        self.actions.add_to_menu(menu, self.shown_message(self._message_at(position)))
        return menu

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor
