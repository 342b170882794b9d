"""The actions of one message, floating over the chat where the mouse is.

Actions would clutter a chat if every message showed them all the time, so the view shows this
bar for the message under the mouse (and for the last answer when the mouse is elsewhere), with
the message's time and its version arrows as buttons large enough to hit. The same actions are in
the view's context menu, for the keyboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMenu, QToolButton, QWidget

from app.core.conversations.conversation import Message
from app.ui.chat.message_footer import message_time

if TYPE_CHECKING:
    from app.ui.chat.chat_view import ChatView

ACTION_NAMES = {"previous": "‹", "next": "›", "continue": "Continue", "edit": "Edit",  # in the order shown
                "regenerate": "Regenerate", "copy": "Copy", "copy-plain": "Copy text", "delete": "Delete"}
MENU_NAMES = {**ACTION_NAMES, "previous": "Previous version", "next": "Next version"}
_TIPS = {"previous": "Show the previous version", "next": "Show the next version",
         "continue": "Let the model go on writing this answer", "edit": "Edit this message and send it again",
         "copy": "Copy as Markdown", "copy-plain": "Copy as plain text",
         "regenerate": "Write a new answer (this one stays as a version)",
         "delete": "Delete this message and everything after it"}
_ACTIONS = {"user": ("edit", "copy", "delete"),
            "assistant": ("regenerate", "copy", "copy-plain", "delete"), "system": ("copy",)}
ARROW_SIZE = 28  # px: the version arrows are buttons a hand can hit


def actions_for(message: Message) -> tuple[str, ...]:
    """What can be done to a message, in the order offered (versions aside)."""
    actions = _ACTIONS.get(message.role, ("copy",))
    return ("continue", *actions) if message.role == "assistant" and message.incomplete else actions


class MessageActionsBar(QFrame):
    triggered = Signal(str, str)  # action, message id: as the view's action links say it

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("messageActions")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.message_id = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 1, 2, 1)
        layout.setSpacing(0)
        self.time_label = QLabel(self)
        self.time_label.setObjectName("messageTime")
        layout.addWidget(self.time_label)
        layout.addSpacing(6)
        self.buttons = {action: self._button(action) for action in ACTION_NAMES}
        self.version_label = QLabel(self)
        for widget in (self.buttons["previous"], self.version_label, self.buttons["next"]):
            layout.addWidget(widget)
        for action in list(ACTION_NAMES)[2:]:
            layout.addWidget(self.buttons[action])

    def _button(self, action: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(ACTION_NAMES[action])
        button.setToolTip(_TIPS[action])
        button.setAutoRaise(True)
        button.clicked.connect(lambda _=False: self.triggered.emit(action, self.message_id))
        if action in ("previous", "next"):
            font = QFont(button.font())
            font.setPointSizeF(font.pointSizeF() * 1.4)
            button.setFont(font)
            button.setMinimumSize(ARROW_SIZE, ARROW_SIZE)
        return button

    def show_message(self, message: Message, version: tuple[int, int] | None) -> None:
        """Offer `message`'s actions; version is (its number, how many) when it has other versions."""
        self.message_id = message.id
        short, full = message_time(message.created)
        self.time_label.setText(short)
        self.time_label.setToolTip(f"Written {full}")
        offered = actions_for(message)
        for action, button in self.buttons.items():
            button.setVisible(action in offered)
        for widget in (self.buttons["previous"], self.version_label, self.buttons["next"]):
            widget.setVisible(version is not None)
        if version is not None:
            number, count = version
            self.version_label.setText(f"{number}/{count}")
            self.buttons["previous"].setEnabled(number > 1)
            self.buttons["next"].setEnabled(number < count)
        self.adjustSize()

    def offered(self) -> list[str]:
        """The actions shown now, left to right (versions as "previous" and "next")."""
        return [action for action, button in self.buttons.items() if not button.isHidden()]


class MessageActions(QObject):
    """Puts the bar over the message under the mouse, else over the last answer; never over a
    message being written. The view says which message is where."""

    def __init__(self, view: ChatView) -> None:
        super().__init__(view)
        self.view = view
        self.hovered: str | None = None  # the id of the message under the mouse
        self.bar = MessageActionsBar(view.viewport())
        self.bar.triggered.connect(view.action_requested)
        self.bar.hide()
        view.viewport().installEventFilter(self)
        view.verticalScrollBar().valueChanged.connect(lambda _value: self.place(refresh=False))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind == QEvent.Type.MouseMove:
            self._hover(self.view.message_at(event.position().toPoint()))
        elif kind == QEvent.Type.Leave:  # not sent when the mouse goes onto the bar, a child
            self._hover(None)
        elif kind == QEvent.Type.Resize:
            self.place(refresh=False)
        return False

    def _hover(self, message_id: str | None) -> None:
        if message_id != self.hovered:
            self.hovered = message_id
            self.place()

    def place(self, refresh: bool = True) -> None:
        """Show the bar where it belongs now (refresh: the message may have changed)."""
        view, bar = self.view, self.bar
        message = view.shown_message(self.hovered)
        if message is None:
            last = view.last_shown()
            message = last if last is not None and last.role == "assistant" else None
        if message is None or message.id == view.writing:
            bar.hide()
            return
        if refresh or bar.message_id != message.id:
            bar.show_message(message, view.version_of(message))
        top, bottom = view.name_line(message.id)
        bar.move(view.viewport().width() - bar.width() - 6, int(max(top, bottom - bar.height())))
        bar.show()
        bar.raise_()

    def add_to_menu(self, menu: QMenu, message: Message | None) -> None:
        """The message's actions, after what the menu has: the way to them without a mouse."""
        if message is None or message.id == self.view.writing:
            return
        menu.addSeparator()
        version = self.view.version_of(message)
        for action in (("previous", "next") if version else ()) + actions_for(message):
            item = menu.addAction(MENU_NAMES[action])
            item.setObjectName(action)
            if version and (action, version[0]) in (("previous", 1), ("next", version[1])):
                item.setEnabled(False)
            item.triggered.connect(lambda _=False, a=action: self.view.action_requested.emit(a, message.id))
