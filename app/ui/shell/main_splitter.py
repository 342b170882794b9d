"""The window's three columns: conversations, the chat, the side panels (sampling, system prompt,
model). The chat gets the space: a wider window widens the chat, and a narrow one folds the side
panels away before the chat gets narrow (the user can drag them out again). Sizes restored from the last
session are kept as the user left them until the window's width changes."""

from __future__ import annotations

from PySide6.QtWidgets import QSplitter, QWidget

CHAT_WIDTH = 480  # narrower than this, the chat column's meter and composer get cramped
LIST_WIDTH = 220  # the conversation list's width when the side panels fold
SIDE_WIDTH = 300  # the side panels' width when they unfold again


class MainSplitter(QSplitter):
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

    def side_folded(self) -> bool:
        return self.sizes()[2] == 0

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
        list_width, chat_width, side_width = self.sizes()
        total = list_width + chat_width + side_width
        side_minimum = max(self.widget(2).minimumSizeHint().width(), SIDE_WIDTH)
        if side_width and chat_width < CHAT_WIDTH:
            list_width = min(max(list_width, LIST_WIDTH), total // 4)
            self.setSizes([list_width, total - list_width, 0])
            self.folded = True
        elif self.folded and not side_width and total - list_width - side_minimum >= CHAT_WIDTH:
            self.setSizes([list_width, total - list_width - side_minimum, side_minimum])
            self.folded = False
