"""The conversation list follows the Conversations session, row by row.

A chat answered at the bottom of a long list moves to the top: the list must then show exactly
what a fresh list would, while the rows of the other chats stay the same objects (so the list
does not rebuild thousands of rows for every answer)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

from app.core.conversations.conversation import Conversation
from app.core.conversations.store import ConversationStore
from app.session.conversations import Conversations
from app.ui.conversations.conversation_list import ConversationList

DAY = 24 * 3600


@pytest.fixture
def store(tmp_path: Path):
    store = ConversationStore(tmp_path / "chats.db")
    now = time.time()
    chats = []
    for n in range(30):  # today, yesterday, last week, older
        c = Conversation(title=f"Chat {n}", titled_by_user=True)
        c.append("user", f"question {n}")
        c.append("assistant", f"answer {n}")
        c.created = c.updated = now - n * DAY / 2
        chats.append(c)
    store.insert_conversations(chats)
    yield store
    store.close()


def rows(listing: ConversationList) -> list[tuple[str, str | None]]:
    view = listing.list
    return [(view.item(i).text(), view.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(view.count())]


def test_a_chat_that_moves_to_the_top_changes_only_its_rows(qtbot, store) -> None:
    conversations = Conversations(store)
    listing = ConversationList(conversations)
    qtbot.addWidget(listing)
    before = {listing.list.item(i).data(Qt.ItemDataRole.UserRole): listing.list.item(i)
              for i in range(listing.list.count())}
    oldest = conversations.summaries[-1]
    chat = store.load(oldest.id)
    chat.updated = time.time() + 1  # answered just now
    store.save_conversation(chat)
    conversations.refresh()
    fresh = ConversationList(conversations)
    qtbot.addWidget(fresh)
    assert rows(listing) == rows(fresh)
    assert rows(listing)[:2] == [("Today", None), ("Chat 29", oldest.id)]
    kept = [listing.list.item(i) for i in range(listing.list.count())
            if listing.list.item(i).data(Qt.ItemDataRole.UserRole) not in (None, oldest.id)]
    assert kept and all(item is before[item.data(Qt.ItemDataRole.UserRole)] for item in kept)


def test_rename_pin_and_delete_show_as_a_fresh_list_would(qtbot, store) -> None:
    conversations = Conversations(store)
    listing = ConversationList(conversations)
    qtbot.addWidget(listing)
    ids = [s.id for s in conversations.summaries]
    conversations.rename(ids[3], "Renamed")
    conversations.set_pinned(ids[20], True)
    conversations.delete(ids[7])
    fresh = ConversationList(conversations)
    qtbot.addWidget(fresh)
    assert rows(listing) == rows(fresh)
    assert rows(listing)[:2] == [("Pinned", None), ("Chat 20", ids[20])]
    assert ("Renamed", ids[3]) in rows(listing) and ids[7] not in {i for _, i in rows(listing)}
    conversations.purge_deleted()


def test_the_tooltip_counts_the_messages_when_shown(qtbot, store) -> None:
    conversations = Conversations(store)
    listing = ConversationList(conversations)
    qtbot.addWidget(listing)
    listing.show()
    item = listing.list.item(1)
    where = listing.list.visualItemRect(item).center()
    viewport = listing.list.viewport()
    event = QHelpEvent(QEvent.Type.ToolTip, where, viewport.mapToGlobal(where))
    QApplication.sendEvent(viewport, event)
    assert QToolTip.text() == f"{item.text()}\n2 messages"
    QToolTip.hideText()
