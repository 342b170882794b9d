"""Following the end of the chat as its text grows, unless the reader scrolled up: then "↓ Latest",
in a strip of its own under the text, so the button never covers a line."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QToolButton


class FollowEnd(QObject):
    def __init__(self, view: QAbstractScrollArea) -> None:
        super().__init__(view)
        self.view = view
        self.at_end = True  # follow the end as the text grows, unless the user scrolled up
        self.button = QToolButton(view)
        self.button.setObjectName("jumpToLatest")
        self.button.setText("↓ Latest")
        self.button.setToolTip("Jump to the latest message")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self.scroll_to_end)
        self.button.hide()
        bar = view.verticalScrollBar()
        bar.valueChanged.connect(self.remember_position)
        bar.rangeChanged.connect(self._keep_end)

    def place_button(self) -> None:
        """In the strip left free under the text while it shows (call when the view is resized)."""
        button, viewport = self.button, self.view.viewport()
        button.adjustSize()
        button.move(viewport.x() + viewport.width() - button.width() - 12,
                    viewport.y() + viewport.height() + (self._strip() - button.height()) // 2)

    def _strip(self) -> int:
        return self.button.sizeHint().height() + 8

    def remember_position(self, value: int) -> None:
        self.at_end = value >= self.view.verticalScrollBar().maximum() - 4
        self._show_button()

    def _show_button(self) -> None:
        show = not self.at_end
        if show == self.button.isHidden():
            self.button.setVisible(show)
            self.view.setViewportMargins(0, 0, 0, self._strip() if show else 0)
            if show:
                self.place_button()
                self.button.raise_()

    def _keep_end(self, _minimum: int, maximum: int) -> None:
        """The text grew (or its layout finished): stay at the end if the reader was there."""
        if self.at_end:
            self.view.verticalScrollBar().setValue(maximum)

    def scroll_to_end(self) -> None:
        self.at_end = True
        self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().maximum())
        self._show_button()
