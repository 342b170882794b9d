"""Conversations in the window: stored, listed, renamed, deleted with undo, searched, exported."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QLineEdit

from app.core.conversations import transcripts
from app.core.conversations.conversation import Conversation
from app.core.conversations.store import ConversationStore
from app.ui.conversations import transcript_dialogs
from app.ui.main_window import MainWindow
from tests.ui.conftest import open_window, seed_store


def send_and_wait(qtbot, window: MainWindow, text: str) -> None:
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
        qtbot.keyClicks(window.composer, text)
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)


def titles(window: MainWindow) -> list[str]:
    listing = window.conversation_list.list
    return [listing.item(i).text() for i in range(listing.count())]


def long_conversation(marker_at: int, marker: str) -> Conversation:
    c = Conversation(title="A long chat", titled_by_user=True)
    for i in range(60):
        text = f"Message {i}: " + ("words " * 40) + (marker if i == marker_at else "")
        c.append("user" if i % 2 == 0 else "assistant", text)
    return c


def test_chats_are_stored_listed_and_reopened_with_their_settings(qtbot, window) -> None:
    window.sampling_panel.rows["temperature"].spin.setValue(0.3)
    send_and_wait(qtbot, window, "Tell me about llamas")
    assert titles(window) == ["Today", "Tell me about llamas"]
    first_id = window.chat.conversation.id
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # Ctrl+N
    assert window.chat_view.toPlainText() == ""
    window.sampling_panel.rows["temperature"].spin.setValue(1.1)
    send_and_wait(qtbot, window, "And alpacas?")
    assert titles(window) == ["Today", "And alpacas?", "Tell me about llamas"]
    window.conversation_list.list.setCurrentRow(2)
    assert window.chat.conversation.id == first_id
    assert "Tell me about llamas" in window.chat_view.toPlainText()
    assert window.sampling_panel.rows["temperature"].spin.value() == 0.3
    # A new window on the same data folder finds both, messages and settings intact.
    store = ConversationStore(window.store.path)
    try:
        stored = store.load(first_id)
    finally:
        store.close()
    assert [m.role for m in stored.thread()] == ["user", "assistant"]
    assert stored.thread()[1].text == window.chat.conversation.thread()[1].text
    assert stored.sampling.temperature == 0.3
    assert stored.thread()[1].generation.model_file == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_rename_inline_with_f2(qtbot) -> None:
    window = open_window(qtbot)
    c = Conversation(title="Old name", titled_by_user=True)
    c.append("user", "hello")
    seed_store(window, c)
    listing = window.conversation_list.list
    listing.setCurrentItem(window.conversation_list.item_for(c.id))  # row 1 is the new chat, listed at once
    qtbot.keyClick(listing, Qt.Key.Key_F2)
    editor = listing.viewport().findChild(QLineEdit)
    assert editor is not None and editor.text() == "Old name"
    editor.selectAll()
    qtbot.keyClicks(editor, "Llama facts")
    with qtbot.waitSignal(window.conversations.renamed, timeout=5_000):  # the rename waits for the editor
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert titles(window) == ["Today", "Llama facts"]
    assert window.store.load(c.id).title == "Llama facts"
    window.close()


def test_delete_can_be_undone_then_is_purged(qtbot) -> None:
    window = open_window(qtbot)
    keep = Conversation(title="Keep", titled_by_user=True)
    doomed = Conversation(title="Doomed", titled_by_user=True)
    keep.append("user", "keep me")
    doomed.append("user", "delete me")
    seed_store(window, keep, doomed)
    listing = window.conversation_list.list
    window.chat.open_conversation(doomed.id)
    listing.setFocus()
    qtbot.keyClick(listing, Qt.Key.Key_Delete)
    assert "Doomed" not in titles(window)
    undo_bar = window.undo_bar
    assert undo_bar.isVisible() and undo_bar.label.text() == "Deleted “Doomed”."
    assert window.chat.conversation.id != doomed.id, "the chat left the deleted conversation"
    qtbot.mouseClick(undo_bar.button, Qt.MouseButton.LeftButton)
    assert "Doomed" in titles(window) and not undo_bar.isVisible()
    assert window.chat.conversation.id == doomed.id
    window.conversations._undo_timer.setInterval(50)
    with qtbot.waitSignal(window.conversations.purged, timeout=5_000):
        window.conversations.delete(doomed.id)
    assert not undo_bar.isVisible()
    count = window.store.db.execute("SELECT COUNT(*) FROM conversations WHERE id = ?", (doomed.id,))
    assert count.fetchone()[0] == 0  # gone for good once the undo offer expired
    assert titles(window) == ["Today", "Keep"]
    window.close()


def test_search_as_you_type_and_jump_to_the_hit(qtbot) -> None:
    window = open_window(qtbot, 1000, 500)
    target = long_conversation(41, "The zanzibar llama")
    other = Conversation(title="Other")
    other.append("user", "nothing relevant here")
    seed_store(window, target, other)
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)  # Ctrl+K
    assert window.conversation_list.search_box.hasFocus()
    qtbot.keyClicks(window.conversation_list.search_box, "zanzib")
    results = window.conversation_list.results
    qtbot.waitUntil(lambda: window.conversation_list.stack.currentWidget() is results, timeout=5_000)
    assert results.count() == 1
    label = results.itemWidget(results.item(0))
    assert "<b>zanzibar</b>" in label.text()
    qtbot.mouseClick(results.viewport(), Qt.MouseButton.LeftButton,
                     pos=results.visualItemRect(results.item(0)).center())
    assert window.chat.conversation.id == target.id
    hit = target.thread()[41]
    view = window.chat_view
    selected = view.textCursor()
    assert selected.selectedText() == "zanzib" and selected.selectionStart() > view._starts[hit.id]
    assert selected.selectionStart() < view._starts[target.thread()[42].id], "selected in its message"
    top = view.cursorForPosition(view.viewport().rect().topLeft()).position()
    bottom = view.cursorForPosition(view.viewport().rect().bottomLeft()).position()
    assert top <= selected.selectionStart() <= bottom, "the match is on screen"
    window.conversation_list.search_box.clear()
    assert window.conversation_list.stack.currentWidget() is window.conversation_list.list
    qtbot.keyClicks(window.conversation_list.search_box, "qwertyuiop")
    qtbot.waitUntil(lambda: window.conversation_list.stack.currentWidget()
                    is window.conversation_list.no_results, timeout=5_000)
    window.close()


def test_export_and_import_from_the_menu(qtbot, monkeypatch, tmp_path: Path) -> None:
    window = open_window(qtbot)
    c = Conversation(title="Export me", titled_by_user=True)
    c.append("user", "<script>alert(1)</script>")
    seed_store(window, c)
    window.chat.open_conversation(c.id)
    out = tmp_path / "chat.html"
    monkeypatch.setattr(transcript_dialogs.ExportOptions, "exec",
                        lambda self: (self.format.setCurrentIndex(self.format.findData("html")),
                                      QDialog.DialogCode.Accepted)[1])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)  # Ctrl+E
    qtbot.waitUntil(lambda: window.state_label.text().startswith("Exported"), timeout=10_000)
    assert out.read_text() == transcripts.to_html(window.store.load(c.id))
    assert "&lt;script&gt;" in out.read_text()

    exported = tmp_path / "all.json"
    exported.write_text(transcripts.to_json([window.store.load(c.id)]))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(exported)], ""))
    with qtbot.waitSignal(window.conversations.imported, timeout=10_000) as imported:
        transcript_dialogs.import_dialog(window, window.conversations)
    assert window.state_label.text() == "Imported 1 conversation from all.json"
    assert titles(window).count("Export me") == 2  # a copy: the original id was taken
    assert window.chat.conversation.id == imported.args[0][0], "the imported copy is shown"

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "llamadesk-conversations", "schema_version": 1, "conversations": [')
    before = window.store.list_conversations()
    window.conversations.import_files([bad])
    qtbot.waitUntil(window.banner.isVisible, timeout=10_000)
    assert window.banner.text().startswith("Import failed: The file is not complete JSON")
    assert window.store.list_conversations() == before
    window.close()


def test_closing_mid_answer_keeps_the_partial_answer(qtbot, window) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(400)
    qtbot.keyClicks(window.composer, "Write a long story about a llama who travels the world.")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(window.chat_view.last_message_text()) > 40, timeout=30_000)
    conversation_id = window.chat.conversation.id
    window.close()
    store = ConversationStore(window.store.path)
    try:
        answer = store.load(conversation_id).thread()[-1]
    finally:
        store.close()
    assert answer.role == "assistant" and answer.incomplete
    assert len(answer.text) > 40


def test_a_long_chat_opens_at_its_end_showing_recent_messages_first(qtbot) -> None:
    from PySide6.QtCore import QUrl

    from app.ui.chat.chat_view import RECENT

    window = open_window(qtbot)
    c = Conversation(title="Very long", titled_by_user=True)
    for i in range(450):
        c.append("user" if i % 2 == 0 else "assistant", f"message number {i}")
    seed_store(window, c)
    window.chat.open_conversation(c.id)
    view = window.chat_view
    text = view.toPlainText()
    hidden = 450 - RECENT
    assert text.startswith(f"Show {RECENT} earlier messages ({hidden} hidden)")
    assert f"message number {hidden}\n" in text and f"message number {hidden - 1}\n" not in text
    qtbot.waitUntil(lambda: view.verticalScrollBar().value() == view.verticalScrollBar().maximum())
    assert view.verticalScrollBar().maximum() > 0
    first_shown = c.thread()[hidden].id
    view.anchorClicked.emit(QUrl("llamadesk:earlier"))
    hidden -= RECENT
    assert f"({hidden} hidden)" in view.toPlainText() and f"message number {hidden}\n" in view.toPlainText()
    top = view.cursorForPosition(view.viewport().rect().topLeft()).position()
    assert abs(top - view._starts[first_shown]) < 200, "the reader keeps their place"
    window.close()
