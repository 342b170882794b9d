"""The column on the left: search box, "New chat", conversations grouped by date.

It observes the Conversations session (the list, search results) and calls its intents (rename,
pin, duplicate, delete, search); choosing a conversation or a search hit is for the chat to open.
A new chat is listed at once, as "New chat" at the top, though it is saved only with its first
message (leaving it empty drops it from the list again).
"""

from __future__ import annotations

import difflib
import html
import time
from datetime import date, datetime, timedelta

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QIcon, QKeyEvent, QKeySequence, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.core.common.text import plural
from app.core.conversations.conversation import ConversationSummary
from app.core.conversations.search import MATCH_END, MATCH_START, SearchHit
from app.session.conversations import Conversations

ID_ROLE = Qt.ItemDataRole.UserRole
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_DELAY_MS = 150
NEW_CHAT = "New chat"  # the row of the chat shown that is not saved yet


def date_group(timestamp: float, today: date | None = None) -> str:
    today = today or date.today()
    day = datetime.fromtimestamp(timestamp).date()
    if day >= today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    if day > today - timedelta(days=7):
        return "Previous 7 days"
    return "Older"


class ConversationList(QWidget):
    new_requested = Signal()
    selected = Signal(str)  # conversation id
    result_chosen = Signal(str, object, str)  # conversation id, message id or None, the query

    def __init__(self, conversations: Conversations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conversations = conversations
        self._current_id: str | None = None  # the conversation the chat shows
        self.search_box = QLineEdit()
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search all chats (Ctrl+K)")
        self.search_box.setClearButtonEnabled(True)
        self.new_button = QPushButton("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.list = _ListWithDeleteKey()
        self.list.setObjectName("conversationList")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)  # F2
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        # A long title ends in "…" (the tooltip has it whole): no horizontal scroll bar.
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setItemDelegate(_VisibleWidthDelegate(self.list))
        self.results = QListWidget()
        self.results.setObjectName("searchResults")
        self.results.setWordWrap(True)
        self.no_results = QLabel("No matches")
        self.no_results.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        for widget in (self.list, self.results, self.no_results):
            self.stack.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 0, 6)
        layout.addWidget(self.search_box)
        layout.addWidget(self.new_button)
        layout.addWidget(self.stack)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(lambda: conversations.search(self.query()))
        self.search_box.textChanged.connect(self._on_query_changed)
        self.new_button.clicked.connect(self.new_requested)
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_edited)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.results.itemActivated.connect(self._on_result_chosen)
        self.results.itemClicked.connect(self._on_result_chosen)
        self.list.delete_pressed.connect(self._delete_current)
        self._summaries: dict[str, ConversationSummary] = {}
        self._rows: list[tuple[str, str | None, bool]] = []  # shown: (text, id or None, editable)
        self._items: dict[str, QListWidgetItem] = {}  # conversation id -> its row
        self._answering: set[str] = set()  # chats being answered (a remote answer goes on in the background)
        self._heading_font = heading_font(self.font())
        self.list.setUniformItemSizes(True)  # a relayout of thousands of rows costs no more than one
        self.list.viewport().installEventFilter(self)
        self.search_box.installEventFilter(self)
        conversations.changed.connect(self.refresh)
        conversations.search_finished.connect(self.show_results)
        self.refresh()

    def query(self) -> str:
        return self.search_box.text().strip()

    # -- the list ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        self.set_conversations(self.conversations.summaries, self._current_id)

    def _with_new_chat(self, summaries: list[ConversationSummary],
                       current_id: str | None) -> list[ConversationSummary]:
        """The list with the chat shown, when it is not saved yet, at the top (after pinned ones)."""
        if not current_id or any(s.id == current_id for s in summaries):
            return summaries
        now = time.time()
        new = ConversationSummary(current_id, NEW_CHAT, now, now, False, 0)
        at = next((i for i, s in enumerate(summaries) if not s.pinned), len(summaries))
        return summaries[:at] + [new] + summaries[at:]

    def set_conversations(self, summaries: list[ConversationSummary], current_id: str | None) -> None:
        """Show the list, changing only the rows that differ from what is shown (a chat that
        moves to the top after an answer is two rows, not the whole list)."""
        self._summaries = {s.id: s for s in summaries}
        self._current_id = current_id
        today = date.today()
        rows, group = [], None
        for summary in self._with_new_chat(summaries, current_id):
            heading = "Pinned" if summary.pinned else date_group(summary.updated, today)
            if heading != group:
                group = heading
                rows.append((heading, None, False))
            rows.append((summary.title, summary.id, summary.id in self._summaries))  # a new chat is not
        self.list.blockSignals(True)
        matcher = difflib.SequenceMatcher(None, self._rows, rows, autojunk=False)
        for op, old_start, old_end, new_start, new_end in reversed(matcher.get_opcodes()):
            if op == "equal":
                continue
            for row in range(old_end - 1, old_start - 1, -1):
                item = self.list.takeItem(row)
                self._items.pop(item.data(ID_ROLE), None)
            for offset, row in enumerate(range(new_start, new_end)):
                self.list.insertItem(old_start + offset, self._make_item(*rows[row]))
        self._rows = rows
        self.list.setCurrentItem(self._items.get(current_id) if current_id else None)
        self.list.blockSignals(False)

    def _make_item(self, text: str, conversation_id: str | None, editable: bool) -> QListWidgetItem:
        item = QListWidgetItem(text)
        if conversation_id is None:  # a date heading
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            item.setFont(self._heading_font)
            return item
        item.setData(ID_ROLE, conversation_id)
        self._mark(item, conversation_id in self._answering)
        if editable:  # a new chat gets its title with its first message
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self._items[conversation_id] = item
        return item

    def select(self, conversation_id: str) -> None:
        """Mark the conversation shown, without rebuilding the list (or emitting `selected`); a new
        chat comes in as "New chat", and an empty one left goes."""
        shown_new = self._current_id is not None and self._current_id not in self._summaries
        if shown_new or conversation_id not in self._summaries:
            self.set_conversations(self.conversations.summaries, conversation_id)
            return
        self._current_id = conversation_id
        self.list.blockSignals(True)
        self.list.setCurrentItem(self.item_for(conversation_id))
        self.list.blockSignals(False)

    def mark_answering(self, conversation_ids: set[str]) -> None:
        """Chats being answered carry a dot, so one answered in the background is seen to be."""
        for conversation_id in self._answering ^ conversation_ids:
            if (item := self._items.get(conversation_id)) is not None:
                self._mark(item, conversation_id in conversation_ids)
        self._answering = set(conversation_ids)

    def tooltip_for(self, item: QListWidgetItem) -> str:
        """Its title, how many messages it has (counted when shown), and whether it is being answered."""
        conversation_id = item.data(ID_ROLE)
        saved = conversation_id in self._summaries
        count = self.conversations.message_count(conversation_id) if saved else None
        counted = "" if count is None else f"\n{plural(count, 'message')}"
        answering = "\nBeing answered…" if conversation_id in self._answering else ""
        return f"{item.text()}{counted}{answering}"

    def _mark(self, item: QListWidgetItem, answering: bool) -> None:
        item.setData(Qt.ItemDataRole.DecorationRole, answering_dot(self.palette()) if answering else None)

    def item_for(self, conversation_id: str) -> QListWidgetItem | None:
        return self._items.get(conversation_id)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        """The window's text size changed: the date headings follow."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._heading_font = heading_font(self.font())
            for row in range(self.list.count()):
                item = self.list.item(row)
                if item.data(ID_ROLE) is None:
                    item.setFont(self._heading_font)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        """A conversation's tooltip: its title and how many messages it has, counted when shown."""
        if watched is self.search_box and self._is_escape(event) and self.search_box.text():
            if event.type() == QEvent.Type.KeyPress:  # Esc clears the search: all chats again
                self.search_box.clear()
            event.accept()  # before the window's Esc (Stop the answer) takes it
            return True
        if watched is self.list.viewport() and event.type() == QEvent.Type.ToolTip:
            item = self.list.itemAt(event.pos())
            if item is not None and item.data(ID_ROLE):
                QToolTip.showText(event.globalPos(), self.tooltip_for(item), self.list.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().eventFilter(watched, event)

    @staticmethod
    def _is_escape(event: QEvent) -> bool:
        return event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) \
            and event.key() == Qt.Key.Key_Escape

    def rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(ID_ROLE) in self._summaries:
            self.list.editItem(item)

    def _on_current_changed(self, item: QListWidgetItem | None, _previous) -> None:
        if item is not None and item.data(ID_ROLE):
            self.selected.emit(item.data(ID_ROLE))

    def _on_item_edited(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(ID_ROLE)
        summary = self._summaries.get(conversation_id)
        title = " ".join(item.text().split())
        if summary is None:
            return
        if not title:  # an empty title is not a title: put the old one back
            self.list.blockSignals(True)
            item.setText(summary.title)
            self.list.blockSignals(False)
        elif title != summary.title:
            # Later: the item view is still inside its edit; rebuilding the list now would
            # delete the item under it.
            QTimer.singleShot(0, lambda: self.conversations.rename(conversation_id, title))

    def _delete_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(ID_ROLE):
            self.conversations.delete(item.data(ID_ROLE))

    def _context_menu(self, position) -> None:
        item = self.list.itemAt(position)
        if item is None or item.data(ID_ROLE) not in self._summaries:  # a heading, or a new chat
            return
        conversation_id = item.data(ID_ROLE)
        pinned = self._summaries[conversation_id].pinned
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Unpin" if pinned else "Pin",
                       lambda: self.conversations.set_pinned(conversation_id, not pinned))
        menu.addAction("Duplicate", lambda: self.conversations.duplicate(conversation_id))
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.conversations.delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(position))

    # -- search -------------------------------------------------------------------------------------

    def _on_query_changed(self, text: str) -> None:
        if text.strip():
            self._search_timer.start()
        else:
            self._search_timer.stop()
            self.stack.setCurrentWidget(self.list)

    def show_results(self, query: str, hits: list[SearchHit]) -> None:
        if query != self.query():
            return  # the user typed on; a newer search is coming
        self.results.clear()
        for hit in hits:
            item = QListWidgetItem(self.results)
            item.setData(ID_ROLE, hit.conversation_id)
            item.setData(MESSAGE_ROLE, hit.message_id)
            where = "in the title" if hit.message_id is None else highlight(hit.snippet)
            label = QLabel(f"<b>{html.escape(hit.title)}</b><br>{where}")
            label.setWordWrap(True)
            label.setContentsMargins(4, 3, 4, 5)
            width = self.results.viewport().width() - 4
            item.setSizeHint(QSize(width, label.heightForWidth(width)))
            self.results.setItemWidget(item, label)
        self.stack.setCurrentWidget(self.results if hits else self.no_results)

    def _on_result_chosen(self, item: QListWidgetItem) -> None:
        self.result_chosen.emit(item.data(ID_ROLE), item.data(MESSAGE_ROLE), self.query())


class _VisibleWidthDelegate(QStyledItemDelegate):
    """Rows are drawn within the visible width, so a long title is elided rather than cut off."""

    def initStyleOption(self, option: QStyleOptionViewItem, index) -> None:  # noqa: N802 - Qt's name
        super().initStyleOption(option, index)
        rect = option.rect
        rect.setRight(min(rect.right(), self.parent().viewport().rect().right()))
        option.rect = rect


class _ListWithDeleteKey(QListWidget):
    delete_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.matches(QKeySequence.StandardKey.Delete) or event.key() == Qt.Key.Key_Backspace:
            self.delete_pressed.emit()
            return
        super().keyPressEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """A click that opened a chat may have moved the rows (the empty "New chat" row goes): Qt
        then selects the row that slid under the pointer; the chat opened stays the one marked."""
        super().mouseReleaseEvent(event)
        current = self.currentItem()
        if current is not None and self.selectedItems() != [current]:
            self.blockSignals(True)
            self.setCurrentItem(current)
            self.blockSignals(False)


def answering_dot(palette: QPalette) -> QIcon:
    """A small dot in the highlight colour."""
    pixmap = QPixmap(12, 12)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
    painter.drawEllipse(3, 3, 6, 6)
    painter.end()
    return QIcon(pixmap)


def heading_font(font: QFont) -> QFont:
    """A date heading's font: bold, a point smaller than the list's."""
    heading = QFont(font)
    heading.setBold(True)
    heading.setPointSizeF(max(heading.pointSizeF() - 1, 7))
    return heading


def highlight(snippet: str) -> str:
    """Escape a snippet and mark its matches in bold."""
    text = html.escape(" ".join(snippet.split()))
    return text.replace(MATCH_START, "<b>").replace(MATCH_END, "</b>")
