"""Issue 12, the screen people expect, around the chat: side panels that fold away (and stay as the user
left them), the window title that follows the open chat, the text size applied to the whole window, and
a download that goes on in the status bar once its dialog is closed."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.conversations.conversation import Conversation
from app.ui.main_window import MainWindow
from tests.core.test_hub import gguf_bytes
from tests.ui.conftest import open_window, seed_store

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
REPO, FILE = "someone/Tiny-Llama-GGUF", "Tiny-Llama-Q4_K_M.gguf"


def chat(title: str) -> Conversation:
    conversation = Conversation(title=title, titled_by_user=True)
    conversation.append("user", "hello")
    return conversation


def test_the_chat_list_and_the_side_panel_fold_away_and_stay_so(qtbot) -> None:
    window = open_window(qtbot, 1200, 760)
    splitter, bar = window.splitter, window.top_bar
    qtbot.waitUntil(lambda: splitter.sizes()[2] > 0, timeout=5_000)
    chat_width = splitter.sizes()[1]
    assert window.show_side_action.isChecked() and bar.side_button.isChecked()
    qtbot.keyClick(window, Qt.Key.Key_L, CTRL_SHIFT)  # View ▸ Show chat list
    assert not window.conversation_list.isVisible() and not bar.list_button.isChecked()
    qtbot.mouseClick(bar.side_button, Qt.MouseButton.LeftButton)
    assert not window.side_tabs.isVisible() and not window.show_side_action.isChecked()
    qtbot.waitUntil(lambda: splitter.sizes()[1] > chat_width + 400, timeout=5_000)  # the chat got the room
    window.resize(1400, 800)
    qtbot.waitUntil(lambda: window.width() == 1400, timeout=5_000)
    assert not window.side_tabs.isVisible()  # room enough, but the user folded it
    window.close()
    again = open_window(qtbot, 1200, 760)
    assert not again.conversation_list.isVisible() and not again.side_tabs.isVisible()
    assert not again.show_list_action.isChecked() and not again.top_bar.side_button.isChecked()
    qtbot.mouseClick(again.top_bar.list_button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(again, Qt.Key.Key_P, CTRL_SHIFT)  # View ▸ Show side panel
    assert again.conversation_list.isVisible() and again.side_tabs.isVisible()
    qtbot.waitUntil(lambda: again.splitter.sizes()[0] > 0 and again.splitter.sizes()[2] >= 250, timeout=5_000)
    again.close()


def test_a_side_panel_folded_for_want_of_room_is_unchecked_and_the_user_can_unfold_it(qtbot) -> None:
    window = open_window(qtbot, 800, 600)
    splitter = window.splitter
    qtbot.waitUntil(lambda: sum(splitter.sizes()) > 700 and splitter.sizes()[2] == 0, timeout=5_000)
    assert not window.show_side_action.isChecked() and not window.top_bar.side_button.isChecked()
    window.show_side_action.trigger()  # the user wants it anyway
    qtbot.waitUntil(lambda: splitter.sizes()[2] >= 250, timeout=5_000)
    assert window.show_side_action.isChecked() and window.top_bar.side_button.isChecked()
    window.close()


def test_the_window_title_follows_the_open_chat_and_its_renames(qtbot) -> None:
    window = open_window(qtbot)
    assert window.windowTitle() == "New chat — Llamadesk"
    trip, other = chat("Trip to Lisbon"), chat("Other")
    seed_store(window, trip, other)
    window.chat.open_conversation(trip.id)
    assert window.windowTitle() == "Trip to Lisbon — Llamadesk"
    window.conversations.rename(trip.id, "Trip to Porto")
    assert window.windowTitle() == "Trip to Porto — Llamadesk"
    window.chat.open_conversation(other.id)
    assert window.windowTitle() == "Other — Llamadesk"
    window.close()


def test_the_text_size_applies_to_the_whole_window(qtbot) -> None:
    window = open_window(qtbot)
    seed_store(window, chat("Llamas"))
    listing = window.conversation_list.list
    heading = listing.item(0)
    widgets = (window.composer, listing, window.sampling_panel, window.system_prompt_panel,
               window.status_bar.state_label)
    before = [w.font().pointSizeF() for w in widgets]
    heading_before = heading.font().pointSizeF()
    composer_before = window.composer.minimumHeight()
    for _ in range(3):
        qtbot.keyClick(window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    size = window.chat_view.text_size()
    assert [w.font().pointSizeF() for w in widgets] == [size] * len(widgets) and size > max(before)
    assert window.composer.minimumHeight() > composer_before  # still three lines of the bigger text
    assert heading.font().pointSizeF() > heading_before and heading.font().bold()
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert [w.font().pointSizeF() for w in widgets] == before
    window.close()


def test_a_download_goes_on_in_the_status_bar_and_reopens_its_dialog(qtbot, tmp_path, fake_hub) -> None:
    fake_hub.add_repo(REPO, {FILE: gguf_bytes(tmp_path, FILE)})
    fake_hub.slow = 200_000
    window: MainWindow = open_window(qtbot)
    window.models.open_downloads()
    dialog = window.models.downloads
    dialog.start_download(REPO, FILE)
    with qtbot.waitSignal(dialog.task.progress, check_params_cb=lambda p: p.done > 0, timeout=10_000):
        pass
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    indicator = window.status_bar.download_button
    assert not dialog.isVisible() and indicator.isVisible()
    with qtbot.waitSignal(dialog.task.progress, timeout=10_000):
        pass
    assert indicator.text().startswith(f"Downloading {FILE}: ") and indicator.text().endswith(" %")
    qtbot.mouseClick(indicator, Qt.MouseButton.LeftButton)
    assert dialog.isVisible()
    with qtbot.waitSignal(dialog.task.failed, timeout=5_000):
        dialog.cancel_download()
    assert not indicator.isVisible() and "cancelled" in window.state_label.text()
    window.close()
