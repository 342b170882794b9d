"""The chat view draws a reasoning model's thought (issue 12, "Reasoning models"): open under
"Thinking…" while it streams, folded into "▸ Thought for N s" when the answer is done, opened and
folded again by a click. A scripted backend stands in for a reasoning model."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QUrl

from app.core.conversations.store import ConversationStore
from app.session.chat_session import ChatSession
from app.session.sampling import SamplingSettings
from app.ui.chat.chat_view import ChatView
from tests.fakes.fake_backend import FakeBackend, Script


@pytest.fixture
def setup(qtbot, tmp_path: Path):
    store = ConversationStore(tmp_path / "chats.db")
    backend = FakeBackend(auto=False)
    backend.scripts = [Script(deltas=["<think>", "I add", " two and two.</think>", "Four."])]
    chat = ChatSession(backend, store, SamplingSettings())
    chat.writer_clock = iter([10.0, 22.0]).__next__  # the first thought piece, the closing tag
    view = ChatView()
    qtbot.addWidget(view)
    view.follow(chat)
    yield chat, backend, view
    store.close()


def test_a_thought_streams_open_then_folds_and_a_click_opens_it(qtbot, setup) -> None:
    chat, backend, view = setup
    assert chat.send("What is 2 + 2?")
    with qtbot.waitSignal(chat.thought_appended, timeout=5000):
        backend.current.release(3)  # the prompt, "<think>", "I add"
    assert view.toPlainText().endswith("Assistant\nThinking…\nI add")
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        backend.current.release()
    text = view.toPlainText()
    assert "▸ Thought for 12 s\nFour." in text and "I add" not in text
    answer_id = chat.conversation.thread()[-1].id
    asked: list[tuple[str, str]] = []
    view.action_requested.connect(lambda action, message_id: asked.append((action, message_id)))
    view.anchorClicked.emit(QUrl(f"action:thought:{answer_id}"))
    assert "▾ Thought for 12 s\nI add two and two.\nFour." in view.toPlainText()
    view.anchorClicked.emit(QUrl(f"action:thought:{answer_id}"))
    assert "▸ Thought for 12 s\nFour." in view.toPlainText()
    assert asked == [], "folding is the view's own business"


def test_a_stored_thought_is_drawn_folded(qtbot, setup) -> None:
    chat, backend, view = setup
    backend.auto = True
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        chat.send("What is 2 + 2?")
    view.show_conversation(chat.store.load(chat.conversation.id))
    text = view.toPlainText()
    assert "Assistant\n▸ Thought for 12 s\nFour." in text and "I add" not in text
