"""Regenerate, versions, edit, continue, copy and delete, on the real model and the real store."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.core.conversations.store import ConversationStore
from app.ui.main_window import MainWindow
from tests.ui.conftest import send

QUESTION = "Name three animals that live in the Andes."


def act(qtbot, window: MainWindow, action: str, message_id: str, wait: bool = False) -> None:
    if wait:
        with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
            window.chat_view.action_requested.emit(action, message_id)
    else:
        window.chat_view.action_requested.emit(action, message_id)


def texts(window: MainWindow) -> list[str]:
    return [m.text for m in window.chat.conversation.thread()]


def stored_thread(window: MainWindow) -> list[str]:
    store = ConversationStore(window.store.path)
    try:
        return [m.text for m in store.load(window.chat.conversation.id).thread()]
    finally:
        store.close()


def test_regenerate_keeps_the_old_answer_as_a_version(qtbot, window) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(24)
    send(qtbot, window, QUESTION)
    first = window.chat.conversation.thread()[-1]
    act(qtbot, window, "regenerate", first.id, wait=True)
    conversation = window.chat.conversation
    second = conversation.thread()[-1]
    assert second.id != first.id and second.parent_id == first.parent_id
    assert [m.id for m in conversation.versions(second)] == [first.id, second.id]
    assert "‹ 2/2 ›" in window.chat_view.toPlainText()
    assert stored_thread(window) == [QUESTION, second.text]
    act(qtbot, window, "previous", second.id)
    assert texts(window) == [QUESTION, first.text]
    assert "‹ 1/2 ›" in window.chat_view.toPlainText()
    assert stored_thread(window) == [QUESTION, first.text]


def test_edit_makes_a_branch_that_survives_a_restart(qtbot, window) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(16)
    send(qtbot, window, "Hello!")
    send(qtbot, window, "What is a llama?")
    before = texts(window)
    question = window.chat.conversation.thread()[0]
    act(qtbot, window, "edit", question.id)
    assert window.composer.toPlainText() == "Hello!"
    window.composer.clear()
    send(qtbot, window, "Good morning!")  # Enter resends the edited message as a new version
    after = texts(window)
    assert after[0] == "Good morning!" and len(after) == 2
    conversation_id = window.chat.conversation.id
    window.close()

    reopened = MainWindow()  # a restart: a new window on the same data folder
    qtbot.addWidget(reopened)
    reopened.chat.open_conversation(conversation_id)
    assert texts(reopened) == after
    edited = reopened.chat.conversation.thread()[0]
    act(qtbot, reopened, "previous", edited.id)
    assert texts(reopened) == before  # the old branch, whole
    reopened.close()


def test_stop_then_continue_grows_the_same_answer(qtbot, window) -> None:
    window.sampling_panel.rows["temperature"].spin.setValue(0.0)
    window.sampling_panel.rows["max_tokens"].spin.setValue(60)
    qtbot.keyClicks(window.composer, "Write a long story about a llama who travels the world.")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(window.chat_view.last_message_text()) > 20, timeout=30_000)
    with qtbot.waitSignal(window.chat.answer_finished, timeout=10_000):
        window.chat.stop()
    answer = window.chat.conversation.thread()[-1]
    assert answer.incomplete
    partial = answer.text
    assert "Continue" in window.chat_view.toPlainText()
    act(qtbot, window, "continue", answer.id, wait=True)
    assert window.chat.conversation.thread()[-1] is answer  # the same message
    assert answer.text.startswith(partial) and len(answer.text) > len(partial)
    assert not answer.incomplete
    assert window.chat_view.last_message_text().split() == answer.text.split()  # drawn as Markdown
    assert stored_thread(window)[-1] == answer.text


def test_copy_and_delete(qtbot, window) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(12)
    send(qtbot, window, QUESTION)
    answer = window.chat.conversation.thread()[-1]
    act(qtbot, window, "copy", answer.id)
    assert QApplication.clipboard().text() == answer.text
    question = window.chat.conversation.thread()[0]
    act(qtbot, window, "delete", question.id)  # the question and everything after it
    assert texts(window) == []
    assert stored_thread(window) == []
