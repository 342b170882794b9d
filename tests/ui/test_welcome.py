"""Issue 12, the screen people expect: a first start and an empty chat say what to do (starter prompts
with a model; "Download a model" and "Open a model file" with none), and a new chat is listed at once."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.conversations.conversation import Conversation
from app.core.models import library_files
from app.ui.chat.welcome import NO_MODELS, STARTERS, WITH_MODEL
from app.ui.conversations.conversation_list import NEW_CHAT
from app.ui.main_window import MainWindow
from tests.ui.conftest import open_window, seed_store


def welcome_shown(window: MainWindow) -> bool:
    return window.chat_panel.stack.currentWidget() is window.welcome and window.welcome.isVisible()


def rows(window: MainWindow) -> list[tuple[str, str]]:
    listing = window.conversation_list.list
    return [(listing.item(i).text(), listing.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(listing.count())]


def test_a_first_start_without_any_model_offers_to_download_or_open_one(qtbot, monkeypatch, fake_hub) -> None:
    monkeypatch.setattr(library_files, "default_model_path", lambda: None)  # no embedded model either
    window = open_window(qtbot)
    welcome = window.welcome
    qtbot.waitUntil(lambda: NO_MODELS in welcome.heading.text(), timeout=30_000)
    assert welcome_shown(window) and not window.chat_view.isVisible()
    assert welcome.download_button.isVisible() and welcome.open_button.isVisible()
    assert not welcome.starters.isVisible()
    qtbot.mouseClick(welcome.download_button, Qt.MouseButton.LeftButton)
    assert window.models.downloads is not None and window.models.downloads.isVisible()
    window.models.downloads.close()
    window.close()


def test_an_empty_chat_offers_starter_prompts_until_its_first_message(qtbot, window) -> None:
    welcome = window.welcome
    assert welcome_shown(window) and WITH_MODEL in welcome.heading.text()
    assert welcome.starters.isVisible() and not welcome.download_button.isVisible()
    assert window.minimumSizeHint().width() <= 800, "the suggestions widen the window past an 800 px screen"
    qtbot.mouseClick(welcome.starter_buttons[1], Qt.MouseButton.LeftButton)
    assert window.composer.toPlainText() == STARTERS[1] and window.composer.hasFocus()
    window.sampling_panel.rows["max_tokens"].spin.setValue(8)
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)
        assert not welcome_shown(window) and window.chat_view.isVisible()
    assert STARTERS[1] in window.chat_view.toPlainText()
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert welcome_shown(window)
    answered = window.conversation_list.list.item(2)  # under the new chat's row
    window.conversation_list.list.setCurrentItem(answered)
    assert not welcome_shown(window) and STARTERS[1] in window.chat_view.toPlainText()


def test_a_new_chat_is_listed_at_once_and_goes_if_left_empty(qtbot) -> None:
    window = open_window(qtbot)
    old = Conversation(title="Llamas", titled_by_user=True)
    old.append("user", "hello")
    seed_store(window, old)
    window.chat.open_conversation(old.id)
    assert rows(window) == [("Today", None), ("Llamas", old.id)]
    qtbot.mouseClick(window.conversation_list.new_button, Qt.MouseButton.LeftButton)
    new_id = window.chat.conversation.id
    assert rows(window) == [("Today", None), (NEW_CHAT, new_id), ("Llamas", old.id)]
    assert window.conversation_list.list.currentItem().text() == NEW_CHAT
    assert window.windowTitle() == "New chat — Llamadesk"
    window.conversation_list.list.setCurrentItem(window.conversation_list.item_for(old.id))
    assert window.chat.conversation.id == old.id and rows(window) == [("Today", None), ("Llamas", old.id)]
    assert window.windowTitle() == "Llamas — Llamadesk"
    window.close()
