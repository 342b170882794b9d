"""The window's three columns: conversations, the chat, the side panels (sampling, system prompt,
model). The chat gets the space: a wider window widens the chat, and a narrow one folds the side
panels away before the chat gets narrow (the user can drag them out again). Sizes restored from the last
session are kept as the user left them until the window's width changes.

The user can also fold the chat list and the side panels away (View ▸ Show chat list, Show side
panel): a panel hidden so stays hidden at any width, and its width goes to the chat."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QSplitter, QWidget

CHAT_WIDTH = 480  # narrower than this, the chat column's meter and composer get cramped
LIST_WIDTH = 220  # the conversation list's width when the side panels fold
SIDE_WIDTH = 300  # the side panels' width when they unfold again


class MainSplitter(QSplitter):
    side_shown = Signal(bool)  # the side panels appeared or went: the user's choice, a drag, or no room

    def __init__(self, conversations: QWidget, chat: QWidget, side: QWidget,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainSplitter")
        for widget in (conversations, chat, side):
            self.addWidget(widget)
        self.setStretchFactor(0, 0)
        self.setStretchFactor(1, 1)  # extra width goes to the chat
        self.setStretchFactor(2, 0)
        self.setCollapsible(0, False)
        self.setCollapsible(1, False)
        self.setSizes([LIST_WIDTH + 20, 680, SIDE_WIDTH - 20])
        self.folded = False  # whether the side panels were folded for want of room (not by the user)
        self._restored = False  # sizes the user left at the last close: kept while the window opens
        self._side_width = SIDE_WIDTH  # the side panels' width before the user hid them
        self._side_visible: bool | None = None  # as last announced on side_shown
        self.splitterMoved.connect(lambda *_: self._announce())

    def side_folded(self) -> bool:
        return self.sizes()[2] == 0

    def side_visible(self) -> bool:
        """Shown and not folded: what View ▸ Show side panel's check mark says."""
        return not self.widget(2).isHidden() and self.sizes()[2] > 0

    def set_list_shown(self, shown: bool) -> None:
        """The user's choice: the chat list's width goes to the chat, and comes back."""
        self.widget(0).setVisible(shown)

    def set_side_shown(self, shown: bool) -> None:
        """The user's choice: hidden stays hidden at any width; shown unfolds the panels now, even
        in a narrow window (a window made narrower folds them again)."""
        side = self.widget(2)
        list_width, chat_width, side_width = self.sizes()
        self.folded = False
        if not shown:
            self._side_width = side_width or self._side_width
            side.hide()
        else:
            width = max(side.minimumSizeHint().width(), self._side_width)
            side.show()
            self.setSizes([list_width, max(chat_width + side_width - width, 0), width])
        self._announce(shown)

    def restore_panels(self, show_list: bool, show_side: bool) -> None:
        """At start, as the user left them. Side panels that a narrow window had folded unfold once
        there is room."""
        self.widget(0).setVisible(show_list)
        self.widget(2).setVisible(show_side)
        self.folded = show_side and self.sizes()[2] == 0
        self._announce()

    def _announce(self, visible: bool | None = None) -> None:
        visible = self.side_visible() if visible is None else visible
        if visible != self._side_visible:
            self._side_visible = visible
            self.side_shown.emit(visible)

    def restoreState(self, state) -> bool:  # noqa: N802 - Qt's name
        self._restored = super().restoreState(state)
        return self._restored

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self.isVisible() or not self._restored:  # the first layout of restored sizes keeps them
            self.fit()

    def fit(self) -> None:
        """Fold the side panels when the chat would be narrower than CHAT_WIDTH; unfold them when
        there is room again, if it was this that folded them."""
        if self.widget(2).isHidden():  # the user hid them: nothing to fold or unfold
            return
        list_width, chat_width, side_width = self.sizes()
        total = list_width + chat_width + side_width
        side_minimum = max(self.widget(2).minimumSizeHint().width(), SIDE_WIDTH)
        if side_width and chat_width < CHAT_WIDTH:
            if not self.widget(0).isHidden():
                list_width = min(max(list_width, LIST_WIDTH), total // 4)
            self.setSizes([list_width, total - list_width, 0])
            self.folded = True
            self._announce(False)
        elif self.folded and not side_width and total - list_width - side_minimum >= CHAT_WIDTH:
            self.setSizes([list_width, total - list_width - side_minimum, side_minimum])
            self.folded = False
            self._announce(True)
