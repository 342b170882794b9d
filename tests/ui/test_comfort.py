"""Shortcuts, text size, themes, and the window as it was left: restored at the next start."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from app.core.conversations.conversation import Conversation
from app.ui.main_window import MainWindow
from tests.ui.conftest import open_window, seed_store, send


def test_menus_list_the_shortcuts(qtbot) -> None:
    window = open_window(qtbot)
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString()
                 for menu in window.menuBar().findChildren(type(window.menuBar().actions()[0].menu()))
                 for a in menu.actions()}
    assert shortcuts["Stop the answer"] == "Esc"
    assert shortcuts["Copy the last answer"] == "Ctrl+Shift+C"
    assert shortcuts["Bigger text"] == "Ctrl+="
    assert shortcuts["Smaller text"] == "Ctrl+-"
    assert shortcuts["New chat"] == "Ctrl+N"
    assert shortcuts["Search chats…"] == "Ctrl+K"
    assert shortcuts["Export…"] == "Ctrl+E"


def test_ctrl_shift_c_copies_the_last_answer(qtbot, window) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(12)
    send(qtbot, window, "Say hi.")
    QApplication.clipboard().clear()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(window, Qt.Key.Key_C, ctrl_shift)
    answer = window.chat.conversation.thread()[-1]
    assert answer.role == "assistant" and answer.text
    assert QApplication.clipboard().text() == answer.text


def test_text_size_keys_change_the_chat_and_are_remembered(qtbot) -> None:
    window = open_window(qtbot)
    before = window.chat_view.text_size()
    qtbot.keyClick(window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    bigger = window.chat_view.text_size()
    assert bigger > before and window.composer.font().pointSizeF() == bigger
    qtbot.keyClick(window, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    chosen = window.chat_view.text_size()
    assert before < chosen < bigger
    window.close()
    again = open_window(qtbot)
    assert again.chat_view.text_size() == chosen


def test_dark_theme_applies_and_is_remembered(qtbot) -> None:
    window = open_window(qtbot)
    light_background = QApplication.palette().color(QPalette.ColorRole.Window).lightness()
    window.theme_actions["dark"].trigger()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert QApplication.palette().color(QPalette.ColorRole.Text).lightness() > 180
    assert window.chat_view._colors.dark
    window.close()
    again = open_window(qtbot)
    assert again.theme_actions["dark"].isChecked()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 80
    again.theme_actions["light"].trigger()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() > 150
    assert light_background > 150 or QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def test_geometry_splitter_and_last_conversation_are_restored(qtbot) -> None:
    window = open_window(qtbot)
    first, second = Conversation(title="First", titled_by_user=True), Conversation(title="Second",
                                                                               titled_by_user=True)
    first.append("user", "about the first")
    second.append("user", "about the second")
    seed_store(window, first, second)
    window.chat.open_conversation(first.id)
    window.resize(window.minimumSizeHint().width() + 5, 560)  # within the offscreen screen (800×600)
    size = window.size()
    assert size.height() == 560
    window.splitter.setSizes([200, 400, 160])
    sizes = window.splitter.sizes()
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    assert again.chat.conversation.id == first.id
    assert "about the first" in again.chat_view.toPlainText()
    assert again.size() == size
    assert again.splitter.sizes() == sizes


def test_a_bad_stored_preference_is_ignored(qtbot) -> None:
    from app.ui.shell.preferences import Preferences

    prefs = Preferences()
    prefs._set("chat/overflow_policy", "bogus")
    prefs._set("view/theme", "neon")
    prefs._set("view/text_size", "huge")
    window = MainWindow()  # starts, with the defaults, and says once what it set aside
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: QApplication.activeModalWidget() is not None, timeout=5_000)
    notice = QApplication.activeModalWidget()
    assert "window.ini.bad" in notice.text() and "'neon' is not a theme" in notice.text()
    notice.close()
    assert window.context_meter.current_policy() == "drop_oldest"
    assert window.theme_actions["system"].isChecked()
