"""Issue 12: deleting a message can be undone (item 6), a search hit opens the version that holds it
(item 5), deleting the open chat shows the next one (item 20). Sessions wired as the Workspace
wires them, on a scripted backend and the real SQLite store."""

from __future__ import annotations

import pytest

from app.core.conversations.store import ConversationStore
from app.session.chat_session import ChatSession
from app.session.conversations import Conversations
from app.session.sampling import SamplingSettings
from tests.fakes.fake_backend import Script


@pytest.fixture
def conversations(qtbot, store) -> Conversations:
    return Conversations(store)


@pytest.fixture
def chat(qtbot, store, backend, conversations) -> ChatSession:
    chat = ChatSession(backend, store, SamplingSettings(), conversations.is_saved)
    chat.list_changed.connect(conversations.refresh)  # as app/session/workspace.py wires them
    conversations.deleted.connect(chat.on_deleted)
    conversations.restored.connect(chat.open_conversation)
    chat.messages_deleted.connect(conversations.offer_messages_undo)
    conversations.messages_restored.connect(chat.on_messages_restored)
    chat.generating_changed.connect(lambda running: running and conversations.end_messages_undo())
    return chat


def answer(qtbot, chat: ChatSession, send) -> None:
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        assert send()


def shown(chat: ChatSession) -> list[str]:
    return [m.text for m in chat.conversation.thread()]


def stored(store: ConversationStore, conversation_id: str) -> list[str]:
    """The current thread as a fresh connection (a restarted app) reads it."""
    fresh = ConversationStore(store.path)
    try:
        return [m.text for m in fresh.load(conversation_id).thread()]
    finally:
        fresh.close()


def test_a_deleted_message_comes_back_with_undo(qtbot, chat, conversations, store, backend) -> None:
    backend.scripts = [Script(deltas=["A1"]), Script(deltas=["A2"])]
    answer(qtbot, chat, lambda: chat.send("Q1"))
    answer(qtbot, chat, lambda: chat.send("Q2"))
    before = [m.id for m in chat.conversation.thread()]
    with qtbot.waitSignal(conversations.undo_offered) as offer:
        chat.delete_message(before[2])  # the second question and its answer
    assert offer.args == ["Deleted 2 messages."] and conversations.can_undo
    assert shown(chat) == ["Q1", "A1"] == stored(store, chat.conversation.id)
    with qtbot.waitSignal(conversations.messages_restored):
        conversations.undo_delete()
    assert [m.id for m in chat.conversation.thread()] == before
    assert shown(chat) == ["Q1", "A1", "Q2", "A2"] == stored(store, chat.conversation.id)
    assert not conversations.can_undo and [s.title for s in conversations.summaries] == ["Q1"]


def test_undo_shows_the_deleted_version_again(qtbot, chat, conversations, store, backend) -> None:
    backend.scripts = [Script(deltas=["First"]), Script(deltas=["Second"])]
    answer(qtbot, chat, lambda: chat.send("Q"))
    answer(qtbot, chat, lambda: chat.regenerate(chat.conversation.thread()[-1].id))
    with qtbot.waitSignal(conversations.undo_offered) as offer:
        chat.delete_message(chat.conversation.thread()[-1].id)
    assert offer.args == ["Deleted 1 message."]
    assert shown(chat) == ["Q", "First"] == stored(store, chat.conversation.id)
    conversations.undo_delete()
    assert shown(chat) == ["Q", "Second"] == stored(store, chat.conversation.id)
    assert len(chat.conversation.versions(chat.conversation.thread()[-1])) == 2


def test_a_kill_during_the_undo_offer_leaves_a_sound_store(qtbot, chat, conversations, store) -> None:
    """The deletion is saved at once (hidden, not removed); the next purge removes it for good."""
    answer(qtbot, chat, lambda: chat.send("Keep this"))
    answer(qtbot, chat, lambda: chat.send("Forget zanzibar"))
    chat.delete_message(chat.conversation.thread()[2].id)
    conversation_id = chat.conversation.id
    # Killed now: a new process opens the database.
    restarted = ConversationStore(store.path)
    try:
        assert [m.text for m in restarted.load(conversation_id).thread()] == ["Keep this", "Hello, world."]
        assert [s.id for s in restarted.list_conversations()] == [conversation_id]
        assert restarted.search("zanzibar") == []
        Conversations(restarted).purge_deleted()  # at the next close, or the next offer's end
        rows = restarted.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        assert rows == 2 and restarted.conversation_ids() == {conversation_id}
    finally:
        restarted.close()


def test_the_offer_ends_when_an_answer_begins(qtbot, chat, conversations, store) -> None:
    answer(qtbot, chat, lambda: chat.send("Q1"))
    chat.delete_message(chat.conversation.thread()[-1].id)
    with qtbot.waitSignal(conversations.undo_expired):
        answer(qtbot, chat, lambda: chat.send("Q2"))
    assert not conversations.can_undo
    with qtbot.assertNotEmitted(conversations.messages_restored):
        conversations.undo_delete()
    assert store.conversation_ids() == {chat.conversation.id}  # the hidden messages were purged


def test_a_hit_in_a_version_not_shown_opens_that_version(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=["Llamas hum."]), Script(deltas=["Alpacas spit."])]
    answer(qtbot, chat, lambda: chat.send("Tell me"))
    answer(qtbot, chat, lambda: chat.regenerate(chat.conversation.thread()[-1].id))
    conversation_id = chat.conversation.id
    hit = store.search("hum")[0]
    chat.new_conversation()
    with qtbot.waitSignal(chat.scrolled_to) as scrolled:
        chat.open_conversation(hit.conversation_id, hit.message_id)
    assert scrolled.args == [hit.message_id]
    assert shown(chat) == ["Tell me", "Llamas hum."] == stored(store, conversation_id)


def test_deleting_the_open_chat_shows_the_next_in_the_list(qtbot, chat, conversations, backend) -> None:
    answer(qtbot, chat, lambda: chat.send("Older"))
    older = chat.conversation.id
    chat.new_conversation()
    answer(qtbot, chat, lambda: chat.send("Newer"))
    with qtbot.waitSignal(chat.conversation_shown) as opened:
        conversations.delete(chat.conversation.id)
    assert opened.args == [older] and shown(chat) == ["Older", "Hello, world."]
    conversations.undo_delete()
    conversations.delete(older)  # it is not shown: the chat stays where it is
    assert shown(chat) == ["Newer", "Hello, world."]
    conversations.delete(chat.conversation.id)  # the last one: a new chat
    assert chat.conversation.messages == []
    conversations.purge_deleted()
