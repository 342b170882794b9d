"""A store write that fails is seen, and leaves memory, the screen and the disk in agreement (issue 10)."""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import Qt

from app.core.chat.sampling import SamplingParams
from app.core.conversations.store import ConversationStore
from app.ui.main_window import MainWindow

SHORT = SamplingParams(temperature=0.0, seed=1, max_tokens=8)


def stored_thread(window: MainWindow) -> list[tuple[str, str, bool]]:
    store = ConversationStore(window.store.path)
    try:
        ids = {s.id for s in store.list_conversations()}
        if window.chat.conversation.id not in ids:
            return []
        thread = store.load(window.chat.conversation.id).thread()
        return [(m.role, m.text, m.incomplete) for m in thread]
    finally:
        store.close()


def in_memory(window: MainWindow) -> list[tuple[str, str, bool]]:
    return [(m.role, m.text, m.incomplete) for m in window.chat.conversation.thread()]


def press_enter(qtbot, window: MainWindow, text: str) -> None:
    qtbot.keyClicks(window.composer, text)
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)


def ask(qtbot, window: MainWindow, text: str):
    with qtbot.waitSignal(window.chat.answer_finished, timeout=120_000) as finished:
        press_enter(qtbot, window, text)
    return finished.args[0]


def test_a_full_disk_mid_answer_stops_it_keeps_what_was_saved_and_recovers(qtbot, window):
    window.sampling.set_params(SHORT.replace(max_tokens=400))
    db = window.chat.store.db
    tokens = []
    window.backend.client.worker.token.connect(lambda *_: tokens.append(1))
    with qtbot.waitSignal(window.chat.error, timeout=120_000) as error:
        press_enter(qtbot, window, "Write a long story about a lighthouse keeper.")
        qtbot.waitUntil(lambda: len(tokens) >= 3, timeout=60_000)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    assert "could not be saved" in error.args[0] and "full" in error.args[0].lower()
    assert not window.chat.generating
    assert window.banner.isVisible()
    assert in_memory(window) == stored_thread(window)  # the screen shows what the disk holds
    assert in_memory(window)[-1][2]  # incomplete
    db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    window.sampling.set_params(SHORT)
    assert ask(qtbot, window, "Say hi.").completion_tokens > 0
    assert in_memory(window) == stored_thread(window)


def test_a_locked_database_refuses_the_message_before_the_model_is_asked(qtbot, window):
    window.sampling.set_params(SHORT)
    ask(qtbot, window, "Say hi.")
    before = in_memory(window)
    other = sqlite3.connect(window.store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        with qtbot.waitSignal(window.chat.error, timeout=60_000) as error:
            press_enter(qtbot, window, "Name a colour.")
        assert "not sent" in error.args[0] and "locked" in error.args[0].lower()
        assert not window.backend.client.busy  # nothing was queued to the model
        assert window.composer.toPlainText() == "Name a colour."  # the text stays
        assert in_memory(window) == before
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert stored_thread(window) == before
    with qtbot.waitSignal(window.chat.answer_finished, timeout=120_000):
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    assert [m[1] for m in in_memory(window)][-2] == "Name a colour."
    assert in_memory(window) == stored_thread(window)


def test_a_read_only_database_says_so_and_keeps_nothing_in_memory(qtbot, model_path, tmp_path):
    path = tmp_path / "conversations.sqlite3"
    ConversationStore(path).close()
    window = MainWindow(store=ConversationStore(path, read_only=True))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000):
        window.model_session.load(str(model_path))
    try:
        with qtbot.waitSignal(window.chat.error, timeout=60_000) as error:
            press_enter(qtbot, window, "Say hi.")
        assert "not sent" in error.args[0]
        assert not window.chat.conversation.messages
        assert not window.backend.client.busy
        assert window.composer.toPlainText() == "Say hi."
    finally:
        window.close()
