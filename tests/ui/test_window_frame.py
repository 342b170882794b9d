"""Issue 12, the window's frame, without a model: a search hit in another version (item 5), undo of a
deleted message (6), banners and the sampling panel's notes that close or leave with their chat (13),
the layout at 800×600 and elided titles (16), Esc in the search box (18), the next chat after
deleting the open one (20)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyle, QStyleOptionViewItem

from app.core.conversations.conversation import Conversation
from app.ui.main_window import MainWindow
from tests.ui.conftest import open_window, seed_store


def chat(title: str, *texts: str) -> Conversation:
    conversation = Conversation(title=title, titled_by_user=True)
    for i, text in enumerate(texts or ("hello",)):
        conversation.append("user" if i % 2 == 0 else "assistant", text)
    return conversation


def texts(window: MainWindow) -> list[str]:
    return [m.text for m in window.chat.conversation.thread()]


def test_a_hit_in_another_version_opens_that_version_with_the_word_selected(qtbot) -> None:
    window = open_window(qtbot)
    c = chat("Animals", "Which animal hums?")
    first = c.append("assistant", "The zanzibar llama hums.")
    c.add_version(first, "assistant", "Alpacas do.")  # the version shown
    seed_store(window, c, chat("Other"))
    qtbot.keyClicks(window.conversation_list.search_box, "zanzib")
    results = window.conversation_list.results
    qtbot.waitUntil(lambda: window.conversation_list.stack.currentWidget() is results, timeout=5_000)
    qtbot.mouseClick(results.viewport(), Qt.MouseButton.LeftButton,
                     pos=results.visualItemRect(results.item(0)).center())
    assert texts(window) == ["Which animal hums?", "The zanzibar llama hums."]
    assert window.store.load(c.id).thread()[-1].id == first.id  # the version shown is saved
    assert window.chat_view.textCursor().selectedText().lower() == "zanzib"
    assert "‹ 1/2 ›" in window.chat_view.toPlainText()
    window.close()


def test_a_deleted_message_comes_back_with_ctrl_z_which_is_enabled_only_then(qtbot) -> None:
    window = open_window(qtbot)
    c = chat("Llamas", "Q1", "A1", "Q2", "A2")
    seed_store(window, c)
    window.chat.open_conversation(c.id)
    assert not window.undo_action.isEnabled()
    window.chat_view.action_requested.emit("delete", c.thread()[2].id)
    assert texts(window) == ["Q1", "A1"] and "Q2" not in window.chat_view.toPlainText()
    assert window.undo_bar.isVisible() and window.undo_bar.label.text() == "Deleted 2 messages."
    assert window.undo_action.isEnabled()
    window.chat_view.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert texts(window) == ["Q1", "A1", "Q2", "A2"] and "A2" in window.chat_view.toPlainText()
    assert [m.text for m in window.store.load(c.id).thread()] == ["Q1", "A1", "Q2", "A2"]
    assert not window.undo_bar.isVisible() and not window.undo_action.isEnabled()
    window.close()


def test_an_error_banner_can_be_closed_and_leaves_with_its_chat(qtbot) -> None:
    window = open_window(qtbot)
    first, second = chat("First"), chat("Second")
    seed_store(window, first, second)
    window.chat.open_conversation(first.id)
    window.chat.error.emit("The version shown could not be saved. The disk is full.")
    assert window.banner.isVisible()
    qtbot.mouseClick(window.banner.close_button, Qt.MouseButton.LeftButton)
    assert not window.banner.isVisible()
    window.chat.error.emit("The version shown could not be saved. The disk is full.")
    window.conversation_list.select(first.id)
    window.conversation_list.list.setCurrentItem(window.conversation_list.item_for(second.id))
    assert window.chat.conversation.id == second.id and not window.banner.isVisible()
    window.close()


def test_the_sampling_panels_notes_leave_with_their_chat(qtbot) -> None:
    window = open_window(qtbot)
    first, second = chat("First"), chat("Second")
    seed_store(window, first, second)
    window.chat.open_conversation(first.id)
    window.sampling_panel.apply_preset("No such preset")
    assert "no preset named" in window.sampling_panel.preset_hint.text()
    window.chat.open_conversation(second.id)
    assert window.sampling_panel.preset_hint.text() == ""
    window.close()


def test_at_800_by_600_the_chat_keeps_the_width_and_the_side_panels_fold(qtbot) -> None:
    window = open_window(qtbot, 800, 600)
    assert window.width() == 800 and window.minimumSizeHint().width() <= 800, "wider than an 800 px screen"
    splitter = window.splitter
    qtbot.waitUntil(lambda: sum(splitter.sizes()) > 700, timeout=5_000)
    conversations, chat_column, side = splitter.sizes()
    assert side == 0 and chat_column >= 0.7 * sum(splitter.sizes()) and conversations >= 150
    meter = window.context_meter
    assert meter.width() >= meter.sizeHint().width(), "the context meter is not clipped"
    window.resize(1440, 900)
    qtbot.waitUntil(lambda: splitter.sizes()[2] > 0, timeout=5_000)
    conversations, chat_column, side = splitter.sizes()
    assert chat_column > conversations + side and side >= 250
    window.close()


def test_a_long_title_is_elided_without_a_horizontal_scroll_bar(qtbot) -> None:
    window = open_window(qtbot, 800, 600)
    title = "A very long conversation title about llamas, alpacas and vicuñas of the high Andes"
    seed_store(window, chat(title))
    listing = window.conversation_list.list
    item = window.conversation_list.item_for(window.conversations.summaries[0].id)
    assert listing.horizontalScrollBar().maximum() == 0
    option = QStyleOptionViewItem()
    listing.initViewItemOption(option)  # as the list does before drawing a row
    option.rect = listing.visualItemRect(item)
    listing.itemDelegate().initStyleOption(option, listing.indexFromItem(item))
    assert option.rect.right() <= listing.viewport().rect().right()
    text_rect = listing.style().subElementRect(QStyle.SubElement.SE_ItemViewItemText, option, listing)
    assert text_rect.width() < option.fontMetrics.horizontalAdvance(title)  # so the style elides it
    assert option.textElideMode == Qt.TextElideMode.ElideRight and item.text() == title
    window.close()


def test_esc_in_the_search_box_clears_it_and_shows_every_chat(qtbot) -> None:
    window = open_window(qtbot)
    seed_store(window, chat("Llamas"))
    listing = window.conversation_list
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(listing.search_box, "qwertyuiop")
    qtbot.waitUntil(lambda: listing.stack.currentWidget() is listing.no_results, timeout=5_000)
    qtbot.keyClick(listing.search_box, Qt.Key.Key_Escape)
    assert listing.search_box.text() == "" and listing.stack.currentWidget() is listing.list
    window.close()


def test_deleting_the_open_chat_shows_the_next_one(qtbot) -> None:
    window = open_window(qtbot)
    top, middle, bottom = chat("Top", "top"), chat("Middle", "middle"), chat("Bottom", "bottom")
    for offset, c in enumerate((bottom, middle, top)):
        c.updated += offset
    seed_store(window, top, middle, bottom)
    window.chat.open_conversation(middle.id)
    listing = window.conversation_list.list
    listing.setFocus()
    qtbot.keyClick(listing, Qt.Key.Key_Delete)
    assert window.chat.conversation.id == bottom.id and texts(window) == ["bottom"]
    assert listing.currentItem().text() == "Bottom"
    qtbot.keyClick(listing, Qt.Key.Key_Delete)  # the last one: the one above takes its place
    assert window.chat.conversation.id == top.id
    window.close()


def test_clicking_a_chat_below_an_empty_new_chat_selects_the_chat_opened(qtbot) -> None:
    """The empty "New chat" row goes when another chat opens: the rows move up under the mouse, and
    the highlighted row must still be the chat shown, not the one that slid under the pointer."""
    window = open_window(qtbot)
    seed_store(window, chat("Older"), chat("Middle"), chat("Newest"))
    window.chat.new_conversation()
    listing = window.conversation_list.list
    target = next(listing.item(r) for r in range(listing.count()) if listing.item(r).text() == "Middle")
    qtbot.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton,
                     pos=listing.visualItemRect(target).center())
    qtbot.waitUntil(lambda: window.chat.conversation.title == "Middle", timeout=5_000)
    selected = [item.text() for item in listing.selectedItems()]
    assert listing.currentItem().text() == "Middle" and selected == ["Middle"]
    window.close()
